"""``doctor``'s warning about jobs that ran lately but map to no component.

Such a job's events carry no ``componentId``: Compass files them under the event source alone, and
no component's derived metrics (build success rate, deployment frequency...) count them. The jobs
come from the state database (the runs the daemon has seen), read-only, so that ``doctor`` works
while the daemon runs; the mapping is ``Settings.component_for``, which the daemon asks too. This is
a warning, not a problem: a job left unmapped on purpose must not fail ``doctor`` for ever.
"""

from __future__ import annotations

import sqlite3

from daemon.config import Settings
from daemon.migrations import StateVersionError
from daemon.state_check import StateDamagedError
from daemon.store import Store

__all__ = ["SHOWN", "WINDOW_MS", "unmapped_job_lines", "unmapped_jobs"]

WINDOW_MS = 7 * 86_400_000  # "lately": a week covers the jobs run on weekdays only
SHOWN = 20  # one line per job up to this many, then how many more
_WARN = "warning  "


def unmapped_jobs(settings: Settings, now_ms: int) -> list[tuple[str, str, int]]:
    """(source, job, runs started in the window) of the jobs no ``compass.components`` rule names,
    the busiest first; none when there is no state database yet."""
    if not (settings.state_dir / "buildtail.sqlite3").exists():
        return []
    store = Store(settings.state_dir, readonly=True)
    try:
        rows = store.runs_by_job(now_ms - WINDOW_MS)
    finally:
        store.close()
    unmapped = [(source, job, runs) for source, job, runs in rows if settings.component_for(job) is None]
    return sorted(unmapped, key=lambda row: (-row[2], row[0], row[1]))


def unmapped_job_lines(settings: Settings, now_ms: int, shown: int = SHOWN) -> list[str]:
    """doctor's lines: one per unmapped job (``shown`` at most), then what to do; none when every
    job that ran is mapped."""
    try:
        jobs = unmapped_jobs(settings, now_ms)
    except (StateDamagedError, StateVersionError, sqlite3.Error) as exc:
        return [f"{_WARN}cannot list the jobs that map to no component: {exc}"]
    if not jobs:
        return []
    lines = [
        f"{_WARN}job {job!r} (source {source!r}): {runs} run(s) in the last 7 days, mapped to no component"
        for source, job, runs in jobs[:shown]
    ]
    if len(jobs) > shown:
        lines.append(f"{_WARN}and {len(jobs) - shown} more job(s) mapped to no component")
    lines.append(
        f"{_WARN}their events reach no component's metrics: add a compass.components rule whose "
        "match names them ({match: <job glob>, component_id: <ari>}), then run "
        "`buildtail compass setup --config PATH`"
    )
    return lines
