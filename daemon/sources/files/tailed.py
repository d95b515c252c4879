"""What the tailer keeps per file: identities, open descriptors (plain or gzip), checkpoints and
chunks, and the problems it reports once per path."""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass, field

from daemon.ops.logs import ReportOnce

__all__ = [
    "GZIP_MAGIC",
    "Candidate",
    "Checkpoint",
    "Chunk",
    "Problem",
    "Problems",
    "Source",
    "TailedFile",
    "digest",
    "gz_source",
    "identity_key",
    "long_line",
    "plain_source",
]

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    key: str
    path: str
    dev: int
    ino: int
    offset: int
    done: bool


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete lines ``data`` at content offsets ``[start, end)``; store ``checkpoint`` with their effects.

    ``data`` is empty when the chunk only moves the checkpoint: past a skipped over-long line, or to
    mark a .gz done. The last line of a file that can no longer grow (a .gz, or a deleted or rotated
    away file idle for a poll) gets a newline appended when it has none; ``end`` stays the content
    offset, so there ``len(data) == end - start + 1``.

    The lines are the first ``length`` bytes of ``buffer``, the read they came from. A read almost
    never ends at a newline, and copying its lines out into a new object of a slightly different size
    every time costs more than the read itself (a fresh multi-megabyte allocation, page faults
    included), so a scanner that takes bounds should be given ``buffer`` and ``length``; ``data``
    makes that copy, and only when it is asked for.
    """

    key: str
    path: str
    buffer: bytes
    length: int
    start: int
    end: int
    checkpoint: Checkpoint

    @property
    def data(self) -> bytes:
        buffer = self.buffer
        return buffer if len(buffer) == self.length else buffer[: self.length]


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str


class _Plain:
    gz = False

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, pos: int, size: int) -> bytes:
        return os.pread(self.fd, size, pos)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        os.close(self.fd)


class _Gz:
    """Decompressed reads at content offsets. A gzip stream cannot seek, so the last read is kept and
    the stream is only rewound when asked for something before it (a poll after an uncommitted one)."""

    gz = True

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._raw = open(fd, "rb", closefd=False)  # noqa: SIM115 - lives as long as the descriptor
        self._stream: gzip.GzipFile | None = None
        self._start = 0
        self._buf = b""

    def read(self, pos: int, size: int) -> bytes:
        if self._stream is None or pos < self._start:
            self._raw.seek(0)
            self._stream = gzip.GzipFile(fileobj=self._raw, mode="rb")
            self._start, self._buf = 0, b""
        end = self._start + len(self._buf)
        while end < pos:
            dropped = self._stream.read(min(size, pos - end))
            end += len(dropped)
            self._start, self._buf = end, b""
            if not dropped:
                return b""
        have = self._buf[pos - self._start :]
        data = have + self._stream.read(size - len(have)) if len(have) < size else have
        self._start, self._buf = pos, data
        return data

    def reset(self) -> None:
        self._stream = None

    def close(self) -> None:
        self._stream = None
        self._raw.close()
        os.close(self.fd)


Source = _Plain | _Gz


@dataclass(slots=True, eq=False)
class TailedFile:
    """One identity: what the store remembers plus, while the file is tailed, its open descriptor."""

    key: str
    digest: str
    fp_len: int
    path: str
    dev: int
    ino: int
    offset: int
    done: bool
    order: int  # older identities are read first, so a rotated file drains before its successor
    src: Source | None = None
    seen: int = -1  # the poll whose glob last matched it
    last_size: int = -1
    gz_sig: tuple[int, int] | None = None  # (size, mtime_ns) of a finished .gz: recognised without opening
    gz_stuck: int = -1  # compressed size at which the stream broke off; tried again once it changes
    scan: tuple[int, int] | None = None  # (line start, scanned to) of an over-long line still being skipped
    long_reported: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Candidate:
    path: str
    src: Source
    dev: int
    ino: int
    size: int
    mtime_ns: int
    truncated: bool  # the descriptor of an identity that was just truncated in place


def identity_key(digest: str, fp_len: int, fingerprint_bytes: int) -> str:
    return digest if fp_len >= fingerprint_bytes else f"{digest}:{fp_len}"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def long_line(body: bytes, limit: int, size: int | None = None) -> tuple[int, int] | None:
    """The first line of ``body[:size]`` (complete lines) longer than ``limit``, as ``(start, end)``.

    A line longer than ``limit`` holds a newline-free run of at least ``limit`` bytes, which covers a
    whole window of ``limit // 2`` bytes: probing one window at a time finds it in O(len) work without
    looking at every line.
    """
    n = len(body) if size is None else size
    if n <= limit:
        return None
    step = max(1, limit // 2)
    i = 0
    while i < n:
        if body.find(b"\n", i, min(i + step, n)) >= 0:
            i += step
            continue
        start = body.rfind(b"\n", 0, i) + 1
        end = body.find(b"\n", i, n) + 1
        if end - start > limit:
            return start, end
        i = end
    return None


def plain_source(fd: int) -> Source:
    return _Plain(fd)


def gz_source(fd: int) -> Source:
    return _Gz(fd)


class Problems:
    """Each kind of problem once per path while it persists: a file that stays unreadable is reported
    once, not on every poll."""

    def __init__(self) -> None:
        self._once = ReportOnce()  # keyed by (path, kind)

    def forget(self, path: str) -> None:
        """The path is fine again: its next problem is news."""
        self._once.clear_where(lambda key: isinstance(key, tuple) and key[0] == path)

    def report(self, path: str, kind: str, message: str) -> Problem | None:
        """A Problem the first time a path has it; None while it persists (reported once, not every poll)."""
        return Problem(path, message) if self._once.fresh((path, kind)) else None

    def os_error(self, path: str, exc: OSError, missing: str) -> Problem | None:
        if isinstance(exc, PermissionError):
            return self.report(path, "denied", "permission denied")
        if isinstance(exc, FileNotFoundError) or exc.errno == errno.ESTALE:
            return self.report(path, "missing", missing)
        if exc.errno == errno.ELOOP:
            return self.report(path, "loop", "symlink loop")
        return self.report(path, "error", f"cannot read: {exc.strerror or exc}")

    def read_error(self, path: str, exc: BaseException) -> Problem | None:
        if isinstance(exc, EOFError):
            return self.report(path, "gz", "gzip stream ends early (still being written, or cut short)")
        if isinstance(exc, gzip.BadGzipFile | zlib.error):
            return self.report(path, "gz", f"gzip corrupt: {exc}")
        if isinstance(exc, OSError):
            return self.os_error(path, exc, "vanished mid-read")
        return self.report(path, "gz", f"gzip unreadable: {exc}")
