"""The state database across releases: every earlier release's database opens, migrated in one
transaction with a copy kept; a newer one is refused untouched; a failed step changes nothing.

The databases are what the releases themselves wrote (``tests/fixtures/state-<version>.sql``, made
by ``python -m tests.upgrade``): queued events, a run in progress, history, a log checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.migrations import (
    _STEPS,
    SCHEMA_VERSION,
    StateVersionError,
    backup_path,
    prepare,
    schema_version,
)
from daemon.sinks import StdoutTransport
from daemon.sinks.compass.sink import CompassSink
from daemon.store import Store
from tests.releases import RELEASES
from tests.upgrade import fixture_path

TABLES = ("runs", "outbox", "checkpoints", "dead_letters")


# Compass's facts whose meta keys took the sink's name in schema 4.
_RENAMED_IN_4 = {
    "delivery_paused": "delivery:compass:paused",
    "budget": "delivery:compass:budget",
    "last_delivery_ms": "delivery:compass:last_delivery_ms",
}


def _load(version: str, state_dir: Path) -> Path:
    state_dir.mkdir(parents=True)
    path = state_dir / "buildtail.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(fixture_path(version).read_text(encoding="utf-8"))
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    return path


def _rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
        out["meta"] = sorted(db.execute("SELECT * FROM meta WHERE key != 'schema'").fetchall())
        return out
    finally:
        db.close()


def _schema(path: Path) -> int | None:
    # closed at once: Python 3.13 warns about a connection left for the garbage collector
    with closing(sqlite3.connect(path)) as db:
        return schema_version(db)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bump_schema(path: Path, version: int) -> None:
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(version),))
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_every_release_has_its_database_as_a_fixture(version: str) -> None:
    assert fixture_path(version).is_file(), f"run `python -m tests.upgrade` to write {fixture_path(version)}"


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_a_release_database_is_migrated_with_everything_in_it(tmp_path: Path, version: str) -> None:
    path = _load(version, tmp_path / "state")
    before = _rows(path)
    old = _schema(path)
    assert old is not None and old <= SCHEMA_VERSION
    assert before["outbox"] and any(r[9] == 0 for r in before["runs"]), "queued events and a run in progress"

    store = Store(tmp_path / "state")
    try:
        assert store.created is False
        assert store.get_meta_int("schema") == SCHEMA_VERSION
        after = _rows(path)
        before_4 = {**before, "meta": sorted((_RENAMED_IN_4.get(k, k), v) for k, v in before["meta"])}
        for table in (*TABLES, "meta"):
            kept = [r[: len(before[table][0])] for r in after[table]] if before[table] else after[table]
            old_rows = before_4[table] if old < 4 else before[table]
            assert kept == old_rows or set(old_rows) <= set(kept), table  # added columns only
        queued = []
        while (item := store.next_due()[0]) is not None:
            queued.append((item.pipeline_id, item.seq))
            store.ack(item)
        assert sorted(queued) == sorted((r[1], r[2]) for r in before["outbox"]), "same events, same numbers"
    finally:
        store.close()
    if old < SCHEMA_VERSION:
        copy = backup_path(path, old)
        assert copy.is_file() and copy.stat().st_mode & 0o077 == 0
        assert _rows(copy) == before
        assert _schema(copy) == old


def test_a_new_database_is_made_by_the_same_steps(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    assert store.created is True
    assert store.get_meta_int("schema") == SCHEMA_VERSION
    store.close()
    assert not list((tmp_path / "state").glob("*.bak"))
    again = Store(tmp_path / "state")
    assert again.created is False
    again.close()


@pytest.mark.parametrize("readonly", [False, True], ids=["daemon", "status"])
def test_a_newer_database_is_refused_and_left_untouched(tmp_path: Path, readonly: bool) -> None:
    Store(tmp_path / "state").close()
    path = tmp_path / "state" / "buildtail.sqlite3"
    _bump_schema(path, SCHEMA_VERSION + 1)
    digest = _digest(path)
    with pytest.raises(
        StateVersionError, match=rf"schema {SCHEMA_VERSION + 1}, written by a newer buildtail"
    ):
        Store(tmp_path / "state", readonly=readonly)
    assert _digest(path) == digest
    assert not list((tmp_path / "state").glob("*.bak"))


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_a_failed_migration_leaves_the_old_database_as_it_was(tmp_path: Path, version: str) -> None:
    path = _load(version, tmp_path / "state")
    before = _rows(path)
    old = _schema(path)
    assert old is not None

    def half_done(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        db.execute("ALTER TABLE runs ADD COLUMN half INTEGER")
        db.execute("INSERT INTO nowhere VALUES (1)")  # fails

    steps: dict[int, Callable[[sqlite3.Connection], None]] = dict.fromkeys(range(1, old + 1), lambda db: None)
    steps[old + 1] = half_done
    db = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(StateVersionError, match="is unchanged and still usable"):
        prepare(db, path, steps)
    assert schema_version(db) == old
    assert not db.in_transaction
    assert "half" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert _rows(path) == before
    store = Store(tmp_path / "state")  # the real steps still work on it afterwards
    assert store.get_meta_int("schema") == SCHEMA_VERSION
    store.close()


def test_a_database_without_a_recorded_schema_is_the_first_one(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.sqlite3")
    assert schema_version(db) is None
    db.execute("CREATE TABLE runs (x)")
    assert schema_version(db) == 1
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    assert schema_version(db) == 1
    db.execute("INSERT INTO meta VALUES ('schema', 'x')")
    with pytest.raises(StateVersionError, match="not a number"):
        schema_version(db)
    db.close()


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_an_earlier_release_queued_body_is_sent_as_it_was_rendered(tmp_path: Path, version: str) -> None:
    """An event queued before the update was kept carries the body its release rendered: the Compass
    sink sends exactly that body (same updateSequenceNumber), and a dead letter stays Compass's."""
    path = _load(version, tmp_path / "state")
    db = sqlite3.connect(path)
    bodies = {str(p): json.loads(e) for p, e in db.execute("SELECT pipeline_id, event FROM outbox")}
    db.execute(
        "INSERT INTO dead_letters (pipeline_id, seq, event, status, error, created_ms, failed_ms)"
        " VALUES ('old#1', 5, '{\"event\":{}}', 400, 'refused', 1, 2)"
    )
    db.commit()
    db.close()
    settings = Settings.model_validate({"host": "h", "sources": [{"type": "jenkins", "home": str(tmp_path)}]})
    sink = CompassSink(settings, transport=StdoutTransport(), bucket=TokenBucket(0, 1), cloud_id="cloud-9")
    store = Store(tmp_path / "state")
    try:
        sent = {}
        while (item := store.next_due()[0]) is not None:
            assert item.update is None and item.sink == "compass"
            sent[item.pipeline_id] = sink.render(item)
            store.ack(item)
        assert sent == {p: {"cloudId": "cloud-9", **b} for p, b in bodies.items()}
        rows = store._db.execute("SELECT pipeline_id, event, sink FROM dead_letters").fetchall()
        assert ("old#1", '{"event":{}}', "compass") in rows
    finally:
        store.close()


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_status_reads_an_earlier_release_database_before_it_is_upgraded(tmp_path: Path, version: str) -> None:
    """``buildtail status`` of the new version beside a daemon not restarted yet: read as it is."""
    path = _load(version, tmp_path / "state")
    digest = _digest(path)
    store = Store(tmp_path / "state", readonly=True)
    try:
        assert store.outbox_depth() == 3 and store.outbox_deployments() == 0
        assert sum(store.outbox_by_state().values()) == 3 and store.dead_letters() == []
    finally:
        store.close()
    assert _digest(path) == digest


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_compass_pause_budget_and_last_delivery_become_the_compass_sinks(
    tmp_path: Path, version: str
) -> None:
    """An earlier release kept one pause, one budget, one last delivery and one accepted state per
    run: Compass's. After the upgrade they are the compass sink's, and no other sink sees them."""
    path = _load(version, tmp_path / "state")
    pause = {"reason": "Compass refused the credentials (HTTP 401)", "since_ms": 1_700_000_000_000}
    db = sqlite3.connect(path)
    db.execute("INSERT INTO meta (key, value) VALUES ('delivery_paused', ?)", (json.dumps(pause),))
    db.execute("INSERT INTO meta (key, value) VALUES ('last_delivery_ms', '1700000000123')")
    budget = json.loads(db.execute("SELECT value FROM meta WHERE key = 'budget'").fetchone()[0])
    db.execute("UPDATE runs SET acked_state = 'IN_PROGRESS' WHERE pipeline_id = 'team/api#2'")
    db.commit()
    db.close()

    readonly = Store(tmp_path / "state", readonly=True)  # status beside the old daemon: read as it is
    try:
        assert readonly.delivery_state("compass") == (pause["reason"], pause["since_ms"])
        assert readonly.last_delivery_ms("compass") == 1_700_000_000_123
    finally:
        readonly.close()

    store = Store(tmp_path / "state")
    try:
        assert store.delivery_state("compass") == (pause["reason"], pause["since_ms"])
        assert store.last_delivery_ms("compass") == 1_700_000_000_123
        assert store.sink_fact("compass", "budget") == budget
        for old in _RENAMED_IN_4:
            assert store.get_meta_json(old) is None, old
        assert store.delivery_state("jira") == (None, None) and store.last_delivery_ms("jira") is None
        assert store.sink_fact("jira", "budget") is None
        assert store.acked_state("team/api#2") == "IN_PROGRESS" and store.acked_state("app#3") is None
        assert store.acked_state("team/api#2", sink="jira") is None
    finally:
        store.close()


def test_schema_4_gets_the_record_of_answers_and_keeps_everything(tmp_path: Path) -> None:
    """4 -> 5 adds ``answers`` (empty: no answer was kept before) and changes nothing else."""
    path = _load("0.2.0", tmp_path / "state")
    db = sqlite3.connect(path, isolation_level=None)
    prepare(db, path, {step: _STEPS[step] for step in range(1, 5)})  # as this code's previous schema
    assert schema_version(db) == 4
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    before = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables if t != "meta"}
    meta = sorted(db.execute("SELECT * FROM meta WHERE key NOT IN ('schema', 'upgraded')").fetchall())
    db.close()
    assert before["outbox"] and before["updates"] == [] and "answers" not in before

    store = Store(tmp_path / "state")
    try:
        assert store.get_meta_int("schema") == 5 == SCHEMA_VERSION
        for table, rows in before.items():
            assert sorted(store.read_rows(f"SELECT * FROM {table}"), key=repr) == rows, table
        kept = store.read_rows("SELECT * FROM meta WHERE key NOT IN ('schema', 'upgraded')")
        assert sorted(kept) == meta
        assert store.read_rows("SELECT COUNT(*) FROM answers") == [(0,)]
        assert store.get_meta_json("upgraded")["from"] == 4
        item = store.next_due()[0]
        assert item is not None
        store.ack(item)  # an event an earlier release queued is answered and recorded like any other
        [(pipeline_id, outcome, kind)] = store.read_rows("SELECT pipeline_id, outcome, kind FROM answers")
        assert (pipeline_id, outcome, kind) == (item.pipeline_id, "accepted", "build")
    finally:
        store.close()
    assert _schema(backup_path(path, 4)) == 4
