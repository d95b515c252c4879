"""B8: build servers sharing one Compass account: the 429 share and the drain time against the floor.

Method: one fake Compass enforcing a per-account limit (``--limit``, 100 a minute) over a sliding
60 s window of the events it accepted from every sender; beyond it an event is answered 429 with
``Retry-After`` the seconds until a slot frees. Three real daemons (default pacing: their own
``rate_limit_per_minute`` is the account's limit, ``burst`` 10), each with its own Jenkins home and
state, start; then each home gets ``--builds`` builds finished in quick succession (the backlog).
Measured until every run's final event is accepted: requests, 429 answers, the drain time (first
request to last acceptance) and the floor, the time the account allows for what was accepted
(``60 s x accepted / limit``). Then the same backlog, all of it, from one host alone: it must get
the whole budget (no 429, drain time near the floor).

Goals: 429 share <= 3 % and drain <= 1.3 x the floor with three hosts; one host alone no 429.

Usage: .venv/bin/python bench/b8_shared_account.py [--quick] [--runs N] [--hosts N] [--builds N]
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from bench.arrivals import event_state, pipeline_id, wait_until
from bench.daemon_under_test import Daemon, make_config
from bench.figures import median
from bench.machine import machine_info
from bench.reporting import Report, base_parser, finish, runs_of, temp_dir
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

SHARE_GOAL = 0.03
DRAIN_GOAL = 1.3
JOBS = ("app", "team/api", "deploy")


def _config(tmp: Path, home: JenkinsHome, compass: FakeCompass, limit: int) -> dict[str, Any]:
    cfg = make_config(tmp, home.root, compass)
    cfg["compass"].pop("rate_limit_per_minute")  # the defaults: 100 a minute, burst 10
    cfg["compass"].pop("burst")
    if limit != 100:
        cfg["compass"]["rate_limit_per_minute"] = limit
    return cfg


def _backlog(home: JenkinsHome, builds: int, written: list[str]) -> None:
    jobs = [home.job(name) for name in JOBS]
    for i in range(builds):
        job = jobs[i % len(jobs)]
        run = job.start()
        run.finish("SUCCESS" if i % 5 else "FAILURE")
        written.append(f"{job.full_name}#{run.number}")


def _one(tmp: Path, hosts: int, builds: int, limit: int, timeout: float) -> dict[str, Any]:
    with FakeCompass(token="bench-token-not-a-secret", account_limit_per_minute=limit) as compass:
        daemons = []
        homes = []
        for h in range(hosts):
            work = tmp / f"host{h}"
            work.mkdir()
            home = JenkinsHome(work / "jenkins")
            for name in JOBS:
                home.job(name)
            cfg = _config(work, home, compass, limit)
            cfg["host"] = f"build{h:02d}.example.com"
            daemons.append(Daemon(work, cfg, name=f"b8-host{h}"))
            homes.append(home)
        try:
            for d in daemons:
                d.start()
            for d in daemons:
                d.wait_ready()
            written: list[list[str]] = [[] for _ in homes]
            writers = [
                threading.Thread(target=_backlog, args=(home, builds, out))
                for home, out in zip(homes, written, strict=True)
            ]
            for w in writers:
                w.start()
            for w in writers:
                w.join()
            expected = {(h, p) for h, out in enumerate(written) for p in out}

            def final() -> set[tuple[int, str]]:
                out = set()
                for r in compass.requests:
                    if r.status == 202 and event_state(r.body) not in (None, "IN_PROGRESS"):
                        host = r.body["event"]["build"]["externalEventSourceId"]
                        out.add((int(host[5:7]), pipeline_id(r.body) or ""))
                return out

            wait_until(
                lambda: expected <= final(), timeout=timeout, what="every run's final event", interval=0.2
            )
            requests = [r for r in compass.requests if r.path.endswith("/events")]
        finally:
            for d in daemons:
                d.stop()
        assert not compass.invalid, compass.invalid[:3]
    accepted = [r for r in requests if r.status == 202]
    limited = [r for r in requests if r.status == 429]
    first = min(r.at for r in requests)
    drain = max(r.at for r in accepted) - first
    floor = 60.0 * len(accepted) / limit
    busiest = max(sum(1 for u in accepted if r.at <= u.at < r.at + 60) for r in accepted)
    return {
        "runs": len(expected),
        "requests": len(requests),
        "accepted": len(accepted),
        "429": len(limited),
        "share_429": len(limited) / len(requests),
        "drain_s": drain,
        "floor_s": floor,
        "drain_ratio": drain / floor if floor else 0.0,
        "busiest_minute": busiest,
    }


def main() -> int:
    p = base_parser(__doc__.splitlines()[0] if __doc__ else "B8", full_runs=3)
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--builds", type=int, default=None, help="per host (full: 84, quick: 6)")
    p.add_argument("--limit", type=int, default=None, help="the account's requests a minute (full: 100)")
    args = p.parse_args()
    builds = args.builds or (6 if args.quick else 84)
    limit = args.limit or (600 if args.quick else 100)
    report = Report("B8", "hosts sharing one Compass account", args.quick)
    report.params = {"hosts": args.hosts, "builds_per_host": builds, "account_limit_per_minute": limit}
    report.machine = machine_info()
    timeout = 600.0
    with temp_dir(args, "b8") as tmp:
        shared, alone = [], []
        for i in range(runs_of(args)):
            run_dir = tmp / f"shared-{i}"
            run_dir.mkdir()
            shared.append(_one(run_dir, args.hosts, builds, limit, timeout))
            report.runs.append({"mode": f"{args.hosts} hosts", **shared[-1]})
            run_dir = tmp / f"alone-{i}"
            run_dir.mkdir()
            alone.append(_one(run_dir, 1, builds * args.hosts, limit, timeout))
            report.runs.append({"mode": "1 host", **alone[-1]})
    share = median([r["share_429"] for r in shared])
    ratio = median([r["drain_ratio"] for r in shared])
    report.figures = {"shared": shared, "alone": alone}
    report.check(
        f"{args.hosts} hosts: 429 share", f"{share:.1%}", f"<= {SHARE_GOAL:.0%}", share <= SHARE_GOAL
    )
    report.check(
        f"{args.hosts} hosts: drain / floor",
        f"{median([r['drain_s'] for r in shared]):.0f} s / {median([r['floor_s'] for r in shared]):.0f} s "
        f"= {ratio:.2f}x",
        f"<= {DRAIN_GOAL}x",
        ratio <= DRAIN_GOAL,
    )
    alone_429 = max(r["429"] for r in alone)
    report.check("1 host: 429 answers", str(alone_429), "0", alone_429 == 0)
    report.check(
        "1 host: drain / floor",
        f"{median([r['drain_s'] for r in alone]):.0f} s / {median([r['floor_s'] for r in alone]):.0f} s "
        f"= {median([r['drain_ratio'] for r in alone]):.2f}x",
        "-",
        None,
    )
    report.check("1 host: busiest minute", str(max(r["busiest_minute"] for r in alone)), f"<= {limit}", None)
    return finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
