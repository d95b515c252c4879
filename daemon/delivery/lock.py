"""One delivering process per state directory: the daemon, or ``buildtail backfill`` while it is down.

Both may queue events into the shared database at any time; only the holder of this lock sends
them, so no event is ever in flight twice. The kernel drops a ``flock`` when its holder dies, so a
killed process never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import signal
from pathlib import Path

__all__ = ["DeliveryLock"]


class DeliveryLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "delivery.lock"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> int | None:
        """The pid of the process delivering now (written by it when it took the lock)."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None

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

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
