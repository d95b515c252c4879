"""builds/permalinks, which Jenkins rewrites when a run completes, before the run's final build.xml.

A watcher can see the permalinks change before the record does, and the benchmarks write homes
without the fake's runs but with the same permalinks, so the rules (which result moves which link)
are kept in one place.
"""

from __future__ import annotations

from pathlib import Path

from tools.fake_jenkins._files import _atomic_write
from tools.fake_jenkins._formats import RESULTS

# Permalinks kept in builds/permalinks (PeepholePermalink) and which results they follow.
_PERMALINKS: dict[str, tuple[str, ...]] = {
    "lastBuild": RESULTS,
    "lastCompletedBuild": RESULTS,
    "lastFailedBuild": ("FAILURE",),
    "lastStableBuild": ("SUCCESS",),
    "lastSuccessfulBuild": ("SUCCESS", "UNSTABLE"),
    "lastUnstableBuild": ("UNSTABLE",),
    "lastUnsuccessfulBuild": ("UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED"),
}


def _update_permalinks(builds_dir: Path, number: int, result: str) -> None:
    """PeepholePermalink.RunListenerImpl.onCompleted: rewrite builds/permalinks atomically."""
    path = builds_dir / "permalinks"
    current: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                current[key] = int(value)
    for name, results in _PERMALINKS.items():
        cached = current.get(name, -1)
        if result in results and number > cached:
            cached = number
        current[name] = cached
    body = "".join(f"{k} {current[k]}\n" for k in sorted(current))
    _atomic_write(path, body.encode())
