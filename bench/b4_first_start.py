"""B4: first start on a large home (nothing known yet): time to ready vs ``find``, and no history sent.

Method: the home of B3 (2,000 jobs x 50 finished builds + 20 running; ``--home`` to reuse one).
Each run starts the daemon on a fresh, empty state directory and measures the wall time from
spawning the process to its ``ready:`` log line, the RSS, and then waits until no request has
arrived for 2 s. On a first start only the runs in progress are news: the fake Compass must
receive exactly one IN_PROGRESS per running build and no terminal event at all (history).
``find <home> -name build.xml`` is timed on the same home; the goal is ready <= 2x that time.

Usage: .venv/bin/python bench/b4_first_start.py [--quick] [--runs N] [--home DIR] [--cold] [--json FILE]
"""

from __future__ import annotations

import sys

from bench.arrivals import Arrivals, wait_quiet
from bench.b3_restart import cold_find
from bench.daemon_under_test import Daemon, fake_compass, make_config
from bench.figures import median
from bench.machine import machine_info, python_start_baseline
from bench.procfs import drop_caches
from bench.reporting import Report, base_parser, finish, runs_of, temp_dir
from bench.shared_home import add_home_args, home_for

RATIO_GOAL = 2.0


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0] if __doc__ else "B4")
    add_home_args(p)
    p.add_argument("--cold", action="store_true", help="drop the page cache before each measurement")
    args = p.parse_args(argv)
    runs = runs_of(args)
    report = Report("B4", "first start on a large home", args.quick)
    if args.cold and not drop_caches():
        raise SystemExit("--cold needs root (writing /proc/sys/vm/drop_caches)")
    quiet = 1.0 if args.quick else 2.0
    with temp_dir(args, "b4") as tmp:
        report.machine = machine_info(tmp)
        home = home_for(args, tmp)
        report.params = {
            **home.params,
            "runs": runs,
            "cache": "cold" if args.cold else "warm",
        }
        find_s, found = cold_find(home.root, args.cold)
        baseline = python_start_baseline()
        history = 0
        wrong_in_progress = 0
        for i in range(runs):
            with fake_compass() as compass:
                cfg = make_config(tmp, home.root, compass, state_dir=tmp / f"state-{i + 1}")
                if args.cold:
                    drop_caches()
                d = Daemon(tmp, cfg, name=f"b4-first-start-{i + 1}")
                with d:
                    ready = d.wait_ready(900)
                    rss = d.rss_mb()
                    cpu = d.cpu_s()
                    wait_quiet(compass, quiet)
                    peak = d.peak_rss_mb()
                arr = Arrivals(compass)
                arr.update()
            history += len(arr.terminal)
            wrong_in_progress += abs(len(arr.in_progress) - home.running)
            report.runs.append(
                {
                    "ready_s": round(ready, 3),
                    "cpu_to_ready_s": round(cpu, 2),
                    "rss_at_ready_mb": round(rss, 1),
                    "peak_rss_mb": round(peak, 1),
                    "in_progress_sent": len(arr.in_progress),
                    "terminal_sent": len(arr.terminal),
                }
            )
    ready = median([r["ready_s"] for r in report.runs])
    peak = median([r["peak_rss_mb"] for r in report.runs])
    cpu = median([r["cpu_to_ready_s"] for r in report.runs])
    ratio = ready / find_s
    report.figures = {
        "ready_s": ready,
        "find_s": find_s,
        "find_matches": found,
        "ratio_to_find": ratio,
        "peak_rss_mb": peak,
        "cpu_to_ready_s": cpu,
        "python_import_baseline_s": baseline,
        "history_events_sent": history,
    }
    goal_s = RATIO_GOAL * find_s
    report.check("time to ready", f"{ready:.3f} s", f"<= {goal_s:.3f} s (2x find)", ratio <= RATIO_GOAL)
    report.check("find -name build.xml", f"{find_s:.3f} s ({found} files)", "-", None)
    report.check("ratio ready / find", f"{ratio:.1f}x", f"(goal {RATIO_GOAL:g}x)", None)
    report.check("history events sent (terminal)", str(history), "0", history == 0)
    report.check(
        "IN_PROGRESS sent vs running builds",
        f"{median([r['in_progress_sent'] for r in report.runs]):g} vs {home.running}",
        "equal",
        wrong_in_progress == 0,
    )
    report.check("peak RSS (VmHWM)", f"{peak:.1f} MB", "-", None)
    report.check("CPU time to ready", f"{cpu:.2f} s", "-", None)
    report.check("python + imports alone", f"{baseline:.3f} s", "-", None)
    return finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
