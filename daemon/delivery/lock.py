"""One delivering process per state directory: the daemon, or ``buildtail backfill`` while it is down.

Both may queue events into the shared database at any time; only the holder of this lock sends
them, so no event is ever in flight twice. The kernel drops a ``flock`` when its holder dies, so a
killed process never leaves a stale lock behind; the file keeps naming it, though, which is how
``buildtail status`` tells a killed holder from one that stopped cleanly.

The holder writes one JSON line into the file: pid, kind (daemon or backfill), version, when the
process started and when it took the lock. This module stays free of heavy imports: ``status``
reads it.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from daemon import __version__
from daemon.clock import now_ms

__all__ = ["DeliveryLock", "Holder"]

_PASSING_LOOK_RETRIES = 3  # `status` holds a shared lock for two system calls; see try_acquire


@dataclass(frozen=True)
class Holder:
    """What the lock file says about the process that took the lock last (it may have gone since)."""

    pid: int
    kind: str | None = None  # "daemon" or "backfill"; None in a file an older version wrote
    version: str | None = None
    started_ms: int | None = None  # the process's start
    since_ms: int | None = None  # when it took the lock
    dry_run: bool = False


def _process_started_ms() -> int | None:
    """This process's start time, from /proc (what ``systemctl status`` shows as "since")."""
    try:
        stat = Path("/proc/self/stat").read_text(encoding="ascii")
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime, after pid and (comm)
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text(encoding="ascii").splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return (boot * 1000) + ticks * 1000 // os.sysconf("SC_CLK_TCK")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


class DeliveryLock:
    def __init__(self, state_dir: Path, *, kind: str = "daemon") -> None:
        self.path = state_dir / "delivery.lock"
        self.kind = kind
        self.dry_run = False  # recorded for `status`; set before the lock is taken
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        for attempt in range(_PASSING_LOOK_RETRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # Held, by a live holder (the answer is no) or by `buildtail status` taking a look
                # while the file still names a holder that is gone: that look lasts microseconds,
                # and a backfill that took it for a running daemon would wait for nobody.
                holder = self.holder()
                if attempt + 1 == _PASSING_LOOK_RETRIES or (holder is not None and _alive(holder)):
                    os.close(fd)
                    return False
                time.sleep(0.01)
        record = {
            "pid": os.getpid(),
            "kind": self.kind,
            "version": __version__,
            "started_ms": _process_started_ms(),
            "since_ms": now_ms(),
            "dry_run": self.dry_run,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def holder_info(self) -> Holder | None:
        """Who took the lock last, as the file says (None when no process ever took it)."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if text.isdigit():  # written by an older version: the pid alone
            return Holder(int(text))
        try:
            data = json.loads(text)
            return Holder(
                pid=int(data["pid"]),
                kind=data.get("kind"),
                version=data.get("version"),
                started_ms=data.get("started_ms"),
                since_ms=data.get("since_ms"),
                dry_run=bool(data.get("dry_run", False)),
            )
        except (ValueError, TypeError, KeyError):
            return None  # being rewritten by a new holder, or not ours

    def holder(self) -> int | None:
        """The pid of the process delivering now (written by it when it took the lock)."""
        info = self.holder_info()
        return None if info is None else info.pid

    def is_held(self) -> bool | None:
        """Whether any process holds the lock now; None when this user cannot tell.

        Takes a shared lock for an instant and lets it go: a held exclusive lock refuses it. No
        process holding it means the last holder stopped or died.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return None
        finally:
            os.close(fd)  # releases the shared lock if it was granted
        return False

    def nudge(self) -> bool:
        """Tells the delivering process that new events are queued (SIGUSR2 wakes its sender)."""
        pid = self.holder()
        if pid is None or pid == os.getpid():
            return False
        try:
            os.kill(pid, signal.SIGUSR2)
        except OSError:
            return False
        return True

    @contextmanager
    def held_quietly(self) -> Iterator[bool]:
        """The lock for a short job before delivery starts (rebuilding a damaged database), yielding
        whether it was had. The file is left naming its last holder: this is not a delivering
        process, and ``status`` must not report it as one that was killed."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:  # a read-only directory: nobody can deliver from it either
            yield True
            return
        try:
            for attempt in range(_PASSING_LOOK_RETRIES):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:  # a holder, or `status` taking a passing look
                    if attempt + 1 == _PASSING_LOOK_RETRIES:
                        yield False
                        return
                    time.sleep(0.01)
            yield True
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
