"""The outbox's counts, as ``buildtail status``, health and metrics read them: how many events are
queued (in all, per state, per sink), the oldest, the last error, and the dead letters. Read-only
queries on the connection ``Store`` owns; the queue's writes are ``outbox.OutboxQueue``'s.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["DeadLetter", "OutboxCounts"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    pipeline_id: str
    seq: int
    status: int | None
    error: str
    failed_ms: int


class OutboxCounts:
    """What is queued and what was given up, overall and per sink; mixed into ``Store``."""

    _db: sqlite3.Connection

    def oldest_queued_ms(self, skip_sinks: tuple[str, ...] = ()) -> int | None:
        """When the oldest queued event was queued, leaving out ``skip_sinks``' rows."""
        where = f" WHERE sink NOT IN ({','.join('?' * len(skip_sinks))})" if skip_sinks else ""
        row = self._db.execute(f"SELECT MIN(created_ms) FROM outbox{where}", skip_sinks).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def outbox_by_state(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def outbox_deployments(self) -> int:
        """Queued events that are deployment events (the rest are build events); one queued by an
        earlier release (no update) is told by its body, as is every one of a database an earlier
        release wrote and no daemon has upgraded yet (``buildtail status`` reads it as it is)."""
        by_body = "json_extract(o.event, '$.event.deployment') IS NOT NULL"
        query = (
            "SELECT COUNT(*) FROM outbox o LEFT JOIN updates u ON u.id = o.update_id WHERE CASE"
            f" WHEN u.kind IS NOT NULL THEN u.kind = 'deployment' ELSE {by_body} END"
        )
        try:
            return int(self._db.execute(query).fetchone()[0])
        except sqlite3.OperationalError:  # no updates table: schema 3 or older
            return int(self._db.execute(f"SELECT COUNT(*) FROM outbox o WHERE {by_body}").fetchone()[0])

    def last_error(self) -> str | None:
        row = self._db.execute(
            "SELECT last_error FROM outbox WHERE last_error IS NOT NULL ORDER BY priority DESC, id LIMIT 1"
        ).fetchone()
        return None if row is None else str(row[0])

    def outbox_depth(self, priority: int | None = None) -> int:
        if priority is None:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        return int(
            self._db.execute("SELECT COUNT(*) FROM outbox WHERE priority = ?", (priority,)).fetchone()[0]
        )

    def dead_letter_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def dead_letters(self) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT pipeline_id, seq, status, error, failed_ms FROM dead_letters ORDER BY id"
        ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    # --- one sink's share (``buildtail status`` per sink) --------------------------------------------

    def sink_depth(self, sink: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE sink = ?", (sink,)).fetchone()[0])

    def sink_oldest_queued_ms(self, sink: str) -> int | None:
        row = self._db.execute("SELECT MIN(created_ms) FROM outbox WHERE sink = ?", (sink,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def sink_last_error(self, sink: str) -> str | None:
        row = self._db.execute(
            "SELECT last_error FROM outbox WHERE sink = ? AND last_error IS NOT NULL"
            " ORDER BY priority DESC, id LIMIT 1",
            (sink,),
        ).fetchone()
        return None if row is None else str(row[0])

    def sink_dead_letters(self, sink: str) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT pipeline_id, seq, status, error, failed_ms FROM dead_letters WHERE sink = ? ORDER BY id",
            (sink,),
        ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], r[3], r[4]) for r in rows]
