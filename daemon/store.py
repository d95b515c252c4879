"""The SQLite state: what each run has told Compass, the outbox of updates, the sequence counter.

One connection, WAL, ``synchronous=FULL``: a committed event survives a power cut. The run's new
state and its queued update are written in one transaction, so a crash can never leave a run marked
as reported without its update in the outbox, nor the other way round. The update is kept once
(``updates``), as the destinations' common ground; each sink has its own outbox rows for it, and
renders its request body from it when it sends (``daemon.sinks``). The database's shape, and
bringing one an earlier release wrote up to it, are ``migrations``' business.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.clock import now_ms
from daemon.migrations import check_readable, prepare
from daemon.outbox import Answered, DeadLetter, OutboxItem, OutboxQueue
from daemon.state_check import StateDamagedError, find_damage, is_damage, new_identity

__all__ = [
    "PRIORITY_BACKFILL",
    "PRIORITY_IN_PROGRESS",
    "PRIORITY_TERMINAL",
    "STORE_RETRY_S",
    "Answered",
    "DeadLetter",
    "OutboxItem",
    "RunRow",
    "Store",
]

STORE_RETRY_S = 5.0  # a write that failed (disk full, database locked) is tried again this much later
PRIORITY_TERMINAL = 2
PRIORITY_IN_PROGRESS = 1
PRIORITY_BACKFILL = 0


@dataclass(frozen=True, slots=True)
class RunRow:
    source: str
    job: str
    number: int | str
    generation: int
    pipeline_id: str
    started_at_ms: int
    # the start the CI recorded, when exact (any CI's); stored in the column jenkins_start_ms, named
    # when only Jenkins was read and kept so that no migration is needed
    ci_start_ms: int | None
    dir_ino: int | None
    state: str
    terminal: bool
    kind: str = "build"  # or "deployment": what the run was first reported as


class Store(OutboxQueue):
    """The daemon's only persistent state; every method is one short transaction."""

    def __init__(self, state_dir: Path, *, readonly: bool = False) -> None:
        self.path = state_dir / "buildtail.sqlite3"
        if self.path.exists() and (problems := find_damage(self.path)):
            raise StateDamagedError(self.path, problems)
        if readonly:  # another process (buildtail status) looking while the daemon runs
            if not self.path.exists():
                raise FileNotFoundError(f"no state database at {self.path}")
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0)
            try:
                self._db.execute("PRAGMA busy_timeout=10000")
                check_readable(self._db, self.path)
            except BaseException:  # a newer schema, damage: the caller gets no Store to close
                self._db.close()
                raise
            self.created = False
            return
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._savepoints = 0
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=2.0)
        if new_file:  # the identity goes into the main file before WAL: see state_check
            self._db.execute(f"PRAGMA user_version = {new_identity()}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=2000")
        try:
            prepare(self._db, self.path)
            if self._db.execute("PRAGMA user_version").fetchone()[0] == 0:  # an earlier release's
                self._db.execute(f"PRAGMA user_version = {new_identity()}")
            with self._tx():
                self.created = self._get_meta("created_ms") is None
                if self.created:
                    self._set_meta("created_ms", str(now_ms()))
        except BaseException as exc:
            self._db.close()
            if is_damage(exc):  # damage the quick check did not see
                raise StateDamagedError(self.path, [str(exc)]) from exc
            raise

    def close(self) -> None:
        self._db.close()

    @property
    def total_changes(self) -> int:
        """Rows written through this connection so far: whether a transaction wrote anything."""
        return self._db.total_changes

    @contextmanager
    def batch(self, *, durable: bool = True) -> Iterator[None]:
        """Several writes (a chunk's events and its file checkpoint) committed as one transaction.

        ``durable=False`` commits without waiting for the disk (the next durable commit, or a
        checkpoint, carries it there): for writes whose loss in a power cut is harmless."""
        if durable or self._db.in_transaction:
            with self._tx():
                yield
            return
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._tx():
                yield
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; on any failure (a full disk at COMMIT included) nothing is kept
        and the connection is left usable for the next attempt. Nested calls join the outer one."""
        if self._db.in_transaction:  # nested: a savepoint, so a failed part leaves no half behind
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            self._db.execute(f"SAVEPOINT {name}")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute(f"ROLLBACK TO {name}")
                    self._db.execute(f"RELEASE {name}")
                raise
            self._db.execute(f"RELEASE {name}")
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise

    def _get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # --- facts kept across restarts ---------------------------------------------------------------

    def get_meta_int(self, key: str) -> int | None:
        value = self._get_meta(key)
        return None if value is None else int(value)

    def get_meta_json(self, key: str) -> Any:
        value = self._get_meta(key)
        return None if value is None else json.loads(value)

    def set_meta_json(self, key: str, value: Any) -> None:
        with self._tx():
            self._set_meta(key, json.dumps(value))

    def set_meta_int(self, key: str, value: int) -> None:
        with self._tx():
            self._set_meta(key, str(value))

    def record_stop(self, kind: str) -> None:
        """This process (a ``daemon`` or a ``backfill``) stops cleanly: ``buildtail status`` tells
        that from a killed one by this record, one per kind (a daemon stopping beside a backfill
        must not overwrite the backfill's). A database that refuses the write (full disk) costs
        the record, not the shutdown."""
        try:
            self.set_meta_json(f"last_stop_{kind}", {"pid": os.getpid(), "kind": kind, "at_ms": now_ms()})
        except sqlite3.Error:
            pass

    # --- file checkpoints (log and result-file sources) ----------------------------------------------

    def checkpoints(self, source: str) -> dict[str, Any]:
        rows = self._db.execute("SELECT key, value FROM checkpoints WHERE source = ?", (source,)).fetchall()
        return {str(r[0]): json.loads(r[1]) for r in rows}

    def save_checkpoint(self, source: str, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints (source, key, value) VALUES (?, ?, ?)",
                (source, key, json.dumps(value)),
            )

    # --- the rate budget's requests -------------------------------------------------------------------

    def record_send(self, at_ms: int, *, sink: str = "compass", keep_ms: int = 60_000) -> None:
        """A request to ``sink`` is about to go. Not waited for on disk: a power cut forgets at most
        the last few, a crashed process none (they are in the WAL)."""
        with self.batch(durable=False):
            self._db.execute("INSERT INTO sends (at_ms, sink) VALUES (?, ?)", (at_ms, sink))
            self._db.execute("DELETE FROM sends WHERE at_ms < ?", (at_ms - keep_ms,))

    def recent_sends(self, since_ms: int, *, sink: str = "compass") -> list[int]:
        query = "SELECT at_ms FROM sends WHERE at_ms >= ? AND sink = ? ORDER BY at_ms"
        return [int(r[0]) for r in self._db.execute(query, (since_ms, sink))]

    def read_rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query, for an operations command that shows what is stored as it is
        (``buildtail explain``, which opens the database read-only)."""
        return [tuple(r) for r in self._db.execute(query, tuple(params)).fetchall()]

    # --- runs ---------------------------------------------------------------------------------------

    def latest_run(self, source: str, job: str, number: int | str) -> RunRow | None:
        row = self._db.execute(
            "SELECT * FROM runs WHERE source = ? AND job = ? AND number = ? ORDER BY generation DESC LIMIT 1",
            (source, job, number),
        ).fetchone()
        return None if row is None else _run(row)

    def open_runs(self, source: str) -> list[RunRow]:
        rows = self._db.execute("SELECT * FROM runs WHERE source = ? AND terminal = 0", (source,)).fetchall()
        return [_run(r) for r in rows]

    def runs_by_job(self, since_ms: int) -> list[tuple[str, str, int]]:
        """(source, job, how many runs) of every job with a run started since ``since_ms``."""
        rows = self._db.execute(
            "SELECT source, job, count(*) FROM runs WHERE started_at_ms >= ? GROUP BY source, job "
            "ORDER BY source, job",
            (since_ms,),
        ).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def pipeline_id_taken(self, pipeline_id: str) -> bool:
        return (
            self._db.execute("SELECT 1 FROM runs WHERE pipeline_id = ?", (pipeline_id,)).fetchone()
            is not None
        )

    def record(
        self,
        run: RunRow,
        update: dict[str, Any],
        *,
        prior: RunRow | None,
        priority: int | None = None,
        sinks: Sequence[str] = ("compass",),
    ) -> int | None:
        """Stores the run's new state and queues its update for each of ``sinks`` in one
        transaction; returns the sequence number (every sink's: one update, one number).

        ``prior`` is what the caller based the event on; if another process (``buildtail backfill``
        beside the daemon) changed the run in between, nothing is written and None is returned, so
        the caller decides again instead of queueing a second event for the same update.

        The sequence number is ``max(last + 1, now in ms)``: it follows the clock when the clock is
        sane and still increases when the clock steps back, because the last one is persisted.
        A terminal event drops the run's queued IN_PROGRESS for each of ``sinks`` (it would be
        overwritten anyway and costs a request of the rate budget), never another sink's: a sink
        that does not get the final update keeps what it has.
        """
        now = now_ms()
        if priority is None:
            priority = PRIORITY_TERMINAL if run.terminal else PRIORITY_IN_PROGRESS
        with self._tx() as db:
            current = self.latest_run(run.source, run.job, run.number)
            if current != prior:
                return None
            last = int(self._get_meta("last_seq") or 0)
            seq = max(last + 1, now)
            self._set_meta("last_seq", str(seq))
            db.execute(
                "INSERT INTO runs (source, job, number, generation, pipeline_id, started_at_ms,"
                " jenkins_start_ms, dir_ino, state, terminal, updated_ms, kind)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (source, job, number, generation) DO UPDATE SET state = excluded.state,"
                " terminal = excluded.terminal, jenkins_start_ms = excluded.jenkins_start_ms,"
                " dir_ino = excluded.dir_ino, updated_ms = excluded.updated_ms",
                (
                    run.source,
                    run.job,
                    run.number,
                    run.generation,
                    run.pipeline_id,
                    run.started_at_ms,
                    run.ci_start_ms,  # -> jenkins_start_ms
                    run.dir_ino,
                    run.state,
                    int(run.terminal),
                    now,
                    run.kind,
                ),
            )
            if run.terminal and sinks:  # each sink's own: only a sink that gets the final one
                db.executemany(
                    "DELETE FROM outbox WHERE pipeline_id = ? AND sink = ? AND terminal = 0",
                    [(run.pipeline_id, sink) for sink in sinks],
                )
                self._forget_updates(run.pipeline_id)
            if not sinks:  # no destination wants it (Jira alone, a run naming no issue): state only
                return seq
            update_id = db.execute(
                "INSERT INTO updates (pipeline_id, seq, state, terminal, kind, priority, data, created_ms)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    run.pipeline_id,
                    seq,
                    run.state,
                    int(run.terminal),
                    run.kind,
                    priority,
                    json.dumps(update, separators=(",", ":")),
                    now,
                ),
            ).lastrowid
            db.executemany(
                "INSERT INTO outbox (sink, update_id, pipeline_id, seq, state, terminal, priority,"
                " created_ms) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (sink, update_id, run.pipeline_id, seq, run.state, int(run.terminal), priority, now)
                    for sink in sinks
                ],
            )
        return seq


def _run(row: Any) -> RunRow:
    return RunRow(
        source=row[0],
        job=row[1],
        number=row[2],
        generation=row[3],
        pipeline_id=row[4],
        started_at_ms=row[5],
        ci_start_ms=row[6],  # jenkins_start_ms
        dir_ino=row[7],
        state=row[8],
        terminal=bool(row[9]),
        kind=row[12],
    )
