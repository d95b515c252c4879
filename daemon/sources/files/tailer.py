"""Tails log files: which file is which across rotation, and how much of each has been consumed.

A file is identified by the sha256 of its first ``fingerprint_bytes`` bytes (of the decompressed content
for a .gz), with (dev, inode) as the cross-check: inodes are reused after a delete and copies share
content, so neither is trusted alone. A file still shorter than the fingerprint is identified by the
prefix it has so far, and keeps that identity while it grows as long as the old prefix still matches.

Offsets move only in ``commit()``: ``poll()`` starts every file at its committed offset, so what the
caller did not commit (a crash, a failed send) comes again. Commit (or drop) a poll's chunks before the
next ``poll()``; the same bytes are yielded again otherwise.

Rotation: a file renamed away or deleted while open is drained through its still open descriptor and
let go once it has been idle for a poll; a file truncated in place (copytruncate) starts again at 0 as
a new identity, while a copy with the old fingerprint continues from the old offset; a rotated .gz
(gzip magic, whatever its name) that is a copy of a file already tailed continues from that offset,
is read to its end once and is then never opened again.

Everything is synchronous: the daemon runs ``poll()`` in a worker thread. Reads are ``read_bytes``
large and cut at the last newline, so the cost per byte does not depend on how many lines there are.
Every read asks for the same size, and a chunk keeps the read itself (its lines are a prefix of it):
the allocator hands back the same block each time, and the bytes are not copied again after the
kernel wrote them.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from daemon.sources.files.globbing import PatternWalker
from daemon.sources.files.tailed import (
    GZIP_MAGIC,
    Candidate,
    Checkpoint,
    Chunk,
    Problem,
    Problems,
    Source,
    TailedFile,
    digest,
    gz_source,
    identity_key,
    long_line,
    plain_source,
)

__all__ = ["Checkpoint", "Chunk", "Problem", "Tailer"]

_MAX_FORGOTTEN = 4096  # identities without an open file kept for copies and .gz rotations to match
_SHADOW_POLLS = 3  # a copy is normal for a poll or two (copytruncate, delaycompress); longer is reported


class Tailer:
    """The files matching ``patterns`` (relative ones under ``base_dir``), tailed across rotation."""

    def __init__(
        self,
        patterns: Sequence[str],
        *,
        base_dir: Path | None = None,
        fingerprint_bytes: int = 1024,
        max_line_bytes: int = 1 << 20,
        read_bytes: int = 4 << 20,
        start_at_end_for_new: bool = False,
    ) -> None:
        if fingerprint_bytes < 1 or max_line_bytes < 1:
            raise ValueError("fingerprint_bytes and max_line_bytes must be positive")
        if read_bytes < max_line_bytes:
            # a chunk holds whole lines and at most read_bytes: a longer line could never be delivered
            raise ValueError("read_bytes must be at least max_line_bytes")
        base = Path.cwd() if base_dir is None else base_dir
        self._patterns = [p if p.is_absolute() else base / p for p in map(Path, patterns)]
        self._fp = fingerprint_bytes
        self._max_line = max_line_bytes
        self._read = read_bytes
        # applies to the first poll only, and only when nothing was loaded: files that appear later were
        # born while we watched, so all of their content is new (OTel #12769 applied it despite offsets)
        self.start_at_end_for_new = start_at_end_for_new
        self._files: dict[str, TailedFile] = {}
        self._aliases: dict[str, str] = {}  # keys renamed by the last poll (a short file grew)
        self._order = 0
        self._polls = 0
        self._fresh = True  # nothing loaded and not polled yet: the only time start_at_end applies
        self._problems = Problems()
        self._shadowed: dict[str, int] = {}
        self._broken: dict[str, tuple[int, int, int, int]] = {}  # path -> (dev, ino, size, mtime_ns)
        self._walker = PatternWalker(self._patterns, self._problems)

    # --- state ------------------------------------------------------------------------------------

    def load(self, checkpoints: Iterable[Checkpoint]) -> None:
        """What the store remembers. A malformed key is dropped: that file is read again from 0 rather
        than the daemon failing on every start."""
        for cp in checkpoints:
            digest, _, length = cp.key.partition(":")
            if len(digest) != 64 or (length and not length.isdigit()):
                continue
            fp_len = int(length) if length else self._fp
            current = self._files.get(cp.key)
            if current is not None and current.src is not None:
                continue
            self._files[cp.key] = TailedFile(
                cp.key, digest, fp_len, cp.path, cp.dev, cp.ino, cp.offset, cp.done, self._next_order()
            )
            self._fresh = False

    def commit(self, checkpoint: Checkpoint) -> None:
        key = self._aliases.get(checkpoint.key, checkpoint.key)
        rec = self._files.get(key)
        if rec is None:
            return
        if checkpoint.offset > rec.offset:
            rec.offset = checkpoint.offset
            if rec.scan is not None and rec.scan[0] < rec.offset:
                rec.scan = None
            rec.long_reported = {s for s in rec.long_reported if s >= rec.offset}
        if checkpoint.done and not rec.done:
            rec.done = True
            if rec.src is not None:
                try:
                    st = os.fstat(rec.src.fd)
                    rec.gz_sig = (st.st_size, st.st_mtime_ns)
                except OSError:
                    pass
                rec.src.close()
                rec.src = None

    def checkpoints(self) -> list[Checkpoint]:
        return [Checkpoint(r.key, r.path, r.dev, r.ino, r.offset, r.done) for r in self._files.values()]

    def close(self) -> None:
        for rec in self._files.values():
            if rec.src is not None:
                rec.src.close()
                rec.src = None

    def watched_dirs(self) -> set[Path]:
        return set(self._walker.dirs)

    # --- polling ----------------------------------------------------------------------------------

    def poll(self) -> Iterator[Chunk | Problem]:
        self._polls += 1
        self._aliases = {}
        fresh = self._fresh and self.start_at_end_for_new
        self._fresh = False
        truncated: dict[tuple[int, int], Source] = {}
        for rec in list(self._files.values()):
            if rec.src is not None and not rec.src.gz:
                src = self._revalidate(rec)
                if src is not None:
                    truncated[(rec.dev, rec.ino)] = src
        found, problems = self._walker.glob()
        yield from problems
        live = {(r.dev, r.ino): r for r in self._files.values() if r.src is not None}
        finished = {(r.dev, r.ino): r for r in self._files.values() if r.src is None and r.gz_sig is not None}
        candidates: list[Candidate] = []
        taken: set[tuple[int, int]] = set()
        for path in found:
            try:
                st = os.stat(path)
            except OSError as exc:
                problem = self._problems.os_error(str(path), exc, "vanished before it could be opened")
                if problem is not None:
                    yield problem
                continue
            ident = (st.st_dev, st.st_ino)
            if not stat.S_ISREG(st.st_mode):
                problem = self._problems.report(str(path), "type", "not a regular file")
                if problem is not None:
                    yield problem
                continue
            hit = live.get(ident)
            if hit is not None:
                if hit.seen != self._polls:
                    hit.seen, hit.path = self._polls, str(path)
                continue
            done = finished.get(ident)
            if done is not None and done.gz_sig == (st.st_size, st.st_mtime_ns):
                done.seen = self._polls
                continue
            if ident in taken:
                continue  # a symlink and its target: one file
            if self._broken.get(str(path)) == (*ident, st.st_size, st.st_mtime_ns):
                continue  # could not even be fingerprinted, and has not changed since
            taken.add(ident)
            src = truncated.pop(ident, None)
            was_truncated = src is not None
            if src is None:
                opened = self._open(str(path))
                if isinstance(opened, Problem):
                    yield opened
                    continue
                if opened is None:
                    continue
                src, st = opened
            candidates.append(
                Candidate(str(path), src, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, was_truncated)
            )
        for src in truncated.values():
            src.close()  # truncated and no longer matched: nothing left to identify
        yield from self._identify(candidates, fresh)
        for rec in sorted((r for r in self._files.values() if r.src is not None), key=lambda r: r.order):
            yield from self._drain(rec)
        self._forget()

    def _revalidate(self, rec: TailedFile) -> Source | None:
        """Checks a tailed file is still the content we identified; returns its descriptor if it was
        truncated or rewritten in place (the identity is kept, descriptor-less, for a copy to claim)."""
        assert rec.src is not None
        try:
            size = os.fstat(rec.src.fd).st_size
            head = os.pread(rec.src.fd, self._fp, 0) if size >= max(rec.offset, rec.fp_len) else b""
        except OSError:
            head, size = b"", -1
        if size >= 0 and len(head) >= rec.fp_len and digest(head[: rec.fp_len]) == rec.digest:
            if len(head) > rec.fp_len:
                self._rekey(rec, head)
            return None
        src, rec.src, rec.scan = rec.src, None, None
        if size < 0:
            src.close()
            return None
        return src

    def _rekey(self, rec: TailedFile, head: bytes) -> None:
        """A short file grew: the longer prefix becomes its key (unless another tailed file has it)."""
        fp_digest = digest(head)
        key = identity_key(fp_digest, len(head), self._fp)
        other = self._files.get(key)
        if other is not None and other is not rec:
            if other.src is not None:
                return
            del self._files[key]
        del self._files[rec.key]
        self._aliases[rec.key] = key
        rec.key, rec.digest, rec.fp_len = key, fp_digest, len(head)
        self._files[key] = rec

    def _open(self, path: str) -> tuple[Source, os.stat_result] | Problem | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            return self._problems.os_error(path, exc, "vanished before it could be opened")
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return self._problems.report(path, "type", "not a regular file")
            gz = os.pread(fd, 2, 0) == GZIP_MAGIC
        except OSError as exc:
            os.close(fd)
            return self._problems.os_error(path, exc, "vanished mid-read")
        return (gz_source(fd) if gz else plain_source(fd)), st

    def _identify(self, candidates: list[Candidate], fresh: bool) -> Iterator[Problem]:
        """Gives each newly opened file its identity: one we already know (the same file reopened after a
        restart, a renamed or copied file, a rotated .gz) or a new one."""
        forgotten = {(r.dev, r.ino) for r in self._files.values() if r.src is None}
        # the same inode first (it is that identity for sure), copies next, truncated files last: a copy
        # claims the old offset before the truncated original takes a new identity
        candidates.sort(key=lambda c: (2 if c.truncated else 0 if (c.dev, c.ino) in forgotten else 1, c.path))
        for cand in candidates:
            try:
                head = cand.src.read(0, self._fp)
            except (EOFError, OSError, zlib.error) as exc:
                cand.src.close()
                self._broken[cand.path] = (cand.dev, cand.ino, cand.size, cand.mtime_ns)
                problem = self._problems.read_error(cand.path, exc)
                if problem is not None:
                    yield problem
                continue
            if not head:
                cand.src.close()  # nothing to identify it by yet
                continue
            self._problems.forget(cand.path)
            self._broken.pop(cand.path, None)
            rec = self._match(head, cand)
            if rec is None:
                self._new(cand, head, fresh)
            elif rec.src is not None or (rec.done and not cand.src.gz):
                cand.src.close()
                count = self._shadowed.get(cand.path, 0) + 1
                self._shadowed[cand.path] = count
                if count == _SHADOW_POLLS:
                    yield Problem(
                        cand.path,
                        f"same first {rec.fp_len} bytes as {rec.path}: treated as a copy and not read"
                        " (raise fingerprint_bytes if these are different files)",
                    )
                continue
            elif rec.done:
                cand.src.close()
                rec.gz_sig, rec.seen = (cand.size, cand.mtime_ns), self._polls
                rec.dev, rec.ino, rec.path = cand.dev, cand.ino, cand.path
            elif (cand.truncated and (rec.dev, rec.ino) == (cand.dev, cand.ino)) or (
                not cand.src.gz and cand.size < rec.offset
            ):
                del self._files[rec.key]  # truncated (while we watched or while we were down)
                self._new(cand, head, False)
            else:
                rec.src, rec.seen, rec.last_size, rec.scan = cand.src, self._polls, -1, None
                rec.dev, rec.ino, rec.path = cand.dev, cand.ino, cand.path
                if len(head) > rec.fp_len:
                    self._rekey(rec, head)
            self._shadowed.pop(cand.path, None)

    def _match(self, head: bytes, cand: Candidate) -> TailedFile | None:
        """The known identity whose prefix ``head`` starts with: the same inode first, then the longest."""
        digests: dict[int, str] = {}
        best: TailedFile | None = None
        best_rank = (False, -1)
        for rec in self._files.values():
            if rec.fp_len > len(head):
                continue
            prefix = digests.get(rec.fp_len)
            if prefix is None:
                prefix = digests[rec.fp_len] = digest(head[: rec.fp_len])
            if prefix != rec.digest:
                continue
            rank = ((rec.dev, rec.ino) == (cand.dev, cand.ino), rec.fp_len)
            if rank > best_rank:
                best, best_rank = rec, rank
        return best

    def _new(self, cand: Candidate, head: bytes, fresh: bool) -> None:
        fp_digest = digest(head)
        key = identity_key(fp_digest, len(head), self._fp)
        rec = TailedFile(
            key, fp_digest, len(head), cand.path, cand.dev, cand.ino, 0, False, self._next_order()
        )
        rec.src, rec.seen = cand.src, self._polls
        if fresh:  # start_at_end: history is not read, a .gz not at all
            if cand.src.gz:
                rec.done, rec.gz_sig, rec.src = True, (cand.size, cand.mtime_ns), None
                cand.src.close()
            else:
                rec.offset = self._after_last_newline(cand.src, cand.size)
        self._files[key] = rec

    def _after_last_newline(self, src: Source, size: int) -> int:
        pos = size
        while pos > 0:
            start = max(0, pos - self._read)
            i = src.read(start, pos - start).rfind(b"\n")
            if i >= 0:
                return start + i + 1
            pos = start
        return 0

    def _drain(self, rec: TailedFile) -> Iterator[Chunk | Problem]:
        src = rec.src
        assert src is not None
        try:
            size = os.fstat(src.fd).st_size
        except OSError:
            size = rec.last_size
        final = True
        if src.gz:
            if rec.gz_stuck >= 0:
                if size == rec.gz_stuck:
                    return
                rec.gz_stuck = -1
                src.reset()
        else:
            idle = rec.seen != self._polls and size == rec.last_size
            if idle and rec.offset >= size:
                src.close()  # renamed away or deleted, drained and idle for a poll: let it go
                rec.src = None
                return
            final = idle
            rec.last_size = size
        try:
            yield from self._lines(rec, src, final)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            rec.gz_stuck = size
            problem = self._problems.read_error(rec.path, exc)
            if problem is not None:
                yield problem
        except OSError as exc:
            problem = self._problems.os_error(rec.path, exc, "vanished mid-read")
            if problem is not None:
                yield problem

    def _lines(self, rec: TailedFile, src: Source, final: bool) -> Iterator[Chunk | Problem]:
        """Everything after the committed offset, as chunks of whole lines cut at the last newline of each
        large read. ``final``: the file cannot grow any more, so its end also ends the last line."""
        limit, size = self._max_line, self._read
        pos = rec.offset
        moved = False  # pos is past a skipped line that no chunk has covered yet
        line_start, scanned = rec.scan if rec.scan is not None and rec.scan[0] == pos else (-1, -1)
        data = buf = b""
        while True:
            data = buf = b""  # drop the last read before the next: one read_bytes buffer at a time
            if line_start >= 0:  # inside an over-long line: look for its end, keep nothing of it
                buf = src.read(scanned, size)
                nl = buf.find(b"\n")
                if nl < 0:
                    scanned += len(buf)
                    if len(buf) == size:
                        continue
                    if not final:
                        rec.scan = (line_start, scanned)
                        break
                    end = scanned
                else:
                    end = scanned + nl + 1
                problem = self._long_problem(rec, line_start, end)
                if problem is not None:
                    yield problem
                pos, moved, line_start, rec.scan = end, True, -1, None
                continue
            data = src.read(pos, size)
            eof = len(data) < size
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) >= limit:
                    line_start, scanned = pos, pos + len(data)
                    continue
                if data and final and eof:
                    yield self._chunk(rec, data + b"\n", pos, pos + len(data), src.gz)
                    return
                break
            body = cut + 1  # the complete lines: data[:body], never copied out
            long = long_line(data, limit, body)
            if long is None:
                done = src.gz and eof and body == len(data)
                yield self._chunk(rec, data, pos, pos + body, done, body)
                if done:
                    return
                pos, moved = pos + body, False
                continue
            start, end = long
            if start:
                yield self._chunk(rec, data, pos, pos + start, False, start)
            problem = self._long_problem(rec, pos + start, pos + end)
            if problem is not None:
                yield problem
            pos, moved = pos + end, True
        if src.gz:
            yield self._chunk(rec, b"", pos, pos, True)  # at the end of the stream: nothing more to come
        elif moved:
            yield self._chunk(rec, b"", pos, pos, False)

    def _chunk(
        self, rec: TailedFile, data: bytes, start: int, end: int, done: bool, length: int | None = None
    ) -> Chunk:
        """A chunk of the first ``length`` bytes of ``data`` (all of it by default)."""
        cp = Checkpoint(rec.key, rec.path, rec.dev, rec.ino, end, done)
        return Chunk(rec.key, rec.path, data, len(data) if length is None else length, start, end, cp)

    def _long_problem(self, rec: TailedFile, start: int, end: int) -> Problem | None:
        if start in rec.long_reported:
            return None
        rec.long_reported.add(start)
        return Problem(
            rec.path, f"line longer than max_line_bytes at offset {start} (skipped {end - start} bytes)"
        )

    def _forget(self) -> None:
        """Bounds the identities kept without an open file, oldest first; those seen this poll stay."""
        idle = [r for r in self._files.values() if r.src is None and r.seen != self._polls]
        if len(idle) <= _MAX_FORGOTTEN:
            return
        idle.sort(key=lambda r: r.order)
        for rec in idle[: len(idle) - _MAX_FORGOTTEN]:
            del self._files[rec.key]

    def _next_order(self) -> int:
        self._order += 1
        return self._order
