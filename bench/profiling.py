"""Profiles for the benchmarks that miss: where the daemon spends its time, by function (file:line).

    .venv/bin/python bench/profiling.py scan --home DIR     # cProfile of the startup scans, in-process
    .venv/bin/python bench/profiling.py imports             # python -X importtime: the slowest imports
    .venv/bin/python bench/profiling.py pyspy DIR           # summarise py-spy samples taken by a benchmark

``scan`` calls what ``Service._start_source`` calls off the event loop (``JenkinsSource.discover`` and
``scan``) on a home written by bench/make_home.py: a restart with current state (``since_ms`` = now
- 5 s), a first start (``first_start=True``), and a restart without a watermark (every run observed;
on a sample of 5,000 runs). For ``pyspy``, run a benchmark with ``BUILDTAIL_BENCH_PYSPY=DIR`` set
(py-spy, ``pip install py-spy``, samples the daemon process from ``ready:`` until it exits), e.g.

    BUILDTAIL_BENCH_PYSPY=/tmp/prof .venv/bin/python bench/b6_throughput.py --sink light --runs 1
    .venv/bin/python bench/profiling.py pyspy /tmp/prof
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from bench.daemon_under_test import make_config
from bench.machine import CODE, REPO


def _short(path: str) -> str:
    p = path.replace(str(CODE) + "/", "").replace(str(REPO) + "/", "")
    return re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", p)


def _print_stats(prof: cProfile.Profile, title: str, total_wall: float, top: int = 15) -> None:
    st = pstats.Stats(prof)
    total = max(1e-9, sum(v[2] for v in st.stats.values()))  # type: ignore[attr-defined]
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    print(f"\n--- {title}: {total_wall:.2f} s wall, {total:.2f} s profiled; top by own time")
    print(f"{'own %':>6} {'own s':>7} {'cum s':>7} {'calls':>9}  function")
    for (file, line, func), (_cc, nc, tt, ct, _callers) in rows:
        print(f"{tt / total * 100:6.1f} {tt:7.2f} {ct:7.2f} {nc:9d}  {_short(file)}:{line} {func}")
    cum = sorted(st.stats.items(), key=lambda kv: kv[1][3], reverse=True)  # type: ignore[attr-defined]
    print("top by cumulative time (repository code only)")
    shown = 0
    for (file, line, func), (_cc, nc, _tt, ct, _callers) in cum:
        if (str(CODE) in file or str(REPO) in file) and "/bench/" not in file and shown < top:
            print(f"{ct / total * 100:6.1f} {ct:7.2f} {nc:9d}  {_short(file)}:{line} {func}")
            shown += 1


def profile_scan(home: Path, tmp: Path) -> None:
    from daemon.config import load_settings
    from daemon.sources.jenkins.source import JenkinsSource

    cfg = make_config(tmp, home, None)
    cfg.pop("metrics", None)
    path = tmp / "profile-scan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    settings = load_settings(path)
    source = JenkinsSource(settings.sources[0], host=settings.host)
    source.discover()
    source.scan(first_start=True, since_ms=None, open_dirs=set())  # warm the page cache
    since = time.time_ns() // 1_000_000 - 5000

    def run(title: str, fn: object) -> object:
        prof = cProfile.Profile()
        t0 = time.monotonic()
        prof.enable()
        out = fn()  # type: ignore[operator]
        prof.disable()
        _print_stats(prof, title, time.monotonic() - t0)
        return out

    run("restart, state current: discover()", source.discover)
    run(
        "restart, state current: scan(since_ms=now-5s)",
        lambda: source.scan(first_start=False, since_ms=since, open_dirs=set()),
    )
    run(
        "first start: scan(first_start=True)",
        lambda: source.scan(first_start=True, since_ms=None, open_dirs=set()),
    )
    every = source.scan(first_start=False, since_ms=None, open_dirs=set())
    sample = every[:: max(1, len(every) // 5000)][:5000]
    run(
        f"restart without watermark: observe() on {len(sample)} of {len(every)} runs",
        lambda: [source.observe(d) for d in sample],
    )


def profile_imports() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import daemon.cli, daemon.service"],
        cwd=CODE,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in out.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m[2]), int(m[1]), len(m[3]) // 2, m[4]))
    total = max((r[0] for r in rows), default=1)
    wall = []
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import daemon.cli, daemon.service"], cwd=CODE, check=True)
        wall.append(time.monotonic() - t0)
    print(
        f"\n--- imports: interpreter + imports {sorted(wall)[1]:.3f} s wall; import tree {total / 1e6:.3f} s"
    )
    print("top-level packages by cumulative import time")
    for cum, _own, depth, name in sorted((r for r in rows if r[2] <= 1), reverse=True)[:15]:
        print(f"{cum / 1e3:8.1f} ms {cum / total * 100:5.1f} %  {'  ' * depth}{name}")


def summarise_pyspy(directory: Path, top: int = 20) -> None:
    for path in sorted(directory.glob("*.pyspy.txt")):
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        total = 0
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = [_short(f.strip()) for f in stack.split(";") if f.strip()]
            frames = [f for f in frames if "(" in f]
            if not frames:
                continue
            total += n
            own[frames[-1]] += n
            for f in set(frames):
                inclusive[f] += n
        print(f"\n--- {path.name}: {total} samples (non-idle)")
        print("own time")
        for f, n in own.most_common(top):
            print(f"{n / total * 100:6.1f} %  {f}")
        print("inclusive time (repository code)")
        shown = 0
        for f, n in inclusive.most_common():
            if any(f"({d}/" in f for d in ("daemon", "parsers")) and shown < top:
                print(f"{n / total * 100:6.1f} %  {f}")
                shown += 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scan")
    s.add_argument("--home", type=Path, required=True)
    sub.add_parser("imports")
    y = sub.add_parser("pyspy")
    y.add_argument("dir", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "scan":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="buildtail-bench-profile-") as tmp:
            profile_scan(args.home.resolve(), Path(tmp))
    elif args.cmd == "imports":
        profile_imports()
    else:
        summarise_pyspy(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
