"""The state database's shape, and how a database written by an earlier release is brought up to it.

The shape has a version, kept in the ``meta`` table under ``schema`` (0.1.0 wrote ``1``). Opening a
database brings it to ``SCHEMA_VERSION`` in one transaction, with a copy of the database taken
first (``buildtail.sqlite3.schema-<old>.bak``): a migration that fails leaves the old database as
it was, and the copy is what an operator rolls back to. A brand-new database goes through the same
steps as an old one, so the two can never differ. A database newer than this code knows (a
downgrade, or an older buildtail beside a newer one) is refused before anything is written to it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from daemon.clock import now_ms

__all__ = [
    "SCHEMA_VERSION",
    "StateVersionError",
    "backup_path",
    "check_readable",
    "prepare",
    "schema_version",
]

log = logging.getLogger("buildtail")

# The shape 0.1.0 created: schema 1, the starting point of every database.
_SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    source TEXT NOT NULL,
    job TEXT NOT NULL,
    number NOT NULL,  -- no type: a Jenkins build number, or another CI's run id, kept as given
    generation INTEGER NOT NULL,
    pipeline_id TEXT NOT NULL UNIQUE,
    started_at_ms INTEGER NOT NULL,
    jenkins_start_ms INTEGER,
    dir_ino INTEGER,
    state TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    acked_state TEXT,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (source, job, number, generation)
);
CREATE INDEX IF NOT EXISTS runs_open ON runs (terminal) WHERE terminal = 0;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    event TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (priority DESC, id);
CREATE INDEX IF NOT EXISTS outbox_pipeline ON outbox (pipeline_id, terminal);
CREATE TABLE IF NOT EXISTS checkpoints (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    pipeline_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    status INTEGER,
    error TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    failed_ms INTEGER NOT NULL
);
"""


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    """Statement by statement: ``executescript`` would commit the transaction the steps run in."""
    for statement in filter(str.strip, script.split(";")):
        db.execute(statement)


def _to_1(db: sqlite3.Connection) -> None:
    _execute_script(db, _SCHEMA_1)


def _to_2(db: sqlite3.Connection) -> None:
    """The time of every request of the last minute: the rate budget survives a restart (0.2.0)."""
    _execute_script(
        db,
        """
        CREATE TABLE sends (at_ms INTEGER NOT NULL);
        CREATE INDEX sends_at ON sends (at_ms);
        """,
    )


def _to_3(db: sqlite3.Connection) -> None:
    """What each run was first reported as: a build, or a deployment (0.2.0); earlier runs are builds."""
    db.execute("ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'build'")


def _to_4(db: sqlite3.Connection) -> None:
    """Sinks as peers: the run's update is kept once (``updates``), destination-neutral, and each
    sink has its own outbox rows for it, rendering its request body when it sends.

    Events queued by an earlier release hold the Compass body that release rendered (``event``);
    they keep it and are sent as they are, byte for byte with the same updateSequenceNumber: the
    facts a body was rendered from are not kept, so re-deriving an update from it could not be
    exact. Their ids, order, attempts and backoff stay. Dead letters and the budget's requests
    become the Compass sink's, and so do the pause, the published budget figures and the time of
    the last delivery: their meta keys take the sink's name (``delivery:compass:<fact>``), so that
    another sink keeps its own beside them. What a sink accepted of each run is its own too
    (``acks``): ``runs.acked_state``, what Compass accepted, becomes the compass sink's rows; the
    column stays, no longer written (dropping it would rebuild ``runs`` for nothing).
    """
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    _execute_script(
        db,
        """
        CREATE TABLE updates (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pipeline_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            state TEXT NOT NULL,
            terminal INTEGER NOT NULL,
            kind TEXT NOT NULL,
            priority INTEGER NOT NULL,
            data TEXT NOT NULL,
            created_ms INTEGER NOT NULL
        );
        CREATE INDEX updates_pipeline ON updates (pipeline_id);
        CREATE TABLE outbox_4 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pipeline_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            state TEXT NOT NULL,
            terminal INTEGER NOT NULL,
            priority INTEGER NOT NULL,
            event TEXT,  -- the Compass body an earlier release rendered (NULL: rendered from the update)
            created_ms INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            sink TEXT NOT NULL DEFAULT 'compass',
            update_id INTEGER  -- updates.id (NULL for an event queued before schema 4)
        );
        INSERT INTO outbox_4 (id, pipeline_id, seq, state, terminal, priority, event, created_ms,
            attempts, next_attempt_ms, last_error)
            SELECT id, pipeline_id, seq, state, terminal, priority, event, created_ms, attempts,
            next_attempt_ms, last_error FROM outbox;
        DROP TABLE outbox;
        ALTER TABLE outbox_4 RENAME TO outbox;
        CREATE INDEX outbox_order ON outbox (sink, priority DESC, id);
        CREATE INDEX outbox_pipeline ON outbox (pipeline_id, terminal);
        CREATE INDEX outbox_update ON outbox (update_id);
        ALTER TABLE dead_letters ADD COLUMN sink TEXT NOT NULL DEFAULT 'compass';
        ALTER TABLE sends ADD COLUMN sink TEXT NOT NULL DEFAULT 'compass';
        CREATE TABLE acks (
            sink TEXT NOT NULL,
            pipeline_id TEXT NOT NULL,
            state TEXT NOT NULL,  -- the run's last state the sink accepted
            PRIMARY KEY (sink, pipeline_id)
        );
        INSERT INTO acks (sink, pipeline_id, state)
            SELECT 'compass', pipeline_id, acked_state FROM runs WHERE acked_state IS NOT NULL;
        UPDATE meta SET key = 'delivery:compass:paused' WHERE key = 'delivery_paused';
        UPDATE meta SET key = 'delivery:compass:budget' WHERE key = 'budget';
        UPDATE meta SET key = 'delivery:compass:last_delivery_ms' WHERE key = 'last_delivery_ms';
        """,
    )
    # the old table's AUTOINCREMENT counter went with it: ids handed out before stay unused
    if row is not None:
        db.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (int(row[0]),))


def _to_5(db: sqlite3.Connection) -> None:
    """A record of answers: what each sink answered to each event sent (accepted, retried, dead,
    paused), where the event went (event source, component) and when, so that ``buildtail explain``
    can say why a run shows in the destination or not after its outbox row is gone. Kept for
    ``ANSWERS_KEEP_DAYS`` (``daemon.outbox``); the earlier history was never kept, so it starts empty."""
    _execute_script(
        db,
        """
        CREATE TABLE answers (
            id INTEGER PRIMARY KEY,
            sink TEXT NOT NULL,
            pipeline_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            state TEXT NOT NULL,
            kind TEXT NOT NULL,
            terminal INTEGER NOT NULL,
            event_source_id TEXT,
            component_id TEXT,
            status INTEGER,  -- NULL: no answer (a timeout, a refused connection)
            body TEXT,  -- the answer's body or the error, at most ANSWER_BODY_MAX characters
            outcome TEXT NOT NULL,  -- accepted, retry, dead, paused
            at_ms INTEGER NOT NULL,  -- the last time, for repeats
            repeats INTEGER NOT NULL DEFAULT 1  -- the same answer to the same event, this many times
        );
        CREATE INDEX answers_pipeline ON answers (pipeline_id);
        """,
    )


# Step n brings schema n-1 to n. Append only: a released step never changes.
_STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _to_1,
    2: _to_2,
    3: _to_3,
    4: _to_4,
    5: _to_5,
}
SCHEMA_VERSION = max(_STEPS)


class StateVersionError(Exception):
    """The database cannot be used by this code as it is (too new, or a failed migration)."""


def backup_path(db_path: Path, version: int) -> Path:
    return db_path.with_name(f"{db_path.name}.schema-{version}.bak")


def schema_version(db: sqlite3.Connection) -> int | None:
    """The database's schema, None for an empty one; 1 for tables without a recorded version."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        return 1 if "runs" in tables else None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is None:
        return 1 if "runs" in tables else None
    try:
        return int(row[0])
    except ValueError:
        raise StateVersionError(f"the state database's schema {row[0]!r} is not a number") from None


def _too_new(path: Path, version: int) -> StateVersionError:
    return StateVersionError(
        f"{path} has schema {version}, written by a newer buildtail; this one knows schemas up to "
        f"{SCHEMA_VERSION}. Nothing was changed. Run the newer buildtail again, or, to go back for "
        "good, stop buildtail and restore the copy the upgrade made "
        f"({backup_path(path, SCHEMA_VERSION).name} beside it; see README, Upgrading)"
    )


def check_readable(db: sqlite3.Connection, path: Path) -> None:
    """For read-only use (``buildtail status``): a newer shape is refused, an older one is read."""
    version = schema_version(db)
    if version is not None and version > SCHEMA_VERSION:
        raise _too_new(path, version)


def prepare(
    db: sqlite3.Connection, path: Path, steps: dict[int, Callable[[sqlite3.Connection], None]] | None = None
) -> bool:
    """Brings the database to ``SCHEMA_VERSION`` (from nothing, or from an earlier release's shape) in
    one transaction; returns whether it was new. ``steps`` replaces the real ones in tests."""
    steps = _STEPS if steps is None else steps
    target = max(steps)
    version: int | None = None  # set before anything can fail: the error path below reads it
    db.execute("BEGIN IMMEDIATE")  # no other process changes it between the version check and the steps
    try:
        version = schema_version(db)
        if version is not None and version > target:
            raise _too_new(path, version)
        if version == target:
            db.execute("COMMIT")
            return False
        if version is not None:
            copy = _backup(db, path, version)
            log.info("upgrading the state database %s from schema %d to %d", path, version, target)
        for step in range((version or 0) + 1, target + 1):
            steps[step](db)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(target),))
        if version is not None:
            upgraded = {
                "from": version,
                "to": target,
                "at_ms": now_ms(),
                "backup": str(copy),
            }
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('upgraded', ?)", (json.dumps(upgraded),)
            )
        db.execute("COMMIT")
    except BaseException as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error) and version is not None:
            raise StateVersionError(
                f"upgrading {path} from schema {version} failed ({exc}); it is unchanged and still "
                "usable by the release that wrote it"
            ) from exc
        raise
    return version is None


def _backup(db: sqlite3.Connection, path: Path, version: int) -> Path:
    """A copy of the database as it is before the migration. Read through a connection of its own:
    while ``db`` holds the write lock nobody can commit, so the copy is exactly what is migrated."""
    target = backup_path(path, version)
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    target.chmod(0o600)
    return target
