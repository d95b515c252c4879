"""Store on a real SQLite file: durability pragmas, sequence numbers, outbox and run bookkeeping."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.outbox import ANSWER_BODY_MAX, ANSWERS_KEEP_DAYS, OutboxItem
from daemon.store import Answered, RunRow, Store


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def run_row(
    job: str = "app",
    number: int = 1,
    *,
    state: str = "IN_PROGRESS",
    terminal: bool = False,
    generation: int = 1,
    pipeline_id: str | None = None,
    source: str = "jenkins",
    ci_start_ms: int | None = 1_700_000_000_000,
    dir_ino: int | None = 42,
) -> RunRow:
    return RunRow(
        source=source,
        job=job,
        number=number,
        generation=generation,
        pipeline_id=pipeline_id or f"{job}#{number}",
        started_at_ms=1_700_000_000_000,
        ci_start_ms=ci_start_ms,
        dir_ino=dir_ino,
        state=state,
        terminal=terminal,
    )


def event(pipeline_id: str, state: str) -> dict[str, Any]:
    return {
        "event": {
            "build": {
                "displayName": pipeline_id,
                "updateSequenceNumber": 0,
                "buildProperties": {"state": state, "pipeline": {"pipelineId": pipeline_id}},
            }
        }
    }


def record(store: Store, row: RunRow) -> int:
    prior = store.latest_run(row.source, row.job, row.number)
    seq = store.record(row, event(row.pipeline_id, row.state), prior=prior)
    assert seq is not None
    return seq


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state")
    yield s
    s.close()


def test_wal_and_synchronous_full(store: Store) -> None:
    assert store.path.is_file()
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    other = sqlite3.connect(store.path)
    try:
        # WAL is a property of the database file, seen by every connection
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()


def test_state_dir_created_private(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b"
    s = Store(d)
    try:
        assert d.is_dir()
        assert (d.stat().st_mode & 0o777) == 0o700
    finally:
        s.close()


def test_record_returns_increasing_sequence_numbers_from_the_clock(store: Store) -> None:
    before = now_ms()
    seqs = [record(store, run_row(number=n)) for n in range(1, 6)]
    assert all(b > a for a, b in itertools.pairwise(seqs))
    assert seqs[0] >= before
    assert store.get_meta_int("last_seq") == seqs[-1]
    item, _ = store.next_due()
    assert item is not None
    assert item.seq == seqs[0]
    assert item.update == event("app#1", "IN_PROGRESS") and item.body is None and item.sink == "compass"


def test_sequence_survives_a_clock_step_back(store: Store) -> None:
    future = now_ms() + 10 * 365 * 86_400_000
    store.set_meta_int("last_seq", future)
    assert record(store, run_row(number=1)) == future + 1
    assert record(store, run_row(number=2)) == future + 2


def test_sequence_persists_across_reopen(tmp_path: Path) -> None:
    s = Store(tmp_path)
    future = now_ms() + 86_400_000
    s.set_meta_int("last_seq", future)
    first = record(s, run_row(number=1))
    s.close()
    s2 = Store(tmp_path)
    try:
        assert s2.get_meta_int("last_seq") == first
        assert record(s2, run_row(number=2)) == first + 1
        assert s2.outbox_depth() == 2
    finally:
        s2.close()


def test_created_only_the_first_time(tmp_path: Path) -> None:
    s = Store(tmp_path)
    assert s.created is True
    s.close()
    s2 = Store(tmp_path)
    try:
        assert s2.created is False
    finally:
        s2.close()


def test_terminal_record_coalesces_queued_in_progress_of_the_same_pipeline(store: Store) -> None:
    record(store, run_row("app", 1))
    record(store, run_row("other", 7))
    record(store, run_row("app", 1, state="SUCCESSFUL", terminal=True))
    queued: list[tuple[str, str]] = []
    while True:
        item, _ = store.next_due()
        if item is None:
            break
        queued.append((item.pipeline_id, item.state))
        store.ack(item)
    assert sorted(queued) == [("app#1", "SUCCESSFUL"), ("other#7", "IN_PROGRESS")]


def test_next_due_sends_terminal_events_first_each_oldest_first(store: Store) -> None:
    record(store, run_row("a", 1))
    record(store, run_row("b", 1, state="FAILED", terminal=True))
    record(store, run_row("c", 1))
    record(store, run_row("d", 1, state="SUCCESSFUL", terminal=True))
    order: list[str] = []
    while (item := store.next_due()[0]) is not None:
        order.append(item.pipeline_id)
        store.ack(item)
    assert order == ["b#1", "d#1", "a#1", "c#1"]


def test_next_due_is_fifo_and_honours_next_attempt(store: Store) -> None:
    record(store, run_row("a", 1))
    record(store, run_row("b", 1))
    head, due = store.next_due()
    assert head is not None and head.pipeline_id == "a#1" and due is None
    at = now_ms() + 60_000
    store.retry_later(head, at, "503: busy")
    # the head is not due yet; the younger event must not overtake it
    item, due = store.next_due()
    assert item is None
    assert due == at
    item, due = store.next_due(at_ms=at)
    assert item is not None and item.pipeline_id == "a#1" and due is None
    assert item.attempts == 1
    assert item.next_attempt_ms == at
    store.ack(item)
    item, _ = store.next_due()
    assert item is not None and item.pipeline_id == "b#1"


def test_next_due_on_empty_outbox(store: Store) -> None:
    assert store.next_due() == (None, None)


def test_ack_removes_and_records_what_the_sink_accepted(store: Store) -> None:
    record(store, run_row("app", 3, state="FAILED", terminal=True))
    item, _ = store.next_due()
    assert item is not None
    store.ack(item)
    assert store.outbox_depth() == 0
    row = store.latest_run("jenkins", "app", 3)
    assert row is not None
    assert store.acked_state("app#3") == "FAILED"
    assert store.acked_state("app#3", sink="board") is None  # another sink accepted nothing
    assert row.state == "FAILED"
    assert row.terminal is True


def test_ack_many_acknowledges_a_settled_batch_at_once(store: Store) -> None:
    for n in (1, 2, 3):
        record(store, run_row("app", n, state="SUCCESSFUL", terminal=True))
    items: list[OutboxItem] = []
    while (item := store.next_due(exclude_ids={i.id for i in items})[0]) is not None:
        items.append(item)
    assert len(items) == 3
    store.ack_many(items)
    assert store.outbox_depth() == 0
    assert [store.acked_state(f"app#{n}") for n in (1, 2, 3)] == ["SUCCESSFUL"] * 3
    assert store._db.execute("SELECT COUNT(*) FROM updates").fetchone()[0] == 0  # no sink holds them
    assert store.last_delivery_ms() is not None
    store.ack_many([])  # nothing settled: nothing written


def test_acks_batched_without_waiting_for_the_disk_then_full_again(store: Store, tmp_path: Path) -> None:
    record(store, run_row("app", 5, state="SUCCESSFUL", terminal=True))
    item, _ = store.next_due()
    assert item is not None
    seen: list[int] = []
    with store.batch(durable=False):
        seen.append(store._db.execute("PRAGMA synchronous").fetchone()[0])
        store.ack(item)
    assert seen == [1]  # NORMAL inside
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again for what follows
    other = Store(tmp_path / "state", readonly=True)
    try:
        assert other.outbox_depth() == 0  # committed, visible to another connection
    finally:
        other.close()
    # inside an open transaction the outer one decides: no PRAGMA change mid-transaction
    with store.batch(), store.batch(durable=False):
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_dead_letter_keeps_status_and_error(store: Store) -> None:
    seq = record(store, run_row("app", 4, state="FAILED", terminal=True))
    item, _ = store.next_due()
    assert item is not None
    store.dead_letter(item, {"sent": "body"}, 400, '{"errors":[{"type":"FORMAT_INVALID"}]}')
    assert store.outbox_depth() == 0
    (dl,) = store.dead_letters()
    assert dl.pipeline_id == "app#4"
    assert dl.seq == seq
    assert dl.status == 400
    assert dl.error == '{"errors":[{"type":"FORMAT_INVALID"}]}'
    assert dl.failed_ms >= item.created_ms
    row = store.latest_run("jenkins", "app", 4)
    assert row is not None and store.acked_state("app#4") is None


def test_open_runs_latest_run_and_pipeline_id_taken(store: Store) -> None:
    record(store, run_row("app", 1))
    record(store, run_row("app", 2))
    record(store, run_row("app", 2, state="SUCCESSFUL", terminal=True))
    record(store, run_row("app", 1, source="other-ci", pipeline_id="x#1"))
    assert {(r.job, r.number) for r in store.open_runs("jenkins")} == {("app", 1)}
    assert [r.pipeline_id for r in store.open_runs("other-ci")] == ["x#1"]
    # a reused number: generation 2 is the latest
    record(store, run_row("app", 2, generation=2, pipeline_id="app#2.2", ci_start_ms=5))
    latest = store.latest_run("jenkins", "app", 2)
    assert latest is not None
    assert latest.generation == 2 and latest.pipeline_id == "app#2.2"
    assert latest.ci_start_ms == 5
    assert store.latest_run("jenkins", "app", 99) is None
    assert store.pipeline_id_taken("app#2") is True
    assert store.pipeline_id_taken("app#2.2") is True
    assert store.pipeline_id_taken("app#3") is False


def test_record_updates_existing_run_but_keeps_identity(store: Store) -> None:
    record(store, run_row("app", 1, dir_ino=1))
    record(store, run_row("app", 1, state="SUCCESSFUL", terminal=True, dir_ino=2, ci_start_ms=9))
    row = store.latest_run("jenkins", "app", 1)
    assert row is not None
    assert (row.pipeline_id, row.state, row.terminal, row.dir_ino, row.ci_start_ms) == (
        "app#1",
        "SUCCESSFUL",
        True,
        2,
        9,
    )
    assert row.started_at_ms == 1_700_000_000_000


def test_record_refuses_when_another_process_changed_the_run(store: Store) -> None:
    first = run_row(state="SUCCESSFUL", terminal=True)
    assert store.record(first, event(first.pipeline_id, first.state), prior=None) is not None
    # a second writer that read the run before the first one wrote it
    again = run_row(state="SUCCESSFUL", terminal=True)
    assert store.record(again, event(again.pipeline_id, again.state), prior=None) is None
    assert store.outbox_depth() == 1


def test_backfill_priority_goes_last(store: Store) -> None:
    history = run_row(job="old", state="FAILED", terminal=True)
    store.record(history, event(history.pipeline_id, history.state), prior=None, priority=0)
    live = run_row(job="new", state="IN_PROGRESS")
    store.record(live, event(live.pipeline_id, live.state), prior=None)
    item, _ = store.next_due()
    assert item is not None and item.pipeline_id == "new#1"
    assert store.outbox_depth(priority=0) == 1


def test_a_failed_part_of_a_batch_leaves_nothing_behind(store: Store) -> None:
    store._db.execute(  # a statement-level failure on one run's outbox insert
        "CREATE TEMP TRIGGER fail AFTER INSERT ON outbox WHEN NEW.pipeline_id = 'bad#1' "
        "BEGIN SELECT RAISE(ABORT, 'simulated'); END"
    )
    good, bad = (
        run_row(job="good", state="SUCCESSFUL", terminal=True),
        run_row(job="bad", state="FAILED", terminal=True),
    )
    with store.batch():
        store.record(good, event(good.pipeline_id, good.state), prior=None)
        with pytest.raises(sqlite3.IntegrityError):
            store.record(bad, event(bad.pipeline_id, bad.state), prior=None)
    assert store.latest_run("jenkins", "good", 1) is not None
    assert store.latest_run("jenkins", "bad", 1) is None, "the run's state without its event would lose it"
    assert store.outbox_depth() == 1


def _updates(store: Store) -> int:
    return int(store._db.execute("SELECT COUNT(*) FROM updates").fetchone()[0])


def test_an_update_is_kept_once_while_any_sink_has_it_queued(store: Store) -> None:
    """Each sink has its own outbox row, order and acknowledgement; the update they render from is
    stored once and goes with the last of them."""
    row = run_row("app", 9)
    seq = store.record(row, event(row.pipeline_id, row.state), prior=None, sinks=("compass", "other"))
    assert _updates(store) == 1 and store.outbox_depth() == 2
    mine, _ = store.next_due(sink="compass")
    theirs, _ = store.next_due(sink="other")
    assert mine is not None and theirs is not None and mine.id != theirs.id
    assert mine.seq == theirs.seq == seq and mine.update == theirs.update
    store.ack(mine)
    assert store.next_due(sink="compass") == (None, None)
    assert _updates(store) == 1, "the other sink still has it queued"
    store.dead_letter(theirs, {"sent": 1}, 400, "no")
    assert _updates(store) == 0 and store.outbox_depth() == 0
    assert store._db.execute("SELECT sink, event FROM dead_letters").fetchall() == [("other", '{"sent": 1}')]


def test_a_terminal_update_replaces_the_queued_in_progress_one_for_every_sink(store: Store) -> None:
    running = run_row("app", 3)
    store.record(running, event(running.pipeline_id, "IN_PROGRESS"), prior=None, sinks=("compass", "other"))
    done = run_row("app", 3, state="SUCCESSFUL", terminal=True)
    prior = store.latest_run("jenkins", "app", 3)
    store.record(done, event(done.pipeline_id, "SUCCESSFUL"), prior=prior, sinks=("compass", "other"))
    assert store.outbox_by_state() == {"SUCCESSFUL": 2}
    assert _updates(store) == 1


def _answers(store: Store) -> list[tuple[Any, ...]]:
    return store.read_rows(
        "SELECT pipeline_id, state, outcome, status, body, component_id, event_source_id, repeats"
        " FROM answers ORDER BY id"
    )


def test_every_answer_is_recorded_with_the_outbox_change(store: Store) -> None:
    for n in (1, 2):
        record(store, run_row("app", n, state="SUCCESSFUL", terminal=True))
    first, _ = store.next_due()
    assert first is not None
    store.retry_later(first, 0, "503: busy", answer=Answered(503, "busy", "src", "comp"))
    store.retry_later(first, 0, "503: busy", answer=Answered(503, "still busy", "src", "comp"))
    store.retry_later(first, 0, "401: no", paused=True, answer=Answered(401, "no", "src", "comp"))
    store.ack_many([first], [Answered(202, "", "src", "comp")])
    second, _ = store.next_due()
    assert second is not None
    store.dead_letter(second, {"sent": 1}, 400, "x" * 5000, answer=Answered(400, "x" * 5000, "src", None))
    assert _answers(store) == [
        ("app#1", "SUCCESSFUL", "retry", 503, "still busy", "comp", "src", 2),  # the same answer again
        ("app#1", "SUCCESSFUL", "paused", 401, "no", "comp", "src", 1),
        ("app#1", "SUCCESSFUL", "accepted", 202, None, "comp", "src", 1),
        ("app#2", "SUCCESSFUL", "dead", 400, "x" * ANSWER_BODY_MAX, None, "src", 1),
    ]


def test_answers_older_than_the_retention_go_as_new_ones_come(store: Store) -> None:
    old = now_ms() - (ANSWERS_KEEP_DAYS + 1) * 86_400_000
    store._db.executemany(
        "INSERT INTO answers (sink, pipeline_id, seq, state, kind, terminal, outcome, at_ms)"
        " VALUES ('compass', ?, 1, 'SUCCESSFUL', 'build', 1, 'accepted', ?)",
        [(f"old#{n}", old) for n in range(5)] + [("recent#1", now_ms())],
    )
    record(store, run_row("app", 1, state="SUCCESSFUL", terminal=True))
    item, _ = store.next_due()
    assert item is not None
    store.ack_many([item])  # one answer added: at most two expired ones removed with it
    left = [r[0] for r in _answers(store)]
    assert left == ["old#2", "old#3", "old#4", "recent#1", "app#1"]


def test_expired_answers_behind_ones_refreshed_in_place_still_go(store: Store) -> None:
    """The oldest rows are repeated answers, refreshed in place (recent ``at_ms``): the expired ones
    written after them are still pruned, a bounded number with each acknowledgement."""
    old = now_ms() - (ANSWERS_KEEP_DAYS + 1) * 86_400_000
    store._db.executemany(
        "INSERT INTO answers (sink, pipeline_id, seq, state, kind, terminal, outcome, at_ms)"
        " VALUES ('jira', ?, 1, 'SUCCESSFUL', 'build', 1, ?, ?)",
        [(f"stuck#{n}", "retry", now_ms()) for n in range(300)]
        + [(f"old#{n}", "accepted", old) for n in range(6)],
    )
    for number in range(1, 21):
        record(store, run_row("app", number, state="SUCCESSFUL", terminal=True))
        item, _ = store.next_due()
        assert item is not None
        store.ack_many([item])
        if not [r for r in _answers(store) if r[0].startswith("old#")]:
            break
    assert number <= 10, "the expired answers stayed behind the refreshed ones"
    assert len([r for r in _answers(store) if r[0].startswith("stuck#")]) == 300


def test_answers_expire_under_a_sink_that_accepts_nothing(store: Store) -> None:
    """A sink that refuses every event (retried, then dead letters) adds an answer each time, and
    acknowledges nothing: the expired answers are pruned with those answers too, so the record of
    answers stays bounded."""
    old = now_ms() - (ANSWERS_KEEP_DAYS + 1) * 86_400_000
    store._db.executemany(
        "INSERT INTO answers (sink, pipeline_id, seq, state, kind, terminal, outcome, at_ms)"
        " VALUES ('compass', ?, 1, 'SUCCESSFUL', 'build', 1, 'dead', ?)",
        [(f"old#{n}", old) for n in range(4)],
    )
    record(store, run_row("app", 1, state="SUCCESSFUL", terminal=True))
    item, _ = store.next_due()
    assert item is not None
    store.retry_later(item, 0, "500: down", answer=Answered(500, "down"))
    store.dead_letter(item, {"sent": 1}, 400, "bad", answer=Answered(400, "bad"))
    assert [r[0] for r in _answers(store)] == ["app#1", "app#1"]
