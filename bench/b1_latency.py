"""B1: latency from a run's final build.xml rename to the request arriving at the fake Compass (inotify).

Method: a small home (50 jobs, alternating freestyle and Pipeline, 5 finished builds each) watched by
the real daemon with ``watch: inotify`` and the rate budget off. Builds are written by
tools/fake_jenkins exactly as Jenkins writes them. For each sample a run is started, its
IN_PROGRESS event is awaited (so the daemon is idle again), then ``Run.finish`` writes permalinks,
``Finished:`` and the final build.xml through temp file + rename. The time is taken with
time.monotonic() right after that rename returns (the atomic writer of fake_jenkins' runs is wrapped
for this); the end is the fake Compass' own time.monotonic() arrival stamp of the run's terminal event.

* concurrency 1: one run at a time;
* 50 concurrent runs, two ways per round: 50 runs on 50 jobs started together, then
  - ending within 1 s: each ends at its own random moment in the second after a barrier (a busy
    server: runs overlap, their ends are independent);
  - ending at once: all 50 behind one barrier, their renames within a few milliseconds (a burst:
    the 25th event waits for the 24 before it).

The daemon runs on a core of its own (``--no-pin``: shared with the writer and the fake Compass),
and the fake Compass checks every body against the schema after each sample, not before answering.

Usage: .venv/bin/python bench/b1_latency.py [--quick] [--runs N] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.arrivals import Arrivals, wait_until
from bench.daemon_under_test import Daemon, fake_compass, make_config
from bench.figures import median, ms, percentile
from bench.machine import machine_info
from bench.procfs import pin_threads, split_cpus
from bench.reporting import Report, base_parser, finish, runs_of, temp_dir
from tools import fake_jenkins
from tools.fake_jenkins import JenkinsHome, generate_home
from tools.fake_jenkins import _run as fake_jenkins_run

JOBS = 50
SPREAD_S = 1.0  # "within": the runs run together and end at independent moments, as a busy server's do


class RenameClock:
    """Wraps the atomic writer of fake_jenkins' runs: the monotonic time right after each build.xml rename.

    Patched in ``tools.fake_jenkins._run``, the module that writes build.xml and looks the name up there
    at each call.
    """

    def __init__(self) -> None:
        self.at: dict[Path, float] = {}
        self._orig = fake_jenkins_run._atomic_write

    def __enter__(self) -> RenameClock:
        orig = self._orig

        def timed(path: Path, data: bytes) -> None:
            orig(path, data)  # temp file, fsync, os.replace
            if path.name == "build.xml":
                self.at[path.parent] = time.monotonic()

        fake_jenkins_run._atomic_write = timed  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        fake_jenkins_run._atomic_write = self._orig  # type: ignore[assignment]


def _settle(watch: str, poll_interval: float) -> None:
    """Before finishing: a moment for inotify; a random phase of the poll period for polling."""
    time.sleep(0.02 if watch == "inotify" else random.uniform(0.0, poll_interval))


def measure(
    tmp: Path,
    *,
    watch: str,
    poll_interval: float,
    samples_c1: int,
    rounds_cn: int,
    conc: int,
    pin: bool = True,
) -> dict[str, Any]:
    """One daemon, fresh state: latencies (seconds) at concurrency 1 and ``conc``.

    With ``pin`` (and two cores or more) the daemon gets a core of its own and this process (the
    Jenkins writer's threads and the fake Compass) the others, as Compass would on a real network.
    The fake Compass checks every body against the schema between samples instead of before
    answering, so that one request's check does not delay the next one's arrival stamp.
    """
    home = generate_home(tmp / "home", max(JOBS, conc), 5)
    timeout = 15 + poll_interval * 3
    c1: list[float] = []
    cn: list[float] = []
    sn: list[float] = []
    split = split_cpus() if pin else None
    everything = os.sched_getaffinity(0)
    if split is not None:
        pin_threads(os.getpid(), split[0])
    try:
        with fake_compass(defer_validation=True) as compass, RenameClock() as clock:
            cfg = make_config(tmp, home.root, compass, watch=watch, poll_interval=f"{poll_interval}s")
            daemon = Daemon(tmp, cfg, name=f"b-{watch}", cpus=split[1] if split else None)
            with daemon:
                daemon.wait_ready()
                jh = JenkinsHome(home.root)
                jobs = [jh.job(name) for name in home.job_names]
                arr = Arrivals(compass)

                def seen(kind: dict[str, float], pids: list[str]) -> bool:
                    arr.update()
                    return all(p in kind for p in pids)

                for i in range(samples_c1):
                    job = jobs[i % len(jobs)]
                    run = job.start()
                    run.log("+ make")
                    pid = f"{job.full_name}#{run.number}"
                    wait_until(lambda pid=pid: seen(arr.in_progress, [pid]), timeout, f"IN_PROGRESS of {pid}")
                    _settle(watch, poll_interval)
                    run.finish("SUCCESS", duration_ms=1000)
                    t = clock.at[run.dir]
                    wait_until(lambda pid=pid: seen(arr.terminal, [pid]), timeout, f"terminal event of {pid}")
                    c1.append(arr.terminal[pid] - t)
                    compass.validate_deferred()

                for _ in range(rounds_cn):
                    cn.extend(_round(jobs[:conc], arr, seen, clock, watch, poll_interval, timeout))
                    compass.validate_deferred()
                    sn.extend(_round(jobs[:conc], arr, seen, clock, watch, poll_interval, timeout, SPREAD_S))
                    compass.validate_deferred()
                if arr.bad:
                    raise RuntimeError(f"the fake Compass refused requests: {arr.bad[:3]}")
                if compass.invalid:
                    raise RuntimeError(f"bodies against the schema: {compass.invalid[:3]}")
                errors = daemon.errors()
    finally:
        pin_threads(os.getpid(), everything)
    return {
        "c1_p50": percentile(c1, 50),
        "c1_p99": percentile(c1, 99),
        "c1_max": max(c1, default=float("nan")),
        "c1_n": len(c1),
        f"c{conc}_p50": percentile(cn, 50),
        f"c{conc}_p99": percentile(cn, 99),
        f"c{conc}_max": max(cn, default=float("nan")),
        f"c{conc}_n": len(cn),
        f"s{conc}_p50": percentile(sn, 50),
        f"s{conc}_p99": percentile(sn, 99),
        f"s{conc}_max": max(sn, default=float("nan")),
        f"s{conc}_n": len(sn),
        "daemon_errors": len(errors),
        "pinned": split is not None,
    }


def _round(
    jobs: list[fake_jenkins.Job],
    arr: Arrivals,
    seen: Callable[[dict[str, float], list[str]], bool],
    clock: RenameClock,
    watch: str,
    poll_interval: float,
    timeout: float,
    spread: float = 0.0,
) -> list[float]:
    """One run per job started, then all finished: at once (threads behind a barrier), or each at a
    random moment within ``spread`` seconds of the barrier."""
    runs = []
    for job in jobs:
        run = job.start()
        run.log("+ make")
        runs.append(run)
    pids = [f"{r.job.full_name}#{r.number}" for r in runs]
    wait_until(lambda: seen(arr.in_progress, pids), timeout, "IN_PROGRESS of a round")
    _settle(watch, poll_interval)
    barrier = threading.Barrier(len(runs))

    def finish_one(run: fake_jenkins.Run, delay: float) -> None:
        barrier.wait()
        if delay:
            time.sleep(delay)
        run.finish("SUCCESS", duration_ms=1000)

    threads = [threading.Thread(target=finish_one, args=(r, random.uniform(0, spread))) for r in runs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wait_until(lambda: seen(arr.terminal, pids), timeout * 2, "terminal events of a round")
    return [arr.terminal[p] - clock.at[r.dir] for p, r in zip(pids, runs, strict=True)]


def add_pin_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let the daemon share every core with the writer and the fake Compass",
    )


def run_benchmark(
    args: argparse.Namespace,
    *,
    bench: str,
    title: str,
    watch: str,
    poll_interval: float,
    samples_c1: int,
    rounds_cn: int,
    conc: int,
    goals: dict[str, float | None],
) -> Report:
    runs = runs_of(args)
    report = Report(bench, title, args.quick)
    report.params = {
        "watch": watch,
        "poll_interval": f"{poll_interval}s" if watch == "polling" else "-",
        "jobs": max(JOBS, conc),
        "samples_c1": samples_c1,
        f"samples_c{conc}": f"{rounds_cn}x{conc}",
        "runs": runs,
        "rate_limit": "off",
        "daemon_core": "own" if getattr(args, "pin", True) and split_cpus() else "shared",
    }
    for i in range(runs):
        with temp_dir(args, bench.lower()) as tmp:
            if i == 0:
                report.machine = machine_info(tmp)
            r = measure(
                tmp,
                watch=watch,
                poll_interval=poll_interval,
                samples_c1=samples_c1,
                rounds_cn=rounds_cn,
                conc=conc,
                pin=getattr(args, "pin", True),
            )
        report.runs.append(
            {k: (round(v * 1000, 2) if k[-3:] in ("p50", "p99", "max") else v) for k, v in r.items()}
        )
    labels = {
        "c1": "concurrency 1",
        f"s{conc}": f"{conc} running, ending within {SPREAD_S:g} s",
        f"c{conc}": f"{conc} running, ending at once",
    }
    for key in ("c1_p50", "c1_p99", f"s{conc}_p50", f"s{conc}_p99", f"c{conc}_p50", f"c{conc}_p99"):
        value = median([run[key] for run in report.runs]) / 1000
        report.figures[key + "_s"] = value
        label = f"{labels[key.split('_')[0]]} {key.split('_')[1]}"
        goal = goals.get(key.split("_")[1])
        if goal is None:
            report.check(label, ms(value), "-", None)
        else:
            report.check(label, ms(value), f"<= {goal * 1000:g} ms", value <= goal)
    if any(run["daemon_errors"] for run in report.runs):
        report.notes.append("the daemon logged errors; see the kept logs (--keep)")
    return report


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0] if __doc__ else "B1")
    add_pin_option(p)
    args = p.parse_args(argv)
    samples, rounds = (10, 1) if args.quick else (200, 10)
    report = run_benchmark(
        args,
        bench="B1",
        title="latency build.xml rename -> request at Compass, inotify",
        watch="inotify",
        poll_interval=2.0,
        samples_c1=samples,
        rounds_cn=rounds,
        conc=50,
        goals={"p50": 0.010, "p99": 0.050},
    )
    return finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
