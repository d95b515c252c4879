"""Short runs right behind another one, right after the start, through the real daemon process.

The daemon starts on a freshly written home with one run in progress; its IN_PROGRESS arrives; that
run finishes and six short runs follow at once, round-robin over a freestyle, a folder and a Pipeline
job. Every run must arrive within seconds in both watch modes, never at the next reconcile scan.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon.test_burst_after_start import JOBS, burst
from tests.e2e.conftest import Daemon, make_config
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]
TRIALS = int(os.environ.get("BUILDTAIL_BURST_TRIALS", "4"))
ARRIVES_WITHIN_S = 5.0


def _finished(compass: FakeCompass) -> set[str]:
    return {
        e["event"]["build"]["buildProperties"]["pipeline"]["pipelineId"]
        for e in compass.events
        if e["event"]["build"]["buildProperties"]["state"] != "IN_PROGRESS"
    }


def _arrived(compass: FakeCompass, written: set[str], within: float) -> set[str]:
    """The runs of ``written`` whose final event arrived, waiting up to ``within`` seconds for all."""
    deadline = time.monotonic() + within
    while not written <= _finished(compass) and time.monotonic() < deadline:
        time.sleep(0.02)
    return written & _finished(compass)


@pytest.mark.parametrize("watch", ["inotify", "polling"])
def test_no_run_of_a_burst_after_the_start_waits_for_the_scan(
    tmp_path: Path, compass: FakeCompass, daemon_factory: DaemonFactory, watch: str
) -> None:
    late: dict[int, list[str]] = {}
    for trial in range(TRIALS):
        compass.clear()
        home = JenkinsHome(tmp_path / f"jenkins-{trial}")
        for name, kind in JOBS:
            home.job(name, kind).start().finish("SUCCESS")  # history
        running = home.job("app").start()
        cfg = make_config(tmp_path / f"t{trial}", home, compass, watch=watch, reconcile_interval="1h")
        (tmp_path / f"t{trial}").mkdir()
        daemon = daemon_factory(cfg)
        compass.wait_for(lambda events: bool(events), timeout=10)  # the run in progress
        written = set(burst(home, running))
        arrived = _arrived(compass, written, ARRIVES_WITHIN_S)
        if arrived != written:
            late[trial] = sorted(written - arrived)
            print(daemon.stderr)  # shown by pytest when the test fails
        daemon.stop()
    assert not late, f"{len(late)} of {TRIALS} trials had a late run: {late}"
