"""B5: idle cost on a large home: CPU share over 60 s, inotify watches, RSS.

Method: the home of B3 (2,000 jobs x 50 finished builds + 20 running; ``--home`` to reuse one).
The daemon is started once on a fresh state (first start) and stopped; each run then restarts it
(state current), waits 2 s after ``ready:``, and reads utime+stime of the whole process from
/proc/<pid>/stat before and after ``--idle`` seconds (60; 3 in quick mode) in which nothing is
written to the home. Watches are counted from /proc/<pid>/fdinfo (``inotify wd:`` lines) and
compared with jobs + running builds. The reconcile scan (every ``reconcile_interval``, default
5 min) does not fall into a 60 s window; its cost is measured separately in this process
(JenkinsSource.discover + scan, as ``Service._reconcile`` calls them) and shown amortised.

Usage: .venv/bin/python bench/b5_idle.py [--quick] [--runs N] [--home DIR] [--idle S] [--json FILE]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

from bench.arrivals import wait_quiet
from bench.daemon_under_test import Daemon, fake_compass, make_config
from bench.figures import median
from bench.machine import machine_info
from bench.reporting import Report, base_parser, finish, runs_of, temp_dir
from bench.shared_home import add_home_args, home_for

CPU_GOAL_PCT = 0.5
SETTLE_S = 2.0


def reconcile_cost(tmp: Path, home: Path) -> tuple[float, float, int]:
    """CPU and wall seconds of one reconcile scan (discover + scan since the last one), in-process."""
    from daemon.config import load_settings
    from daemon.sources.jenkins.source import JenkinsSource

    path = tmp / "reconcile-probe.yaml"
    cfg = make_config(tmp, home, None)
    cfg.pop("metrics", None)
    path.write_text(yaml.safe_dump(cfg))
    settings = load_settings(path)
    source = JenkinsSource(settings.sources[0], host=settings.host)
    source.discover()
    source.scan(first_start=False, since_ms=None, open_dirs=set())  # warm the cache like a daemon's
    since = time.time_ns() // 1_000_000 - 5000
    c0, w0 = time.process_time(), time.monotonic()
    source.discover()
    found = source.scan(first_start=False, since_ms=since, open_dirs=set())
    return time.process_time() - c0, time.monotonic() - w0, len(found)


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0] if __doc__ else "B5")
    add_home_args(p)
    p.add_argument("--idle", type=float, default=None, help="idle window in seconds (full: 60, quick: 3)")
    args = p.parse_args(argv)
    runs = runs_of(args)
    idle = args.idle or (3.0 if args.quick else 60.0)
    report = Report("B5", "idle on a large home", args.quick)
    with temp_dir(args, "b5") as tmp:
        report.machine = machine_info(tmp)
        home = home_for(args, tmp)
        report.params = {
            **home.params,
            "idle_s": idle,
            "runs": runs,
            "reconcile_interval": "300s (default)",
        }
        with fake_compass() as compass:
            cfg = make_config(tmp, home.root, compass)
            init = Daemon(tmp, cfg, name="b5-first-start").start()
            init.wait_ready(900)
            wait_quiet(compass, 1.0)
            init.stop()
            for i in range(runs):
                d = Daemon(tmp, cfg, name=f"b5-idle-{i + 1}")
                with d:
                    d.wait_ready(900)
                    time.sleep(SETTLE_S)
                    before = len(compass.requests)
                    c0, t0 = d.cpu_s(), time.monotonic()
                    time.sleep(idle)
                    c1, t1 = d.cpu_s(), time.monotonic()
                    watches = d.inotify_watches()
                    rss = d.rss_mb()
                    sent = len(compass.requests) - before
                report.runs.append(
                    {
                        "cpu_s": round(c1 - c0, 3),
                        "cpu_pct": round((c1 - c0) / (t1 - t0) * 100, 3),
                        "watches": watches,
                        "rss_mb": round(rss, 1),
                        "requests": sent,
                    }
                )
        rc_cpu, rc_wall, rc_found = reconcile_cost(tmp, home.root)
    pct = median([r["cpu_pct"] for r in report.runs])
    watches = int(median([r["watches"] for r in report.runs]))
    rss = median([r["rss_mb"] for r in report.runs])
    allowed = home.jobs + home.running
    amortised = rc_cpu / 300.0 * 100
    report.figures = {
        "idle_cpu_pct": pct,
        "watches": watches,
        "watch_budget": allowed,
        "rss_mb": rss,
        "reconcile_cpu_s": rc_cpu,
        "reconcile_wall_s": rc_wall,
        "reconcile_amortised_pct": amortised,
    }
    report.check(
        f"CPU over {idle:g} s idle", f"{pct:.3f} % of a core", f"<= {CPU_GOAL_PCT:g} %", pct <= CPU_GOAL_PCT
    )
    report.check(
        "inotify watches",
        str(watches),
        f"<= {allowed} (jobs {home.jobs} + running {home.running})",
        watches <= allowed,
    )
    report.check("RSS while idle", f"{rss:.1f} MB", "-", None)
    report.check("one reconcile scan (CPU)", f"{rc_cpu:.2f} s ({rc_wall:.2f} s wall)", "-", None)
    report.check("reconcile amortised over 5 min", f"{amortised:.3f} % of a core", "-", None)
    report.check("idle + amortised reconcile", f"{pct + amortised:.3f} % of a core", "-", None)
    if watches > allowed:
        report.notes.append(
            f"watches - jobs - running = {watches - allowed}: the container directories (jobs/, folders'"
            " jobs/, multibranch branches/) are watched too, one each"
        )
    if rc_found:
        report.notes.append(f"the reconcile probe found {rc_found} run(s) changed in the last 5 s")
    return finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
