"""The real Service in process: when watchdog's reader thread ends unasked, a new one takes over and
the next build arrives as quickly as before, without a restart of the process."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.conftest import StartService
from tests.inprocess import settings_from, until
from tools.fake_jenkins import JenkinsHome

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")


async def test_a_reader_thread_that_ends_is_replaced_and_builds_keep_arriving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, in_process: StartService
) -> None:
    home = JenkinsHome(tmp_path / "jenkins")
    job = home.job("app")
    job.start().finish("SUCCESS")
    settings = settings_from(
        {
            "host": "ci.example.com",
            "state_dir": str(tmp_path / "state"),
            "sources": [{"type": "jenkins", "home": str(home.root), "reconcile_interval": "1h"}],
        }
    )
    daemon = await in_process(settings)
    service, compass = daemon.service, daemon.transport
    reader = service.reader
    assert reader is not None and reader.count == 1
    old = reader._fd
    assert old is not None
    old.stop()  # what watchdog's dispatcher does when a callback raises: the thread ends
    await until("a new reader thread", lambda: reader._fd is not old and reader.alive)
    await until("the watches added again", lambda: reader.count == 1)
    started = time.monotonic()
    job.start().finish("FAILURE")
    # the reconcile scan is an hour away: arriving at all within this bound means a watch saw it; the
    # bound leaves room for a loaded machine (about 15 ms here when idle)
    await until("app#2 delivered", lambda: "FAILED" in compass.states("app#2"), within=10.0)
    print(f"app#2 arrived {(time.monotonic() - started) * 1000:.0f} ms after it finished")
    assert daemon.metric("buildtail_inotify_reader_stops_total") == 1
    assert service.health.healthy() == (True, "ok")
    stopped = [r for r in caplog.records if "the inotify reader stopped" in r.getMessage()]
    assert len(stopped) == 1, "said once"
