"""B3: restart on a large home whose state is already current: time to ready, RSS, ratio to ``find``.

Method: a home of 2,000 jobs x 50 finished builds (100,000 build directories, file times in the
past) plus 20 running builds, written by tools.fake_jenkins.generate_home from a tools/fake_jenkins
template (or reused with ``--home``). The daemon is started once on a fresh state (first start;
its IN_PROGRESS events for the running builds are delivered), stopped with SIGTERM, and then
restarted ``--runs`` times. For each restart: the wall time from spawning the process to its
``ready:`` log line (interpreter start and imports included), VmRSS at ready and VmHWM (peak) just
before the stop, CPU time used up to ready, and the requests sent (0 expected: nothing changed).
``find <home> -name build.xml`` is timed on the same (warm) home for the ratio. ``--cold`` drops
the page cache before each find and each restart (root only).

Usage: .venv/bin/python bench/b3_restart.py [--quick] [--runs N] [--home DIR] [--cold] [--json FILE]
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

from bench.arrivals import wait_quiet
from bench.daemon_under_test import Daemon, fake_compass, make_config, parse_ready
from bench.figures import median
from bench.machine import machine_info, python_start_baseline, time_find
from bench.procfs import drop_caches
from bench.reporting import Report, base_parser, finish, runs_of, temp_dir
from bench.shared_home import add_home_args, home_for

READY_GOAL_S = 1.0
RSS_GOAL_MB = 80.0


def watermark(state_dir: Path) -> int | None:
    """The daemon's last complete scan time (meta ``watermark:jenkins``), read from its stopped state."""
    db = sqlite3.connect(f"file:{state_dir / 'buildtail.sqlite3'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'watermark:jenkins'").fetchone()
    finally:
        db.close()
    return None if row is None else int(row[0])


def cold_find(home: Path, cold: bool) -> tuple[float, int]:
    if not cold:
        return time_find(home, 3)
    times = []
    count = 0
    for _ in range(3):
        drop_caches()
        t, count = time_find(home, 1)
        times.append(t)
    return median(times), count


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0] if __doc__ else "B3")
    add_home_args(p)
    p.add_argument("--cold", action="store_true", help="drop the page cache before each measurement")
    args = p.parse_args(argv)
    runs = runs_of(args)
    report = Report("B3", "restart on a large home, state current", args.quick)
    if args.cold and not drop_caches():
        raise SystemExit("--cold needs root (writing /proc/sys/vm/drop_caches)")
    with temp_dir(args, "b3") as tmp:
        report.machine = machine_info(tmp)
        home = home_for(args, tmp)
        report.params = {
            **home.params,
            "runs": runs,
            "cache": "cold" if args.cold else "warm",
        }
        find_s, found = cold_find(home.root, args.cold)
        baseline = python_start_baseline()
        with fake_compass() as compass:
            cfg = make_config(tmp, home.root, compass)
            init = Daemon(tmp, cfg, name="b3-first-start").start()
            init.wait_ready(900)
            wait_quiet(compass, 1.0)
            init.stop()
            first_watermark = watermark(tmp / "state")
            # A restart that completes its catch-up records the watermark ("state current").
            warm = Daemon(tmp, cfg, name="b3-warm-up-restart").start()
            warmup_ready = warm.wait_ready(1800)
            warm.stop()
            if watermark(tmp / "state") is None:
                raise RuntimeError("the daemon recorded no watermark: the state is not current")
            before = len(compass.requests)
            for i in range(runs):
                if args.cold:
                    drop_caches()
                d = Daemon(tmp, cfg, name=f"b3-restart-{i + 1}")
                with d:
                    ready = d.wait_ready(900)
                    rss = d.rss_mb()
                    cpu = d.cpu_s()
                    facts = parse_ready(d.ready_line)
                    time.sleep(1.0)
                    peak = d.peak_rss_mb()
                    watches = d.inotify_watches()
                report.runs.append(
                    {
                        "ready_s": round(ready, 3),
                        "cpu_to_ready_s": round(cpu, 2),
                        "rss_at_ready_mb": round(rss, 1),
                        "peak_rss_mb": round(peak, 1),
                        "watches": watches,
                        "ready_line": facts,
                    }
                )
            sent = len(compass.requests) - before
    ready = median([r["ready_s"] for r in report.runs])
    peak = median([r["peak_rss_mb"] for r in report.runs])
    rss = median([r["rss_at_ready_mb"] for r in report.runs])
    cpu = median([r["cpu_to_ready_s"] for r in report.runs])
    report.figures = {
        "ready_s": ready,
        "find_s": find_s,
        "find_matches": found,
        "ratio_to_find": ready / find_s,
        "peak_rss_mb": peak,
        "rss_at_ready_mb": rss,
        "cpu_to_ready_s": cpu,
        "python_import_baseline_s": baseline,
        "requests_sent_on_restarts": sent,
        "warm_up_restart_ready_s": warmup_ready,
        "watermark_after_first_start": first_watermark is not None,
    }
    report.check("time to ready", f"{ready:.3f} s", f"<= {READY_GOAL_S:g} s", ready <= READY_GOAL_S)
    report.check("peak RSS (VmHWM)", f"{peak:.1f} MB", f"<= {RSS_GOAL_MB:g} MB", peak <= RSS_GOAL_MB)
    report.check("RSS at ready", f"{rss:.1f} MB", f"<= {RSS_GOAL_MB:g} MB", rss <= RSS_GOAL_MB)
    report.check("find -name build.xml", f"{find_s:.3f} s ({found} files)", "-", None)
    report.check("ratio ready / find", f"{ready / find_s:.1f}x", "(reported)", None)
    report.check("CPU time to ready", f"{cpu:.2f} s", "-", None)
    report.check("python + imports alone", f"{baseline:.3f} s", "-", None)
    report.check("requests sent by restarts", str(sent), "0", sent == 0)
    report.check(
        "warm-up restart (after the first start)",
        f"{warmup_ready:.3f} s",
        "-",
        None,
    )
    if first_watermark is None:
        report.notes.append(
            "the first start recorded no watermark (meta watermark:jenkins), so the warm-up restart after it "
            f"looked at every run again ({warmup_ready:.1f} s): see BENCHMARKS.md"
        )
    return finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
