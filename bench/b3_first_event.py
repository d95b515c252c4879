"""B3 (paced): restart to the first event with the default rate budget, on a 10,000-build home.

Method: a home of 200 jobs x 50 finished builds plus 3 running ones, the daemon with the default
pacing (``rate_limit_per_minute`` 100, ``burst`` 10) against a local fake Compass. The first start
sends the running builds' IN_PROGRESS, and the daemon is stopped. Then, ``--runs`` times: a build
finishes while the daemon is down, the daemon is started, and the wall time from spawning it to the
moment its event reaches Compass is taken (interpreter start, imports, catch-up and the rate
budget's wait included). The budget is rebuilt from the last minute's requests, so a restart that
has budget left sends at once. ``BUILDTAIL_BENCH_CODE=DIR`` measures a snapshot of other code.

Goal: restart to first event <= 1.0 s.

Usage: .venv/bin/python bench/b3_first_event.py [--quick] [--runs N]
"""

from __future__ import annotations

import sys
import time

from bench.arrivals import pipeline_id, wait_quiet, wait_until
from bench.daemon_under_test import Daemon, fake_compass, make_config
from bench.figures import median
from bench.machine import machine_info
from bench.reporting import Report, base_parser, finish, runs_of, temp_dir
from tools.fake_jenkins import JenkinsHome, generate_home

GOAL_S = 1.0


def main() -> int:
    p = base_parser(__doc__.splitlines()[0] if __doc__ else "B3 paced", full_runs=5)
    args = p.parse_args()
    runs = runs_of(args)
    jobs, builds = (10, 10) if args.quick else (200, 50)
    report = Report("B3-paced", "restart to the first event, default rate budget", args.quick)
    report.machine = machine_info()
    with temp_dir(args, "b3p") as tmp:
        info = generate_home(tmp / "home", jobs, builds, running=3)
        report.params = {**info.params, "runs": runs, "rate_limit_per_minute": 100, "burst": 10}
        home = JenkinsHome(info.root)
        with fake_compass() as compass:
            cfg = make_config(tmp, info.root, compass)
            cfg["compass"].pop("rate_limit_per_minute")  # the defaults
            cfg["compass"].pop("burst")
            first = Daemon(tmp, cfg, name="b3p-first-start").start()
            first.wait_ready(300)
            wait_quiet(compass, 1.0)
            first.stop()
            job = home.job(info.job_names[-1])  # not one of the running builds' jobs
            for i in range(runs):
                run = job.start()
                run.finish("SUCCESS")
                wanted = f"{job.full_name}#{run.number}"
                d = Daemon(tmp, cfg, name=f"b3p-restart-{i + 1}")
                with d:
                    spawned = d.spawned_at
                    wait_until(
                        lambda w=wanted: any(  # type: ignore[misc]
                            pipeline_id(r.body) == w and r.status == 202 for r in compass.requests
                        ),
                        60,
                        "the first event",
                        interval=0.002,
                    )
                    arrived = next(
                        r.at for r in compass.requests if pipeline_id(r.body) == wanted and r.status == 202
                    )
                    report.runs.append(
                        {"first_event_s": round(arrived - spawned, 3), "ready_s": round(d.wait_ready(60), 3)}
                    )
                time.sleep(0.2)
    first_event = median([r["first_event_s"] for r in report.runs])
    report.figures = {"first_event_s": first_event, "ready_s": median([r["ready_s"] for r in report.runs])}
    report.check("restart to first event", f"{first_event:.3f} s", f"<= {GOAL_S:g} s", first_event <= GOAL_S)
    report.check("restart to ready", f"{report.figures['ready_s']:.3f} s", "-", None)
    return finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
