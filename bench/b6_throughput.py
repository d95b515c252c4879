"""B6: delivery throughput to the fake Compass with the rate budget off, and the daemon's memory.

Method: a home of 100 jobs (10 in quick mode). The daemon starts once on it while it has no builds
(first start: records the history cut-off) and is stopped. Then K finished builds (10,000; 500 in
quick mode) are written directly in fake_jenkins' format with current file times, so they are news,
not history. The daemon is restarted: its catch-up scan queues all K terminal events in the outbox
before ``ready:``, then the sender drains it. Measured: time to ready (queueing), the delivery rate
from the first to the last request arriving at the sink (and per 1 s window, and over the first and
last 10 % of the events), and VmRSS sampled every 100 ms. ``rate_limit_per_minute: 0`` turns
pacing off.

Two sinks (``--sink both``, the default): the fake Compass of tools/fake_compass/ (in this
process, aiohttp in a thread, validating every body against the JSON schema), on which the goal is
judged, and a light sink (a minimal aiohttp app in its own process that answers 202 and validates
nothing), which shows the daemon's own ceiling. Each sink's ceiling is measured afterwards by
replaying recorded bodies from a separate process with one sequential aiohttp client, as the daemon
sends.

Usage: .venv/bin/python bench/b6_throughput.py [--quick] [--runs N] [--events K] [--sink fake|light|both]
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.arrivals import wait_until
from bench.daemon_under_test import Daemon, fake_compass, free_port, make_config
from bench.figures import median
from bench.machine import machine_info
from bench.reporting import Report, base_parser, finish, runs_of, temp_dir
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import generate_home

RATE_GOAL = 1000.0
FLAT_GOAL = 0.10  # RSS may grow by at most 10 % while the queue drains

REPLAY = r"""
import asyncio, sys, time
import aiohttp

async def replay(url, auth, path):
    bodies = [line.encode() for line in open(path).read().splitlines()]
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        t0 = time.monotonic()
        for body in bodies:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
        print(len(bodies) / (time.monotonic() - t0))

asyncio.run(replay(*sys.argv[1:4]))
"""

SINK = r"""
import sys, time
from aiohttp import web

times, bodies = [], []

async def events(request):
    body = await request.read()
    times.append(time.monotonic())
    if len(bodies) < 2000:
        bodies.append(body.decode())
    return web.Response(status=202)

async def report(request):
    return web.json_response({"times": times, "bodies": bodies})

app = web.Application()
app.router.add_post("/gateway/api/compass/v1/events", events)
app.router.add_get("/_times", report)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


class LightSink:
    """A minimal events endpoint in its own process: answers 202, records arrival times
    (CLOCK_MONOTONIC is system-wide), validates nothing."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cloud_id = "cloud-123"
        self.email = "ci-bot@example.com"
        self.expected_authorization = "unused"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gateway/api"

    @property
    def url(self) -> str:
        return f"{self.base_url}/compass/v1/events"

    def __enter__(self) -> LightSink:
        self.proc = subprocess.Popen([sys.executable, "-c", SINK, str(self.port)])
        wait_until(self._up, 20, "the light sink to listen", 0.05)
        return self

    def _up(self) -> bool:
        try:
            self._get()
            return True
        except OSError:
            return False

    def _get(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_times", timeout=30) as resp:
            return dict(json.loads(resp.read()))

    def times(self) -> list[float]:
        return [float(t) for t in self._get()["times"]]

    def bodies(self) -> list[str]:
        return [str(b) for b in self._get()["bodies"]]

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


class RssSampler(threading.Thread):
    def __init__(self, daemon: Daemon, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.d = daemon
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.samples.append((time.monotonic(), self.d.rss_mb()))
            except (OSError, KeyError):
                pass
            self.stop_event.wait(self.every)


def replay_ceiling(tmp: Path, url: str, auth: str, bodies: list[str]) -> float:
    """Requests/s the sink takes from one sequential aiohttp client in another process."""
    path = tmp / "replay.jsonl"
    path.write_text("\n".join(bodies) + "\n")
    out = subprocess.run(
        [sys.executable, "-c", REPLAY, url, auth, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def one_run(tmp: Path, jobs: int, events: int, sink: str) -> dict[str, Any]:
    per_job = events // jobs
    events = per_job * jobs
    home = generate_home(tmp / "home", jobs, 0)
    with fake_compass() if sink == "fake" else LightSink() as compass:
        cfg = make_config(tmp, home.root, compass)  # type: ignore[arg-type]
        init = Daemon(tmp, cfg, name="b6-first-start").start()
        init.wait_ready()
        init.stop()
        t0 = time.monotonic()
        generate_home(home.root, jobs, per_job, backdate=False)
        write_s = time.monotonic() - t0

        def delivered() -> int:
            if isinstance(compass, FakeCompass):
                return len(compass.requests)
            return len(compass.times())

        d = Daemon(tmp, cfg, name=f"b6-drain-{sink}")
        with d:
            sampler = RssSampler(d)
            sampler.start()
            ready = d.wait_ready(600)
            wait_until(lambda: delivered() >= events, events / 100 + 120, f"{events} requests", 0.2)
            time.sleep(0.3)
            sampler.stop_event.set()
            sampler.join()
            peak = d.peak_rss_mb()
        if isinstance(compass, FakeCompass):
            reqs = compass.requests
            bad = [r for r in reqs if r.status != 202]
            if bad:
                raise RuntimeError(f"{len(bad)} not accepted, e.g. HTTP {bad[0].status}: {bad[0].raw[:200]}")
            at = sorted(r.at for r in reqs)
            bodies = [r.raw for r in reqs[:2000]]
        else:
            at = sorted(compass.times())
            bodies = compass.bodies()
        ceiling = replay_ceiling(tmp, compass.url, compass.expected_authorization, bodies)
    first, last = at[0], at[-1]
    span = last - first
    rate = (len(at) - 1) / span if span > 0 else math.inf
    buckets = [0] * max(1, int(span))
    for a in at:
        k = int(a - first)
        if k < len(buckets):
            buckets[k] += 1
    tenth = max(1, len(at) // 10)
    first_tenth = tenth / max(1e-9, at[tenth] - at[0])
    last_tenth = tenth / max(1e-9, at[-1] - at[-1 - tenth])
    drain = [rss for t, rss in sampler.samples if first <= t <= last] or [rss for _, rss in sampler.samples]
    return {
        "events": len(at),
        "write_s": round(write_s, 2),
        "ready_s": round(ready, 2),
        "queue_rate_per_s": round(events / ready, 1),
        "drain_s": round(span, 2),
        "rate_per_s": round(rate, 1),
        "min_1s_window": min(buckets) if len(buckets) > 1 else None,
        "first_10pct_rate": round(first_tenth, 1),
        "last_10pct_rate": round(last_tenth, 1),
        "rss_drain_start_mb": round(drain[0], 1),
        "rss_drain_max_mb": round(max(drain), 1),
        "rss_drain_end_mb": round(drain[-1], 1),
        "peak_rss_mb": round(peak, 1),
        "sink_ceiling_per_s": round(ceiling, 1),
    }


def summarise(report: Report, runs: list[dict[str, Any]], label: str, *, goal: bool) -> dict[str, float]:
    def med(key: str) -> float:
        return median([float(r[key]) for r in runs])

    rate = med("rate_per_s")
    growth = median(
        [(r["rss_drain_max_mb"] - r["rss_drain_start_mb"]) / r["rss_drain_start_mb"] for r in runs]
    )
    ceiling = med("sink_ceiling_per_s")
    report.check(
        f"{label}: delivery rate",
        f"{rate:.0f} events/s",
        f">= {RATE_GOAL:g}/s",
        rate >= RATE_GOAL if goal else None,
    )
    windows = [r["min_1s_window"] for r in runs if r["min_1s_window"] is not None]
    if windows:
        report.check(f"{label}: slowest 1 s window", f"{median(windows):.0f} events", "-", None)
    report.check(
        f"{label}: rate first / last 10 %",
        f"{med('first_10pct_rate'):.0f} / {med('last_10pct_rate'):.0f} events/s",
        "-",
        None,
    )
    report.check(
        f"{label}: RSS growth draining",
        f"{growth * 100:+.1f} %",
        f"<= +{FLAT_GOAL * 100:g} %",
        growth <= FLAT_GOAL if goal else None,
    )
    report.check(
        f"{label}: RSS start/max/end",
        f"{med('rss_drain_start_mb'):.1f} / {med('rss_drain_max_mb'):.1f} / {med('rss_drain_end_mb'):.1f} MB",
        "-",
        None,
    )
    report.check(f"{label}: queueing K (to ready)", f"{med('ready_s'):.2f} s", "-", None)
    report.check(f"{label}: sink ceiling, 1 client", f"{ceiling:.0f} requests/s", "-", None)
    return {
        "rate_per_s": rate,
        "rss_growth": growth,
        "sink_ceiling_per_s": ceiling,
        "ready_s": med("ready_s"),
    }


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0] if __doc__ else "B6")
    p.add_argument("--events", type=int, default=None, help="events queued (full: 10000, quick: 500)")
    p.add_argument("--job-count", type=int, default=None, help="jobs (full: 100, quick: 10)")
    p.add_argument("--sink", choices=("fake", "light", "both"), default="both")
    args = p.parse_args(argv)
    runs = runs_of(args)
    events = args.events or (500 if args.quick else 10_000)
    jobs = args.job_count or (10 if args.quick else 100)
    sinks = ["fake", "light"] if args.sink == "both" else [args.sink]
    report = Report("B6", "delivery throughput, rate budget off", args.quick)
    report.params = {
        "events": events,
        "jobs": jobs,
        "runs": runs,
        "rate_limit": "off",
        "sinks": "+".join(sinks),
    }
    by_sink: dict[str, list[dict[str, Any]]] = {s: [] for s in sinks}
    for _ in range(runs):
        for sink in sinks:
            with temp_dir(args, "b6") as tmp:
                if not report.machine:
                    report.machine = machine_info(tmp)
                result = one_run(tmp, jobs, events, sink)
            by_sink[sink].append(result)
            report.runs.append({"sink": sink, **result})
    for sink in sinks:
        label = "fake Compass" if sink == "fake" else "light sink"
        report.figures[sink] = summarise(report, by_sink[sink], label, goal=sink == "fake")
    if "light" in sinks:
        report.notes.append(
            "goals are judged on the fake Compass (as specified); the light sink (own process, no "
            "validation) shows what the daemon itself does where the fake is the bottleneck"
        )
    return finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
