"""Sinks as peers: a second destination is a class and a line in the registry, nothing else.

The second sink here is a real one in every way the delivery sees (its own body, transport, budget
and outbox rows); it prints its bodies, as the dry run does. The recorder queues each update once
for both, each delivers its own rows, and the update goes when the last of them is delivered.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.delivery.delivery import Delivery
from daemon.events import update_from_json
from daemon.history import HistoryPolicy
from daemon.recorder import Recorder
from daemon.sinks import SendResult, Sent, StdoutTransport, Transport, registry
from daemon.store import OutboxItem, Store
from tests.inprocess import until

from .test_events import facts, finished, settings


class _Board:
    """A second destination: one line per run and state."""

    name = "board"
    title = "the board"
    for_real = True
    batch_size = 1
    batch_window = 0.0

    def __init__(
        self, settings: Settings, store: Store, *, dry_run: bool, transport: Transport | None
    ) -> None:
        self.out = io.StringIO()
        self.transport: Transport = StdoutTransport(self.out)
        self.bucket = TokenBucket(0, 1)

    def render(self, item: OutboxItem) -> dict[str, Any]:
        assert item.update is not None
        run = update_from_json(item.update).run
        return {"run": run.pipeline_id, "state": run.state, "seq": item.seq}

    def describe(self, body: dict[str, Any], item: OutboxItem) -> str:
        return str(body["run"])

    def route(self, body: dict[str, Any]) -> tuple[str | None, str | None]:
        return None, None

    def pause_reason(self, result: SendResult, body: dict[str, Any]) -> str:
        return f"the board refused {body['run']}"

    async def create_missing(self, body: dict[str, Any]) -> bool:
        return False

    async def send_many(self, items: list[OutboxItem]) -> list[Sent]:
        raise NotImplementedError("one at a time")

    async def reconfigure(self, new: Settings, store: Store, *, dry_run: bool) -> None:
        return None


async def test_a_second_sink_gets_every_update_from_its_own_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry.SINKS, "board", registry.SinkEntry(lambda _s: True, lambda *_: True, _Board))
    cfg = settings(tmp_path)
    store = Store(tmp_path / "state")
    compass_out = io.StringIO()
    delivery = Delivery(cfg, store, dry_run=True, transport=StdoutTransport(compass_out))
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    try:
        seqs = [
            recorder.record(facts(job="a", number=1)),
            recorder.record(finished("FAILURE", job="b", number=2)),
        ]
        assert all(s is not None for s in seqs)
        assert store.outbox_depth() == 4
        assert store._db.execute("SELECT COUNT(*) FROM updates").fetchone()[0] == 2
        delivery.start()
        await until("store.outbox_depth() == 0", lambda: store.outbox_depth() == 0)
        await delivery.stop(5.0)
        board = delivery.sinks[1]
        assert isinstance(board, _Board)
        lines = [json.loads(line) for line in board.out.getvalue().splitlines()]
        assert lines == [  # terminal first, each sink in its own order
            {"run": "b#2", "state": "FAILED", "seq": seqs[1]},
            {"run": "a#1", "state": "IN_PROGRESS", "seq": seqs[0]},
        ]
        sent = [json.loads(line) for line in compass_out.getvalue().splitlines()]
        assert [next(iter(b["event"].values()))["updateSequenceNumber"] for b in sent] == [seqs[1], seqs[0]]
        assert store._db.execute("SELECT COUNT(*) FROM updates").fetchone()[0] == 0
    finally:
        await delivery.close()
        store.close()


class _Refusing:
    """The board's server refusing the credentials: every request answered 401."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, body: dict[str, Any]) -> SendResult:
        self.sent += 1
        return SendResult("unauthorized", 401, "token refused")

    async def close(self) -> None:
        return None


async def test_a_second_sinks_pause_and_deliveries_are_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The board refusing its credentials pauses the board only: Compass keeps delivering, and its
    pause, last delivery, budget figures and accepted states are kept apart from the board's."""
    monkeypatch.setitem(registry.SINKS, "board", registry.SinkEntry(lambda _s: True, lambda *_: True, _Board))
    cfg = settings(tmp_path)
    store = Store(tmp_path / "state")
    delivery = Delivery(cfg, store, dry_run=True, transport=StdoutTransport(io.StringIO()))
    board = delivery.sinks[1]
    assert isinstance(board, _Board)
    refusing = _Refusing()
    board.transport = refusing
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    try:
        assert recorder.record(finished("FAILURE", job="b", number=2)) is not None
        delivery.start()
        await until(
            'store.delivery_state("board")[0] is not None',
            lambda: store.delivery_state("board")[0] is not None,
        )
        await until(
            'store.last_delivery_ms("compass") is not None',
            lambda: store.last_delivery_ms("compass") is not None,
        )
        await delivery.stop(5.0)
        assert store.delivery_state("board")[0] == "the board refused b#2"
        assert delivery.senders[1].paused == "the board refused b#2"
        assert store.delivery_state("compass") == (None, None) and delivery.paused is None
        assert store.last_delivery_ms("board") is None
        assert store.acked_state("b#2") == "FAILED" and store.acked_state("b#2", sink="board") is None
        assert store.sink_fact("compass", "budget") is not None
        assert store.sink_fact("board", "budget") is not None
        rows = store._db.execute("SELECT sink FROM outbox").fetchall()
        assert rows == [("board",)], "the board's row waits; Compass's went"
        assert refusing.sent == 1
    finally:
        await delivery.close()
        store.close()
