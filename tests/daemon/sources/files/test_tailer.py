"""The tailer on real files: identity, checkpoints, rotation (create, copytruncate, .gz), truncation,
restarts and crashes, over-long lines and bad input.

Modelled on Vector's file-source correctness harness: every scenario counts the lines delivered and
committed, and asserts the exact total (nothing lost, nothing twice).
"""

from __future__ import annotations

import gzip
import itertools
import os
import random
import shutil
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from daemon.sources.files.tailed import long_line as _long_line
from daemon.sources.files.tailer import Checkpoint, Chunk, Problem, Tailer


def write(path: Path, prefix: str, count: int, start: int = 0) -> list[bytes]:
    lines = [f"{prefix}-{i:06d} some build output".encode() for i in range(start, start + count)]
    with path.open("ab") as f:
        f.write(b"".join(line + b"\n" for line in lines))
    return lines


def poll(t: Tailer, *, commit: bool = True) -> tuple[list[bytes], list[Problem], list[Chunk]]:
    """One poll the way the daemon does it: every chunk committed (unless simulating a crash)."""
    lines: list[bytes] = []
    problems: list[Problem] = []
    chunks: list[Chunk] = []
    for item in t.poll():
        if isinstance(item, Problem):
            problems.append(item)
            continue
        assert item.data == b"" or item.data.endswith(b"\n")
        assert item.data == item.buffer[: item.length] and item.length == len(item.data)
        assert item.checkpoint.offset == item.end and item.checkpoint.key == item.key
        chunks.append(item)
        lines.extend(item.data.split(b"\n")[:-1])
        if commit:
            t.commit(item.checkpoint)
    return lines, problems, chunks


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tailer(tmp_path: Path, *patterns: str, **kw: int | bool) -> Tailer:
    kw.setdefault("fingerprint_bytes", 64)
    return Tailer(patterns or ("*.log",), base_dir=tmp_path, **kw)  # type: ignore[arg-type]


# --- basics -----------------------------------------------------------------------------------------


def test_new_file_is_read_from_zero_and_a_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"one\ntwo\npart")
    t = tailer(tmp_path)
    lines, problems, chunks = poll(t)
    assert lines == [b"one", b"two"] and not problems
    assert chunks[0].start == 0 and chunks[-1].end == 8
    assert [c.offset for c in t.checkpoints()] == [8]
    assert poll(t)[0] == []
    with log.open("ab") as f:
        f.write(b"ial\nthree\n")
    assert poll(t)[0] == [b"partial", b"three"]


def test_poll_does_not_advance_offsets_without_commit(tmp_path: Path) -> None:
    write(tmp_path / "a.log", "a", 5)
    t = tailer(tmp_path)
    first = poll(t, commit=False)[0]
    assert len(first) == 5
    assert poll(t, commit=False)[0] == first  # not committed: the same lines again
    assert [c.offset for c in t.checkpoints()] == [0]
    assert poll(t)[0] == first
    assert poll(t)[0] == []


def test_chunks_hold_whole_lines_and_at_most_read_bytes(tmp_path: Path) -> None:
    expected = write(tmp_path / "a.log", "a", 5000)
    t = tailer(tmp_path, read_bytes=4096, max_line_bytes=1024)
    lines, _, chunks = poll(t)
    assert lines == expected
    assert len(chunks) > 10 and all(len(c.data) <= 4096 for c in chunks)
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))


def test_a_chunk_is_the_front_of_the_read_it_came_from_not_a_copy(tmp_path: Path) -> None:
    content = b"".join(line + b"\n" for line in write(tmp_path / "a.log", "a", 500))
    (tmp_path / "b.log.gz").write_bytes(gzip.compress(b"x" * 100 + b"\n" + content.replace(b"a-", b"g-")))
    t = tailer(tmp_path, "a.log", "b.log.gz", read_bytes=4096, max_line_bytes=1024)
    chunks = [c for c in t.poll() if isinstance(c, Chunk) and c.data]
    for chunk in chunks:
        # every read asks for read_bytes; the lines end at its last newline, the rest is read again
        assert chunk.length == chunk.buffer.rfind(b"\n") + 1
        assert (chunk.data is chunk.buffer) == (chunk.length == len(chunk.buffer))  # copied only if cut
        assert len(chunk.buffer) == 4096 or chunk.end == chunk.start + len(chunk.buffer)
    plain = [c for c in chunks if c.path.endswith("a.log")]
    assert 3 < len(plain) < len(chunks) - 3  # both files took several reads
    assert all(len(c.buffer) == 4096 for c in plain[:-1]) and b"".join(c.data for c in plain) == content


def test_binary_garbage_and_invalid_utf8_are_just_bytes(tmp_path: Path) -> None:
    content = bytes(range(256)) + b"\n\xff\xfe\xc3\x28 not utf-8\n\x00\x00\r\r\n"
    (tmp_path / "bin.log").write_bytes(content)
    t = tailer(tmp_path)
    chunks = [c for c in t.poll() if isinstance(c, Chunk)]
    assert b"".join(c.data for c in chunks) == content


# --- restart and crash -------------------------------------------------------------------------------


def test_restart_in_the_middle_continues_exactly_where_the_last_commit_left_off(tmp_path: Path) -> None:
    expected = write(tmp_path / "a.log", "a", 2000)
    t1 = tailer(tmp_path, read_bytes=4096, max_line_bytes=1024)
    delivered: list[bytes] = []
    for n, item in enumerate(t1.poll()):
        assert isinstance(item, Chunk)
        if n == 3:
            break  # the daemon stops after committing three chunks
        delivered.extend(item.data.split(b"\n")[:-1])
        t1.commit(item.checkpoint)
    saved = t1.checkpoints()
    t1.close()
    t2 = tailer(tmp_path, read_bytes=4096, max_line_bytes=1024)
    t2.load(saved)
    delivered += poll(t2)[0]
    assert delivered == expected  # every line once, in order
    expected += write(tmp_path / "a.log", "a", 10, 2000)
    delivered += poll(t2)[0]
    assert delivered == expected


def test_crash_before_commit_delivers_the_uncommitted_lines_again(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, "a", 10)
    t1 = tailer(tmp_path)
    assert len(poll(t1)[0]) == 10
    unsent = write(log, "a", 7, 10)
    assert poll(t1, commit=False)[0] == unsent  # read, then the process dies before the commit
    t2 = tailer(tmp_path)
    t2.load(t1.checkpoints())
    assert poll(t2)[0] == unsent
    assert poll(t2)[0] == []


def test_start_at_end_applies_to_the_first_poll_of_a_fresh_start_only(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, "old", 5)
    with log.open("ab") as f:
        f.write(b"par")
    t = tailer(tmp_path, start_at_end_for_new=True)
    assert poll(t)[0] == []  # history skipped, up to the start of the unfinished line
    with log.open("ab") as f:
        f.write(b"tial\n")
    later = write(tmp_path / "b.log", "b", 3)  # born while we watch: everything in it is new
    assert poll(t)[0] == [b"partial", *later]
    restarted = tailer(tmp_path, start_at_end_for_new=True)
    restarted.load(t.checkpoints())
    created_while_down = write(tmp_path / "c.log", "c", 2)
    assert poll(restarted)[0] == created_while_down


# --- identity ----------------------------------------------------------------------------------------


def test_a_short_file_keeps_its_identity_and_offset_as_it_grows(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"x\n")
    t = tailer(tmp_path)
    assert poll(t)[0] == [b"x"]
    (short,) = t.checkpoints()
    assert short.key.endswith(":2")
    grown = write(log, "a", 10)
    assert poll(t)[0] == grown
    (full,) = t.checkpoints()
    assert ":" not in full.key and full.offset == log.stat().st_size
    # the same across a restart: the stored short key still identifies the file that grew meanwhile
    more = write(log, "a", 5, 10)
    restarted = tailer(tmp_path)
    restarted.load([short])
    assert poll(restarted)[0] == [*grown, *more]


def test_inode_reuse_with_other_content_is_a_new_file(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, "old", 20)
    t = tailer(tmp_path)
    poll(t)
    (cp,) = t.checkpoints()
    log.unlink()
    fresh = write(log, "new", 3)  # smaller than the stored offset and other content
    st = log.stat()
    # pretend the new file got the old inode (the filesystem may or may not reuse it)
    restarted = tailer(tmp_path)
    restarted.load([Checkpoint(cp.key, cp.path, st.st_dev, st.st_ino, cp.offset, False)])
    assert poll(restarted)[0] == fresh


def test_a_renamed_file_is_followed_not_read_again(tmp_path: Path) -> None:
    old = write(tmp_path / "a.log", "a", 10)
    t = tailer(tmp_path)
    assert poll(t)[0] == old
    (tmp_path / "a.log").rename(tmp_path / "b.log")
    more = write(tmp_path / "b.log", "a", 2, 10)
    assert poll(t)[0] == more
    assert [c.path for c in t.checkpoints()] == [str(tmp_path / "b.log")]


def test_a_symlink_and_its_target_are_one_file(tmp_path: Path) -> None:
    lines = write(tmp_path / "build-1.log", "a", 4)
    (tmp_path / "current.log").symlink_to("build-1.log")
    t = tailer(tmp_path)
    assert poll(t)[0] == lines
    assert len(t.checkpoints()) == 1


def test_an_identical_copy_is_not_read_twice_and_is_reported_once(tmp_path: Path) -> None:
    lines = write(tmp_path / "a.log", "a", 10)
    t = tailer(tmp_path)
    assert poll(t)[0] == lines
    shutil.copy(tmp_path / "a.log", tmp_path / "copy.log")
    seen: list[Problem] = []
    for _ in range(6):
        got, problems, _ = poll(t)
        assert got == []
        seen += problems
    assert len(seen) == 1 and "same first 64 bytes" in seen[0].message
    assert seen[0].path == str(tmp_path / "copy.log")


# --- rotation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["app.log", "app.log*"])
def test_rotate_create_drains_the_old_file_first_then_reads_the_new_one(tmp_path: Path, pattern: str) -> None:
    log = tmp_path / "app.log"
    t = tailer(tmp_path, pattern)
    written = write(log, "gen1", 10)
    delivered = poll(t)[0]
    written += write(log, "gen1", 5, 10)  # not read yet
    log.rename(tmp_path / "app.log.1")
    written += write(tmp_path / "app.log.1", "gen1", 3, 15)  # the writer has not reopened yet
    new = write(log, "gen2", 7)
    written += new
    got = poll(t)[0]
    assert got[-7:] == new  # the old file is drained first
    delivered += got
    for _ in range(3):
        delivered += poll(t)[0]
    # a second rotation
    if pattern == "app.log*":
        (tmp_path / "app.log.1").rename(tmp_path / "app.log.2")
    log.rename(tmp_path / "app.log.1")
    written += write(log, "gen3", 4)
    for _ in range(3):
        delivered += poll(t)[0]
    assert Counter(delivered) == Counter(written) and len(delivered) == 29


def test_rotate_create_lets_the_old_file_go_once_drained_and_idle(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    t = tailer(tmp_path, "app.log")
    write(log, "a", 3)
    poll(t)
    log.rename(tmp_path / "old")
    write(log, "b", 3)
    before = open_fds()
    poll(t)
    poll(t)
    assert open_fds() == before  # the new file opened, the renamed-away one closed
    log.rename(tmp_path / "older")
    poll(t)
    assert open_fds() == before - 1
    assert len(t.checkpoints()) == 2  # both identities are remembered (by the last path seen)


def test_copytruncate_with_the_copy_matched_continues_in_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    t = tailer(tmp_path, "app.log*")
    written = write(log, "gen1", 20)
    delivered = poll(t)[0]
    written += write(log, "gen1", 5, 20)  # written between the last read and the copy
    shutil.copyfile(log, tmp_path / "app.log.1")
    with log.open("r+b") as f:
        f.truncate(0)
    new = write(log, "gen2", 4)
    written += new
    got = poll(t)[0]
    assert got[:5] == written[20:25] and got[5:] == new
    delivered += got
    for _ in range(2):
        delivered += poll(t)[0]
    assert Counter(delivered) == Counter(written) and len(delivered) == 29


def test_copytruncate_seen_between_copy_and_truncate(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    t = tailer(tmp_path, "app.log*")
    written = write(log, "gen1", 20)
    delivered = poll(t)[0]
    written += write(log, "gen1", 5, 20)
    shutil.copyfile(log, tmp_path / "app.log.1")
    delivered += poll(t)[0]  # the original still has everything; the copy is the same file
    with log.open("r+b") as f:
        f.truncate(0)
    written += write(log, "gen2", 4)
    for _ in range(3):
        delivered += poll(t)[0]
    assert Counter(delivered) == Counter(written) and len(delivered) == 29


def test_copytruncate_with_the_copy_unmatched_restarts_the_original_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    t = tailer(tmp_path, "app.log")
    written = write(log, "gen1", 20)
    delivered = poll(t)[0]
    shutil.copyfile(log, tmp_path / "app.log.1")
    with log.open("r+b") as f:
        f.truncate(0)
    new = write(log, "gen2", 30)  # already longer than the old offset: the fingerprint tells
    delivered += poll(t)[0]
    assert Counter(delivered) == Counter(written + new) and len(delivered) == 50


def test_truncation_in_place_restarts_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    t = tailer(tmp_path)
    written = write(log, "a", 10)
    delivered = poll(t)[0]
    (before,) = t.checkpoints()
    with log.open("r+b") as f:
        f.truncate(0)
    written += write(log, "a", 3)  # the same first bytes as before: same key, offset back to 0
    delivered += poll(t)[0]
    (after,) = t.checkpoints()
    assert after.key == before.key and after.offset == log.stat().st_size
    with log.open("r+b") as f:
        f.truncate(0)
    written += write(log, "other", 2)  # other content: a new identity
    delivered += poll(t)[0]
    assert {c.key for c in t.checkpoints() if c.offset == log.stat().st_size} != {before.key}
    assert Counter(delivered) == Counter(written) and len(delivered) == 15


def test_a_deleted_file_is_drained_to_its_end_before_it_is_let_go(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    t = tailer(tmp_path)
    written = write(log, "a", 10)
    delivered = poll(t)[0]
    written += write(log, "a", 5, 10)
    with log.open("ab") as f:
        f.write(b"last line without newline")
    written.append(b"last line without newline")
    before = open_fds()
    log.unlink()
    delivered += poll(t)[0]
    assert len(delivered) == 15  # the unfinished line waits a poll: the writer may still finish it
    got, _, chunks = poll(t)
    assert got == [b"last line without newline"] and chunks[0].end == chunks[0].start + 25
    delivered += got
    delivered += poll(t)[0]
    assert open_fds() == before - 1
    assert delivered == written


def test_a_file_deleted_in_the_middle_of_a_poll_is_still_read_to_its_end(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    written = write(log, "a", 3000)
    t = tailer(tmp_path, read_bytes=4096, max_line_bytes=1024)
    delivered: list[bytes] = []
    for n, item in enumerate(t.poll()):
        assert isinstance(item, Chunk)
        if n == 0:
            log.unlink()
        delivered.extend(item.data.split(b"\n")[:-1])
        t.commit(item.checkpoint)
    assert delivered == written


# --- gzip --------------------------------------------------------------------------------------------


def test_rotated_gz_of_a_tailed_file_continues_from_its_offset_then_is_done(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    t1 = tailer(tmp_path, "app.log*")
    written = write(log, "a", 20)
    delivered = poll(t1)[0]
    saved = t1.checkpoints()
    t1.close()
    # while the daemon is down: 5 more lines, rotated and compressed (logrotate compress)
    written += write(log, "a", 5, 20)
    (tmp_path / "app.log.1.gz").write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    t2 = tailer(tmp_path, "app.log*")
    t2.load(saved)
    got, problems, chunks = poll(t2)
    assert got == written[20:] and not problems
    assert chunks[-1].checkpoint.done
    delivered += got
    (cp,) = t2.checkpoints()
    assert cp.done and cp.path == str(tmp_path / "app.log.1.gz")
    opened: list[str] = []
    real_open = os.open

    def spy(path: str, *args: int) -> int:
        opened.append(str(path))
        return real_open(path, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "open", spy)
        for _ in range(3):
            delivered += poll(t2)[0]
    assert opened == []  # never opened again
    assert delivered == written


def test_gz_rotation_while_running_is_not_read_twice(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    t = tailer(tmp_path, "app.log*")
    written = write(log, "a", 20)
    delivered = poll(t)[0]
    written += write(log, "a", 5, 20)
    shutil.copyfile(log, tmp_path / "app.log.1")  # delaycompress: first a plain copy
    log.unlink()
    written += write(log, "b", 2)
    for _ in range(2):
        delivered += poll(t)[0]
    (tmp_path / "app.log.1.gz").write_bytes(gzip.compress((tmp_path / "app.log.1").read_bytes()))
    (tmp_path / "app.log.1").unlink()
    for _ in range(4):
        delivered += poll(t)[0]
    assert Counter(delivered) == Counter(written) and len(delivered) == 27
    assert any(c.done for c in t.checkpoints())


def test_gz_is_detected_by_magic_bytes_not_by_name(tmp_path: Path) -> None:
    lines = [f"line {i}".encode() for i in range(100)]
    (tmp_path / "old.log").write_bytes(gzip.compress(b"".join(x + b"\n" for x in lines) + b"no newline"))
    (tmp_path / "plain.gz").write_bytes(b"just text\n")
    t = Tailer(["*"], base_dir=tmp_path, read_bytes=256, max_line_bytes=64)
    got = poll(t)[0]
    assert got == [*lines, b"no newline", b"just text"]
    assert {c.path.rsplit("/", 1)[1]: c.done for c in t.checkpoints()} == {"old.log": True, "plain.gz": False}
    restarted = Tailer(["*"], base_dir=tmp_path, read_bytes=256, max_line_bytes=64)
    restarted.load(t.checkpoints())
    assert poll(restarted)[0] == []


def test_corrupt_and_cut_short_gz_are_reported_once(tmp_path: Path) -> None:
    (tmp_path / "bad.log").write_bytes(b"\x1f\x8b" + os.urandom(200))
    whole = gzip.compress(b"".join(b"line %d\n" % i for i in range(5000)))
    (tmp_path / "cut.log").write_bytes(whole[: len(whole) // 2])
    t = tailer(tmp_path)
    problems: list[Problem] = []
    for _ in range(3):
        problems += poll(t)[1]
    assert sorted(p.path.rsplit("/", 1)[1] for p in problems) == ["bad.log", "cut.log"]
    assert all("gzip" in p.message for p in problems)


# --- long lines --------------------------------------------------------------------------------------


def test_a_line_longer_than_max_line_bytes_is_skipped_and_reported_once(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"before\n" + b"x" * 500 + b"\nafter\n" + b"y" * 300 + b"\n")
    t = tailer(tmp_path, max_line_bytes=100, read_bytes=1000)
    lines, problems, _ = poll(t, commit=False)
    assert lines == [b"before", b"after"]
    assert [p.message for p in problems] == [
        "line longer than max_line_bytes at offset 7 (skipped 501 bytes)",
        "line longer than max_line_bytes at offset 514 (skipped 301 bytes)",
    ]
    lines, problems, chunks = poll(t)  # not committed: the lines again, the problems not
    assert lines == [b"before", b"after"] and problems == []
    assert chunks[-1].data == b"" and chunks[-1].end == log.stat().st_size
    assert poll(t) == ([], [], [])


def test_a_long_line_still_being_written_is_skipped_once_it_ends(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"ok\n" + b"z" * 150)
    t = tailer(tmp_path, max_line_bytes=100, read_bytes=100)
    assert poll(t)[0] == [b"ok"]
    with log.open("ab") as f:
        f.write(b"z" * 150)
    assert poll(t)[:2] == ([], [])
    with log.open("ab") as f:
        f.write(b"z\nnext\n")
    lines, problems, chunks = poll(t)
    assert lines == [b"next"] and len(problems) == 1 and "skipped 302 bytes" in problems[0].message
    assert all(len(c.data) <= 100 for c in chunks)


def test_a_50_mb_line_is_skipped_with_bounded_memory(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    with log.open("wb") as f:
        block = b"q" * (1 << 20)
        for _ in range(50):
            f.write(block)
        f.write(b"\n")
    normal = write(log, "n", 100)
    t = tailer(tmp_path)
    tracemalloc.start()
    try:
        lines, problems, chunks = poll(t)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == normal
    assert len(problems) == 1 and f"skipped {50 * (1 << 20) + 1} bytes" in problems[0].message
    assert all(len(c.data) <= 4 << 20 for c in chunks)
    assert peak < 2 * (4 << 20)  # one read buffer at a time, whatever the line length


def test_long_line_probe_matches_a_line_by_line_scan() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        limit = rng.randint(1, 40)
        body = b"".join(
            b"a" * rng.choice([0, 1, 5, limit - 1, limit, limit + 1, 3 * limit]) + b"\n"
            for _ in range(rng.randint(1, 8))
        )
        expected = None
        pos = 0
        for line in body.split(b"\n")[:-1]:
            if len(line) + 1 > limit:
                expected = (pos, pos + len(line) + 1)
                break
            pos += len(line) + 1
        assert _long_line(body, limit) == expected, (limit, body)


# --- bad input ---------------------------------------------------------------------------------------


def test_permission_denied_is_reported_once_and_other_files_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked.log"
    write(locked, "l", 2)
    ok = write(tmp_path / "ok.log", "o", 2)
    real_open = os.open

    def deny(path: str, *args: int) -> int:
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args)

    monkeypatch.setattr(os, "open", deny)
    t = tailer(tmp_path)
    lines, problems, _ = poll(t)
    assert lines == ok and problems == [Problem(str(locked), "permission denied")]
    assert poll(t)[:2] == ([], [])
    monkeypatch.setattr(os, "open", real_open)
    assert len(poll(t)[0]) == 2


def test_vanished_directories_and_fifos_are_reported_once(tmp_path: Path) -> None:
    (tmp_path / "gone.log").symlink_to("nowhere")  # the same as vanishing between glob and open
    (tmp_path / "dir.log").mkdir()
    os.mkfifo(tmp_path / "pipe.log")  # opening it would block: it must not be opened
    ok = write(tmp_path / "ok.log", "o", 2)
    t = tailer(tmp_path)
    lines, problems, _ = poll(t)
    assert lines == ok
    assert {(Path(p.path).name, p.message) for p in problems} == {
        ("gone.log", "vanished before it could be opened"),
        ("dir.log", "not a regular file"),
        ("pipe.log", "not a regular file"),
    }
    assert poll(t)[1] == []


def test_recursive_glob_skips_symlinked_dirs_and_reports_loops_once(tmp_path: Path) -> None:
    deep = tmp_path / "logs" / "a" / "b"
    deep.mkdir(parents=True)
    lines = write(deep / "x.log", "x", 2) + write(tmp_path / "logs" / "top.log", "t", 1)
    (deep / "up").symlink_to("../..")  # a loop
    (deep / "self").symlink_to("self")  # ELOOP
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write(outside / "not-followed.log", "n", 1)
    (tmp_path / "logs" / "link").symlink_to(outside)
    t = Tailer(["logs/**/*.log", "logs/**"], base_dir=tmp_path, fingerprint_bytes=64)
    got, problems, _ = poll(t)
    assert sorted(got) == sorted(lines)
    assert sorted((Path(p.path).name, p.message.split(" (")[0]) for p in problems) == [
        ("self", "symlink loop"),
        ("up", "symlink loop"),
    ]
    assert poll(t)[1] == []
    assert t.watched_dirs() == {tmp_path / "logs", deep}


def test_close_closes_every_descriptor(tmp_path: Path) -> None:
    before = open_fds()
    for name in ("a", "b", "c"):
        write(tmp_path / f"{name}.log", name, 2)
    (tmp_path / "d.log").write_bytes(gzip.compress(b"partly read\n" * 10000))
    t = tailer(tmp_path)
    assert len(poll(t, commit=False)[0]) == 10006
    assert open_fds() == before + 4
    t.close()
    assert open_fds() == before


# --- the harness ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_randomised_rotations_restarts_and_crashes_deliver_every_line_exactly_once(
    tmp_path: Path, seed: int
) -> None:
    """A writer rotates by rename and by copytruncate and compresses rotated files, the tailer restarts
    and crashes: every line written is committed exactly once (lines read but not committed before a
    crash do not count)."""
    rng = random.Random(seed)
    log = tmp_path / "app.log"
    written: list[bytes] = []
    committed: list[bytes] = []
    seq = 0
    rotations = 0

    def make() -> Tailer:
        return Tailer(
            ["app.log*"], base_dir=tmp_path, fingerprint_bytes=48, read_bytes=2048, max_line_bytes=512
        )

    t = make()
    for _ in range(300):
        op = rng.random()
        if op < 0.45:
            n = rng.randint(1, 40)
            written += write(log, "line", n, seq)
            seq += n
        elif op < 0.55 and log.exists():
            rotations += 1
            log.rename(tmp_path / f"app.log.{rotations}")
        elif op < 0.62 and log.exists():
            rotations += 1
            shutil.copyfile(log, tmp_path / f"app.log.{rotations}")
            with log.open("r+b") as f:
                f.truncate(0)
        elif op < 0.65 and rotations and (tmp_path / f"app.log.{rotations}").exists():
            rotated = tmp_path / f"app.log.{rotations}"
            rotated.with_name(rotated.name + ".gz").write_bytes(gzip.compress(rotated.read_bytes()))
            rotated.unlink()
        elif op < 0.69:
            saved = t.checkpoints()
            t.close()
            t = make()
            t.load(saved)
        elif op < 0.74:
            poll(t, commit=False)  # read, then crash before the commit
            saved = t.checkpoints()
            t.close()
            t = make()
            t.load(saved)
        else:
            committed += poll(t)[0]
    for _ in range(3):
        committed += poll(t)[0]
    t.close()
    assert rotations > 10 and list(tmp_path.glob("*.gz"))
    assert Counter(committed) == Counter(written)
    assert len(committed) == len(written) == seq
