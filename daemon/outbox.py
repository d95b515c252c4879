"""The outbox half of the state database: each run's update kept once (``updates``), each sink's
rows for it (``outbox``), what a sink could not deliver (``dead_letters``), and what each sink
answered to each event sent (``answers``, written in the same transaction as the outbox change it
explains, and kept ``ANSWERS_KEEP_DAYS``).

A sink reads its own rows in its own order (``next_due``), acknowledges them, puts them off or
gives them up; an update goes when the last sink's row for it goes. ``Store`` provides the
connection and the transactions; this is its part about the queue, kept apart to stay readable.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from daemon.clock import now_ms
from daemon.outbox_counts import DeadLetter, OutboxCounts

__all__ = [
    "ANSWERS_KEEP_DAYS",
    "ANSWER_BODY_MAX",
    "Answered",
    "DeadLetter",
    "OutboxItem",
    "OutboxQueue",
    "sink_key",
]

ANSWERS_KEEP_DAYS = 35  # a month of answers and then some: Compass's 28-day window, compared
ANSWER_BODY_MAX = 1024  # characters of an answer's body or error kept (never a header, never a token)
_DAY_MS = 86_400_000
# Expired answers removed with each acknowledgement, per answer added: pruning keeps pace with what
# is written, one bounded DELETE in a transaction that is open anyway. It walks the table by id from
# where it stopped (``_PRUNE_SCAN`` rows per answer, by the primary key: no index of its own, a few
# row reads when nothing has expired), back to the start at its end: an old row refreshed in place
# (a repeated answer) is passed over, never a wall that keeps the expired rows behind it.
_PRUNE_PER_ANSWER = 2
_PRUNE_SCAN = 64


def sink_key(sink: str, fact: str) -> str:
    """The meta key of one sink's own fact (``paused``, ``budget``, ``last_delivery_ms``): each sink
    pauses, paces and delivers on its own, so none of these is shared between sinks."""
    return f"delivery:{sink}:{fact}"


# What a schema-3 database (0.2.0 and before, Compass the only destination) calls Compass's facts.
# Migration 4 renames them; they are read only from a database no newer process has upgraded yet
# (``buildtail status`` reads one as it is).
_SCHEMA_3_KEYS = {"paused": "delivery_paused", "budget": "budget", "last_delivery_ms": "last_delivery_ms"}


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One sink's row for one queued update."""

    id: int
    pipeline_id: str
    seq: int
    state: str
    terminal: bool
    priority: int
    update: dict[str, Any] | None  # the run's update (``events.update_to_json``) the sink renders
    created_ms: int
    attempts: int
    next_attempt_ms: int
    sink: str = "compass"
    body: dict[str, Any] | None = None  # set instead of update: a body an earlier release rendered
    update_id: int | None = None
    kind: str = "build"  # or "deployment"


@dataclass(frozen=True, slots=True)
class Answered:
    """What a sink answered to one event sent, and where the event went: a row of ``answers``.

    ``detail``: the answer's body (Compass's error) or the error met without an answer; never a
    request header, so never a token."""

    status: int | None
    detail: str = ""
    event_source_id: str | None = None
    component_id: str | None = None


class OutboxQueue(OutboxCounts):
    """The outbox's reads and writes; mixed into ``Store``, which owns the connection."""

    _db: sqlite3.Connection
    _prune_after: int = 0  # the id the pruning of answers goes on after (see ``_PRUNE_SCAN``)

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _get_meta(self, key: str) -> str | None:
        raise NotImplementedError

    def _set_meta(self, key: str, value: str) -> None:
        raise NotImplementedError

    def _forget_updates(self, pipeline_id: str) -> None:
        """The run's updates no sink has queued any longer (delivered, dead, or replaced)."""
        self._db.execute(
            "DELETE FROM updates WHERE pipeline_id = ?"
            " AND id NOT IN (SELECT update_id FROM outbox WHERE pipeline_id = ? AND update_id IS NOT NULL)",
            (pipeline_id, pipeline_id),
        )

    def _forget_update(self, item: OutboxItem) -> None:
        """``item``'s update, once no sink has it queued any longer (``item``'s row is gone)."""
        if item.update_id is not None:
            self._db.execute(
                "DELETE FROM updates WHERE id = ? AND NOT EXISTS (SELECT 1 FROM outbox WHERE update_id = ?)",
                (item.update_id, item.update_id),
            )

    # --- outbox -------------------------------------------------------------------------------------

    def next_due(
        self,
        at_ms: int | None = None,
        *,
        sink: str = "compass",
        exclude_ids: set[int] | None = None,
        exclude_pipelines: set[str] | None = None,
    ) -> tuple[OutboxItem | None, int | None]:
        """``sink``'s next event to send if it may be sent now, and otherwise when it falls due.

        Terminal events first, then IN_PROGRESS, then history queued by ``buildtail backfill``, each
        oldest first: when the queue grows faster than the rate budget, finished builds (what the
        success rate counts) are not held up, and a backfill never delays live builds. A run never
        has two events queued at once (a terminal event replaces its IN_PROGRESS), so this order
        cannot send a run's updates out of order. The head waits out its backoff and everything
        waits with it: a Compass that fails one request is not flooded with the rest. Events in flight,
        and every event of a run with one in flight, are excluded: a run's updates never overtake.
        """
        at_ms = now_ms() if at_ms is None else at_ms
        where, ids, pipelines = _not_in_flight(exclude_ids, exclude_pipelines)
        query = (
            f"SELECT {_ITEM_COLUMNS} FROM outbox o LEFT JOIN updates u ON u.id = o.update_id"
            f" WHERE o.sink = ?{where} ORDER BY o.priority DESC, o.id LIMIT 1"
        )
        row = self._db.execute(query, (sink, *ids, *pipelines)).fetchone()
        if row is None:
            return None, None
        item = _item(row)
        if item.next_attempt_ms > at_ms:
            return None, item.next_attempt_ms
        return item, None

    def due_items(
        self,
        limit: int,
        at_ms: int | None = None,
        *,
        sink: str,
        exclude_ids: set[int] | None = None,
        exclude_pipelines: set[str] | None = None,
    ) -> list[OutboxItem]:
        """Up to ``limit`` of ``sink``'s events that may be sent now, in ``next_due``'s order, one
        per run (a batch sink's next request), none of a run with one in flight."""
        at_ms = now_ms() if at_ms is None else at_ms
        where, ids, pipelines = _not_in_flight(exclude_ids, exclude_pipelines)
        query = (
            f"SELECT {_ITEM_COLUMNS} FROM outbox o LEFT JOIN updates u ON u.id = o.update_id"
            f" WHERE o.sink = ? AND o.next_attempt_ms <= ?{where} ORDER BY o.priority DESC, o.id LIMIT ?"
        )
        items: list[OutboxItem] = []
        seen: set[str] = set()
        for row in self._db.execute(query, (sink, at_ms, *ids, *pipelines, limit * 2)):
            item = _item(row)
            if item.pipeline_id not in seen:
                seen.add(item.pipeline_id)
                items.append(item)
        return items[:limit]

    def ack(self, item: OutboxItem) -> None:
        self.ack_many([item])

    def ack_many(self, items: list[OutboxItem], answers: list[Answered] | None = None) -> None:
        """Accepted events, acknowledged in one transaction with one statement of each kind: a
        sender settles its accepted answers together, and the delivery rate is bounded by what an
        acknowledgement costs (the row, its update once no sink holds it, what the sink accepted,
        its answer in the record of answers, expired answers, and the sink's last delivery,
        written once). ``answers[i]`` is what was answered to ``items[i]``."""
        if not items:
            return
        stamp_ms = now_ms()
        given = answers if answers is not None else [Answered(None)] * len(items)
        with self._tx() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i.id,) for i in items])
            db.executemany(
                "DELETE FROM updates WHERE id = ? AND NOT EXISTS (SELECT 1 FROM outbox WHERE update_id = ?)",
                [(i.update_id, i.update_id) for i in items if i.update_id is not None],
            )
            db.executemany(
                "INSERT INTO acks (sink, pipeline_id, state) VALUES (?, ?, ?)"
                " ON CONFLICT (sink, pipeline_id) DO UPDATE SET state = excluded.state",
                [(i.sink, i.pipeline_id, i.state) for i in items],
            )
            db.executemany(
                _INSERT_ANSWER,
                [_answer_row(i, a, "accepted", stamp_ms) for i, a in zip(items, given, strict=True)],
            )
            self._prune_answers(db, len(items), stamp_ms)
            stamp = str(stamp_ms)
            for sink in dict.fromkeys(i.sink for i in items):
                self._set_meta(sink_key(sink, "last_delivery_ms"), stamp)

    def _prune_answers(self, db: sqlite3.Connection, added: int, stamp_ms: int) -> None:
        """Up to ``_PRUNE_PER_ANSWER`` expired answers per answer ``added``, from the next stretch."""
        cutoff, most, scan = (
            stamp_ms - ANSWERS_KEEP_DAYS * _DAY_MS,
            _PRUNE_PER_ANSWER * added,
            _PRUNE_SCAN * added,
        )
        rows = db.execute(
            "SELECT id, at_ms FROM answers WHERE id > ? ORDER BY id LIMIT ?", (self._prune_after, scan)
        ).fetchall()
        expired = [int(row_id) for row_id, at_ms in rows if at_ms < cutoff][:most]
        db.executemany("DELETE FROM answers WHERE id = ?", [(row_id,) for row_id in expired])
        if len(expired) == most:
            self._prune_after = expired[-1]
        elif len(rows) == scan:
            self._prune_after = int(rows[-1][0])
        else:
            self._prune_after = 0  # the end of the table: from its start again

    def sink_has_run(self, sink: str, pipeline_id: str) -> bool:
        """Whether ``sink`` has the run queued, or accepted or gave up an update of it."""
        row = self._db.execute(
            "SELECT 1 FROM outbox WHERE sink = ? AND pipeline_id = ?"
            " UNION ALL SELECT 1 FROM acks WHERE sink = ? AND pipeline_id = ? LIMIT 1",
            (sink, pipeline_id, sink, pipeline_id),
        ).fetchone()
        return row is not None

    def acked_state(self, pipeline_id: str, sink: str = "compass") -> str | None:
        """The run's last state ``sink`` accepted; None while it accepted none."""
        row = self._db.execute(
            "SELECT state FROM acks WHERE sink = ? AND pipeline_id = ?", (sink, pipeline_id)
        ).fetchone()
        return None if row is None else str(row[0])

    def retry_later(
        self,
        item: OutboxItem,
        at_ms: int,
        error: str,
        *,
        paused: bool = False,
        answer: Answered | None = None,
    ) -> None:
        """``item`` is tried again at ``at_ms``; ``paused``: held by a pause of delivery, which does
        not count as an attempt. The answer is recorded (``_record_answer``)."""
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + ?, next_attempt_ms = ?, last_error = ? WHERE id = ?",
                (0 if paused else 1, at_ms, error[:500], item.id),
            )
            self._record_answer(item, answer or Answered(None, error), "paused" if paused else "retry")

    def _record_answer(self, item: OutboxItem, answer: Answered, outcome: str) -> None:
        """One answer that is not an acceptance. The same answer again to the same event (a paused
        delivery re-checks every 10 s, a struggling Compass is retried for hours) updates the last
        row, counting it in ``repeats``, instead of adding one per attempt. A new row prunes expired
        ones as an acknowledgement does: a sink that accepts nothing must not grow the record."""
        now = now_ms()
        body = answer.detail[:ANSWER_BODY_MAX] or None
        updated = self._db.execute(
            "UPDATE answers SET at_ms = ?, body = ?, repeats = repeats + 1 WHERE id = (SELECT MAX(id) FROM"
            " answers WHERE pipeline_id = ? AND sink = ? AND seq = ?) AND outcome = ? AND status IS ?",
            (now, body, item.pipeline_id, item.sink, item.seq, outcome, answer.status),
        ).rowcount
        if not updated:
            self._db.execute(_INSERT_ANSWER, _answer_row(item, answer, outcome, now))
            self._prune_answers(self._db, 1, now)

    def release_paused(self, sink: str = "compass") -> None:
        """Every event queued for ``sink`` may be tried again now (credentials or configuration changed)."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET next_attempt_ms = 0 WHERE sink = ?", (sink,))

    def sink_fact(self, sink: str, fact: str) -> Any:
        """One sink's fact (see ``sink_key``), decoded; None if it was never written."""
        raw = self._get_meta(sink_key(sink, fact))
        if raw is None and sink == "compass" and fact in _SCHEMA_3_KEYS:
            raw = self._get_meta(_SCHEMA_3_KEYS[fact])
        return None if raw is None else json.loads(raw)

    def set_sink_fact(self, sink: str, fact: str, value: Any) -> None:
        with self._tx():
            self._set_meta(sink_key(sink, fact), json.dumps(value))

    def forget_sink_fact(self, sink: str, fact: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (sink_key(sink, fact),))

    def set_delivery_state(
        self,
        paused_reason: str | None,
        *,
        sink: str = "compass",
        cause: str | None = None,
        answer: dict[str, Any] | None = None,
    ) -> None:
        """The pause of ``sink`` that ``buildtail status`` shows: its reason, its cause (credentials,
        event_source, not_compass) and, for not_compass, what answered in the destination's place."""
        state = {"reason": paused_reason, "since_ms": now_ms(), "cause": cause, "answer": answer}
        self.set_sink_fact(sink, "paused", state)

    def delivery_state(self, sink: str = "compass") -> tuple[str | None, int | None]:
        data = self.sink_fact(sink, "paused")
        if not isinstance(data, dict):
            return None, None
        return data.get("reason"), data.get("since_ms")

    def last_delivery_ms(self, sink: str = "compass") -> int | None:
        value = self.sink_fact(sink, "last_delivery_ms")
        return None if value is None else int(value)

    def dead_letter(
        self,
        item: OutboxItem,
        body: dict[str, Any],
        status: int | None,
        error: str,
        *,
        answer: Answered | None = None,
    ) -> None:
        """``body``: what the sink sent and was refused, kept as it was sent."""
        with self._tx() as db:
            self._record_answer(item, answer or Answered(status, error), "dead")
            db.execute("DELETE FROM outbox WHERE id = ?", (item.id,))
            self._forget_update(item)
            db.execute(
                "INSERT INTO dead_letters (pipeline_id, seq, event, status, error, created_ms, failed_ms,"
                " sink) VALUES (?,?,?,?,?,?,?,?)",
                (
                    item.pipeline_id,
                    item.seq,
                    json.dumps(body),
                    status,
                    error[:4000],
                    item.created_ms,
                    now_ms(),
                    item.sink,
                ),
            )


_ITEM_COLUMNS = (
    "o.id, o.pipeline_id, o.seq, o.state, o.terminal, o.priority, u.data, o.created_ms, o.attempts,"
    " o.next_attempt_ms, o.sink, o.event, o.update_id, u.kind"
)

_INSERT_ANSWER = (
    "INSERT INTO answers (sink, pipeline_id, seq, state, kind, terminal, event_source_id, component_id,"
    " status, body, outcome, at_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _not_in_flight(
    exclude_ids: set[int] | None, exclude_pipelines: set[str] | None
) -> tuple[str, list[int], list[str]]:
    """The clause that leaves out the events in flight and the runs with one in flight, and its values."""
    ids = sorted(exclude_ids or ())
    pipelines = sorted(exclude_pipelines or ())
    where = "".join(
        f" AND {clause}"
        for clause, values in (
            (f"o.id NOT IN ({','.join('?' * len(ids))})", ids),
            (f"o.pipeline_id NOT IN ({','.join('?' * len(pipelines))})", pipelines),
        )
        if values
    )
    return where, ids, pipelines


def _answer_row(item: OutboxItem, answer: Answered, outcome: str, at_ms: int) -> tuple[Any, ...]:
    return (
        item.sink,
        item.pipeline_id,
        item.seq,
        item.state,
        item.kind,
        int(item.terminal),
        answer.event_source_id,
        answer.component_id,
        answer.status,
        answer.detail[:ANSWER_BODY_MAX] if answer.detail else None,
        outcome,
        at_ms,
    )


def _kind(kind: str | None, body: dict[str, Any] | None) -> str:
    """An update's kind; for an event an earlier release rendered (no update), its body's."""
    if kind is not None:
        return kind
    event = body.get("event") if body else None
    return "deployment" if isinstance(event, dict) and "deployment" in event else "build"


def _item(row: Any) -> OutboxItem:
    body = None if row[11] is None else json.loads(row[11])
    return OutboxItem(
        id=row[0],
        pipeline_id=row[1],
        seq=row[2],
        state=row[3],
        terminal=bool(row[4]),
        priority=row[5],
        update=None if row[6] is None else json.loads(row[6]),
        created_ms=row[7],
        attempts=row[8],
        next_attempt_ms=row[9],
        sink=row[10],
        body=body,
        update_id=row[12],
        kind=_kind(row[13], body),
    )
