"""A real overflow of the kernel's inotify queue, in the real daemon: the builds that follow arrive
as quickly as any other, and the overflow costs one rescan, logged once."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Daemon, make_config, metric, wait_until
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")

DaemonFactory = Callable[..., Daemon]
QUEUE_LIMIT = Path("/proc/sys/fs/inotify/max_queued_events")
FOLLOWING = 9  # builds after the overflow
# Each must arrive within this: the reconcile scan is an hour away, so a build that arrives at all in
# this time was seen by a watch; the margin is for a loaded machine (the median is about 25 ms idle).
LATENCY_S = 10.0


def _flood(directory: Path, events: int) -> None:
    """Creates files in a watched directory: each is two inotify events (created, closed after
    writing), all of which the kernel queues, whatever the daemon's rules would drop later."""
    for i in range(events // 2 + 1):
        fd = os.open(directory / f"churn-{i}", os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)


def test_builds_after_a_kernel_queue_overflow_arrive_at_once(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    limit = int(QUEUE_LIMIT.read_text()) if QUEUE_LIMIT.exists() else 0
    if not 0 < limit <= 200_000:
        pytest.skip(f"fs.inotify.max_queued_events is {limit}: too many events to overflow it quickly")
    job = home.job("app")
    job.start().finish("SUCCESS")  # history: the builds directory exists and is watched
    daemon = daemon_factory(make_config(tmp_path, home, compass, reconcile_interval="1h"))
    before = time.monotonic()
    os.kill(daemon.pid, signal.SIGSTOP)  # a stalled daemon: nobody reads the inotify descriptor
    try:
        _flood(job.builds_dir, limit + 1000)
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    wait_until(lambda: "inotify queue overflowed" in daemon.stderr, timeout=30, what="the overflow noticed")
    flood_s = time.monotonic() - before

    latencies = []
    for n in range(2, 2 + FOLLOWING):
        started = time.monotonic()
        job.start().finish("SUCCESS")

        def arrived(_: list[dict[str, Any]], n: int = n) -> bool:
            return any(
                e["event"]["build"]["buildProperties"]["state"] == "SUCCESSFUL"
                for e in compass.builds().get(f"app#{n}", [])
            )

        compass.wait_for(arrived, timeout=LATENCY_S)
        latencies.append(time.monotonic() - started)

    print(  # the figure for the record: pytest -s shows it
        f"overflow after {limit + 1000} events ({flood_s:.1f}s); {FOLLOWING} of {FOLLOWING} builds "
        f"arrived, median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    assert daemon.stderr.count("inotify queue overflowed") == 1, "one overflow, one line"
    assert metric(daemon, "buildtail_inotify_overflows_total") == 1
    assert metric(daemon, "buildtail_inotify_reader_stops_total") == 0
    assert "Traceback" not in daemon.stderr
    assert compass.invalid == []
    assert daemon.stop() == 0
