"""A really full file system under the state database: builds finish while no write can succeed.

The cause is logged once (not once per attempt), readiness says "not writable" from the first
failure until a write succeeds again (no flapping while the failure lasts), and once space returns
every run arrives. The state directory is a 2 MB tmpfs mounted by the test: root only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import operator
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.history import HistoryPolicy
from daemon.loop import Loop
from daemon.ops.health import Health
from daemon.ops.metrics import Metrics
from daemon.recorder import Recorder
from daemon.sources.jenkins.runner import JenkinsRunner
from daemon.sources.runner import RunnerContext
from daemon.sources.watch import Hint, InotifyReader
from daemon.store import Store
from tests.inprocess import drain, turn_until
from tools.fake_jenkins import JenkinsHome

CAUSE = "cannot write the state database"
BUILDS = 6


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(directory: Path) -> Path:
    """Writes until the file system says it is full; returns the file that holds the space."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as fh:
        block = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                fh.write(block)
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 512)
    try:
        os.write(os.open(directory / "probe", os.O_WRONLY | os.O_CREAT), b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    return filler


@dataclass
class _View:
    """What ``Health`` reads of the service, for the parts under test."""

    settings: Settings
    store: Store
    recorder: Recorder
    started: bool = True
    delivery: None = None
    reader: None = None

    def summary(self) -> str:
        return ""


async def test_a_full_disk_is_reported_once_readiness_holds_and_no_run_is_lost(
    tmp_path: Path, small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = JenkinsHome(tmp_path / "jenkins")
    job = home.job("app")
    state = small_fs / "state"
    settings = Settings.model_validate(
        {
            "host": "ci.example.com",
            "state_dir": str(state),
            "sources": [{"type": "jenkins", "home": str(home.root), "reconcile_interval": "1h"}],
        }
    )
    store = Store(state)
    queue: asyncio.Queue[Hint] = asyncio.Queue()
    reader = InotifyReader(asyncio.get_running_loop(), queue)
    reader.start()
    recorder = Recorder(store, settings, history=HistoryPolicy({}))
    runner = JenkinsRunner(settings.jenkins_sources[0], RunnerContext(settings.host, store, recorder, reader))
    loop = Loop(queue, [runner], Metrics(), reader)
    health = Health(_View(settings, store, recorder))
    try:
        await runner.start(first_start=False)
        assert health.ready() == (True, "ok")
        filler = _fill(small_fs)
        caplog.set_level(logging.ERROR, logger="buildtail")

        readiness: list[str] = []
        for _ in range(BUILDS):
            run = job.start()
            run.finish("SUCCESS")
            # each build is tried, fails, and is kept for a later look while the disk stays full
            await turn_until(
                loop, "the run kept", partial(operator.contains, runner.retries, run.dir), within=5
            )
            readiness.append(health.ready()[1])
            for _ in range(3):
                await loop.turn(0.05)
                readiness.append(health.ready()[1])
        assert set(readiness) == {"the state database is not writable"}
        # a transaction that writes nothing commits on a full disk too: it proves nothing
        assert recorder.record_many(lambda: None, "nothing") and not recorder.store_writable
        causes = [r for r in caplog.records if CAUSE in r.getMessage()]
        assert len(causes) == 1, [r.getMessage() for r in causes]
        assert "full" in causes[0].getMessage()

        filler.unlink()
        with contextlib.suppress(FileNotFoundError):
            (small_fs / "probe").unlink()
        arrived: dict[str, str] = {}

        def all_arrived() -> bool:
            arrived.update(drain(store))
            return len(arrived) == BUILDS

        await turn_until(loop, "every run", all_arrived, within=15)
        assert set(arrived.values()) == {"SUCCESSFUL"}
        assert recorder.store_writable and health.ready() == (True, "ok")
        assert len([r for r in caplog.records if CAUSE in r.getMessage()]) == 1
    finally:
        await runner.close()
        reader.stop()
        store.close()
