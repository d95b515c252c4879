"""The delivery lock: one holder, what its file says about it, and looks that do not disturb it."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon import __version__
from daemon.delivery.lock import DeliveryLock, Holder
from tools.daemon_process import REPO


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_one_holder_at_a_time_and_what_its_file_says(tmp_path: Path) -> None:
    first, second = DeliveryLock(tmp_path, kind="backfill"), DeliveryLock(tmp_path)
    assert first.is_held() is False and first.holder_info() is None, "no file yet: nobody ever held it"
    first.dry_run = True
    before = time.time() * 1000
    assert first.try_acquire() and first.held
    assert not second.try_acquire(), "a second open file description is refused, even in this process"
    assert second.is_held() is True
    info = second.holder_info()
    assert info is not None
    assert (info.pid, info.kind, info.version, info.dry_run) == (os.getpid(), "backfill", __version__, True)
    assert info.since_ms is not None and before - 1 <= info.since_ms <= time.time() * 1000
    assert info.started_ms is not None and info.started_ms <= info.since_ms
    assert second.holder() == os.getpid()
    first.release()
    assert second.is_held() is False
    assert second.holder() == os.getpid(), "the file keeps naming the last holder"
    assert second.try_acquire() and json.loads(second.path.read_text())["kind"] == "daemon"
    second.release()


def test_a_file_from_an_older_version_or_half_written_is_read_without_error(tmp_path: Path) -> None:
    lock = DeliveryLock(tmp_path)
    lock.path.write_text("4242\n")
    assert lock.holder_info() == Holder(4242) and lock.holder() == 4242
    lock.path.write_text('{"pid": 42')
    assert lock.holder_info() is None and lock.holder() is None


def test_a_look_by_status_does_not_make_a_free_lock_look_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`status` holds a shared lock for an instant; a backfill trying just then must still get the
    lock when the file names a holder that is gone, or it would wait for a daemon that is not there."""
    lock = DeliveryLock(tmp_path)
    lock.path.write_text(json.dumps({"pid": _dead_pid(), "kind": "daemon"}) + "\n")
    look = os.open(lock.path, os.O_RDONLY)
    fcntl.flock(look, fcntl.LOCK_SH | fcntl.LOCK_NB)
    waits: list[float] = []

    def the_look_ends(seconds: float) -> None:  # the instant `status` needs passes while it waits
        waits.append(seconds)
        os.close(look)

    monkeypatch.setattr(time, "sleep", the_look_ends)
    assert lock.try_acquire(), "the passing look was waited out"
    assert waits == [0.01]
    lock.release()


def test_a_live_holder_is_not_waited_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    holder = DeliveryLock(tmp_path)
    assert holder.try_acquire()
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    assert not DeliveryLock(tmp_path).try_acquire()
    assert waits == [], "the daemon's sender asks every second while a backfill holds it: no sleeping"
    holder.release()


def test_status_imports_no_heavy_library() -> None:
    code = (
        "import sys, daemon.ops.status;"
        "print(sorted(m for m in ('aiohttp', 'pydantic', 'watchdog', 'yaml') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
