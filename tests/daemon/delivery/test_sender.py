"""Sender: a real Store drained over real HTTP into FakeCompass (and the dry-run stdout transport)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.config import CompassSettings
from daemon.delivery.budget import TokenBucket
from daemon.delivery.sender import Sender
from daemon.events import RunFacts, next_update, update_to_json
from daemon.sinks import SendResult, StdoutTransport, Transport
from daemon.sinks.compass.sink import CompassSink
from daemon.sinks.compass.transport import CompassTransport
from daemon.store import Store
from tests.daemon.test_events import facts, finished, settings
from tests.inprocess import until
from tools.fake_compass import FakeCompass, Fault


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state")
    yield s
    s.close()


@pytest.fixture
async def transport(compass: FakeCompass) -> AsyncIterator[CompassTransport]:
    cfg = CompassSettings.model_validate(
        {
            "base_url": compass.base_url,
            "api_token": compass.token,
            "cloud_id": compass.cloud_id,
            "email": compass.email,
            "timeout": 2.0,
        }
    )
    t = CompassTransport(cfg)
    yield t
    await t.close()


def queue(store: Store, tmp_path: Path, f: RunFacts) -> int:
    """Runs the real event rules and records the update, as the service does."""
    cfg = settings(tmp_path)
    prior = store.latest_run(f.source, f.job, f.number)
    update = next_update(f, prior, cfg, taken=store.pipeline_id_taken)
    assert update is not None
    seq = store.record(update.run, update_to_json(update), prior=prior)
    assert seq is not None
    return seq


def sink(transport: Transport, cloud_id: str, bucket: TokenBucket) -> CompassSink:
    """The Compass sink over ``transport``, rendering with the settings ``queue`` records with."""
    return CompassSink(settings(Path(".")), transport=transport, bucket=bucket, cloud_id=cloud_id)


class Running:
    def __init__(self, store: Store, transport: Transport, cloud_id: str) -> None:
        # a disabled budget (limit 0): these tests are about delivery, not pacing
        self.sender = Sender(store, sink(transport, cloud_id, TokenBucket(0, 1)), max_in_flight=1)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sender:
        self.task = asyncio.create_task(self.sender.run())
        return self.sender

    async def __aexit__(self, *exc: object) -> None:
        self.sender.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


def usn(body: dict[str, Any]) -> int:
    return int(body["event"]["build"]["updateSequenceNumber"])


async def test_delivers_in_queue_order_and_empties_the_outbox(
    tmp_path: Path, store: Store, compass: FakeCompass, transport: CompassTransport
) -> None:
    a = queue(store, tmp_path, facts(job="a", number=1))
    b = queue(store, tmp_path, facts(job="b", number=1))
    c = queue(store, tmp_path, finished("FAILURE", job="c", number=4))
    seqs = [c, a, b]  # terminal events first, then IN_PROGRESS, each oldest first
    async with Running(store, transport, compass.cloud_id) as sender:
        await until("store.outbox_depth() == 0", lambda: store.outbox_depth() == 0, within=5.0)
        # one more while running: a wake-up delivers it without waiting
        seqs.append(queue(store, tmp_path, finished("SUCCESS", job="a", number=1)))
        sender.wake()
        await until(
            "store.outbox_depth() == 0 and len(compass.events) == 4",
            lambda: store.outbox_depth() == 0 and len(compass.events) == 4,
            within=5.0,
        )
        assert sender.delivered == 4
        assert sender.last_delivery_ms is not None
    assert compass.invalid == []
    assert [usn(e) for e in compass.events] == seqs
    assert [e["event"]["build"]["buildProperties"]["pipeline"]["pipelineId"] for e in compass.events] == [
        "c#4",
        "a#1",
        "b#1",
        "a#1",
    ]
    assert [e["event"]["build"]["buildProperties"]["state"] for e in compass.events] == [
        "FAILED",
        "IN_PROGRESS",
        "IN_PROGRESS",
        "SUCCESSFUL",
    ]
    assert all(e["cloudId"] == compass.cloud_id for e in compass.events)
    assert [s.stored for s in compass.sequence] == [True, True, True, True]
    row = store.latest_run("jenkins", "a", 1)
    assert row is not None and store.acked_state(row.pipeline_id) == "SUCCESSFUL"
    assert store.dead_letters() == []


async def test_retry_after_503_uses_the_same_sequence_number(
    tmp_path: Path, store: Store, compass: FakeCompass, transport: CompassTransport
) -> None:
    compass.script(Fault(status=503))
    seq = queue(store, tmp_path, finished("SUCCESS"))
    async with Running(store, transport, compass.cloud_id):
        await compass.wait_for_async(lambda ev: len(ev) == 1, timeout=5)
        await until("store.outbox_depth() == 0", lambda: store.outbox_depth() == 0, within=5.0)
    statuses = [r.status for r in compass.requests]
    assert statuses == [503, 202]
    assert [usn(r.body) for r in compass.requests] == [seq, seq]
    assert compass.requests[0].body == compass.requests[1].body


async def test_rejected_event_becomes_a_dead_letter_and_the_next_is_delivered(
    tmp_path: Path, store: Store, compass: FakeCompass, transport: CompassTransport
) -> None:
    compass.script(Fault(status=400, body={"errors": [{"type": "FORMAT_INVALID", "message": "bad event"}]}))
    bad_seq = queue(store, tmp_path, finished("FAILURE", job="bad", number=1))
    good_seq = queue(store, tmp_path, finished("SUCCESS", job="good", number=2))
    async with Running(store, transport, compass.cloud_id):
        await compass.wait_for_async(lambda ev: len(ev) == 1, timeout=5)
        await until("store.outbox_depth() == 0", lambda: store.outbox_depth() == 0, within=5.0)
    (dl,) = store.dead_letters()
    assert dl.pipeline_id == "bad#1"
    assert dl.seq == bad_seq
    assert dl.status == 400
    assert "FORMAT_INVALID" in dl.error and "bad event" in dl.error
    (delivered,) = compass.events
    assert usn(delivered) == good_seq
    assert delivered["event"]["build"]["buildProperties"]["pipeline"]["pipelineId"] == "good#2"


async def test_unauthorized_keeps_the_event_queued(
    tmp_path: Path, store: Store, compass: FakeCompass
) -> None:
    cfg = CompassSettings.model_validate(
        {
            "base_url": compass.base_url,
            "api_token": "wrong",
            "cloud_id": compass.cloud_id,
            "email": compass.email,
            "timeout": 2.0,
        }
    )
    t = CompassTransport(cfg)
    queue(store, tmp_path, facts())
    try:
        async with Running(store, t, compass.cloud_id):
            await until("len(compass.requests) == 1", lambda: len(compass.requests) == 1, within=5.0)
            await until("store.next_due()[0] is None", lambda: store.next_due()[0] is None, within=5.0)
    finally:
        await t.close()
    assert store.outbox_depth() == 1
    assert store.dead_letters() == []
    reason, _ = store.delivery_state()
    assert reason is not None and "credentials" in reason
    _, due = store.next_due()
    assert due is not None and due > time.time_ns() // 1_000_000 + 30_000
    held, _ = store.next_due(at_ms=due)
    assert held is not None and held.attempts == 0  # a pause is not a failed attempt


async def test_a_pause_recorded_by_an_earlier_process_is_not_this_ones(
    tmp_path: Path, store: Store, compass: FakeCompass, transport: CompassTransport
) -> None:
    store.set_delivery_state("Compass refused the credentials (HTTP 401)")  # the last process's
    async with Running(store, transport, compass.cloud_id):
        await until(
            "store.delivery_state()[0] is None", lambda: store.delivery_state()[0] is None, within=5.0
        )
    assert store.delivery_state()[0] is None


async def test_stdout_transport_writes_one_json_line_per_event(tmp_path: Path, store: Store) -> None:
    out = io.StringIO()
    first = queue(
        store, tmp_path, finished("FAILURE", job="x", number=1, causes=("Started by user J\u00fcrgen",))
    )
    second = queue(store, tmp_path, finished("SUCCESS", job="y", number=2))
    async with Running(store, StdoutTransport(out), "cloud-dry"):
        await until("store.outbox_depth() == 0", lambda: store.outbox_depth() == 0, within=5.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    bodies = [json.loads(line) for line in lines]
    assert [usn(b) for b in bodies] == [first, second]
    assert all(b["cloudId"] == "cloud-dry" for b in bodies)
    assert "J\u00fcrgen" in lines[0]  # not ASCII-escaped
    assert out.getvalue().endswith("\n")


async def test_429_without_retry_after_waits_out_the_minute(
    tmp_path: Path, store: Store, compass: FakeCompass, transport: CompassTransport
) -> None:
    compass.script(Fault(status=429))
    queue(store, tmp_path, finished("SUCCESS"))
    before_ms = time.time() * 1000
    async with Running(store, transport, compass.cloud_id):
        await until(
            "len(compass.requests) == 1 and store.next_due()[1] is not None",
            lambda: len(compass.requests) == 1 and store.next_due()[1] is not None,
            within=5.0,
        )
    item, due_ms = store.next_due()
    assert item is None and due_ms is not None
    assert due_ms - before_ms >= 59_000, "a 429 without Retry-After waits at least the rest of the minute"
    assert store.outbox_depth() == 1


async def test_budget_paces_requests(
    tmp_path: Path, store: Store, compass: FakeCompass, transport: CompassTransport
) -> None:
    for n in range(6):
        queue(store, tmp_path, finished("SUCCESS", job="j", number=n + 1))
    began = time.monotonic()  # the bucket is made after this: no token exists before it
    bucket = TokenBucket(limit_per_minute=3 + 120, burst=3)  # 2 tokens a second after a burst of 3
    sender = Sender(store, sink(transport, compass.cloud_id, bucket))
    task = asyncio.create_task(sender.run())
    try:
        await until("store.outbox_depth() == 0", lambda: store.outbox_depth() == 0)
    finally:
        sender.stop()
        await asyncio.wait_for(task, 5)
    times = [r.at - began for r in compass.requests]
    # the i-th request (0-based) after the burst of 3 needs a token that exists (i - 2) half-seconds
    # after the bucket was made, at the earliest; a request that arrives late on a loaded machine
    # only makes it later, so this bound holds however busy the machine is
    assert all(t >= 0.5 * (i - 2) - 0.05 for i, t in enumerate(times) if i >= 3), times
    # the burst was not paced: paced, the third request could not go before 1 s
    assert times[2] < 1.0, times
    assert len(times) == 6


async def test_concurrent_requests_never_overlap_for_one_run(
    tmp_path: Path, store: Store, compass: FakeCompass, transport: CompassTransport
) -> None:
    compass.script(*[Fault(delay=0.3)] * 4)  # slow answers: several requests are on the wire at once
    for n in range(4):
        queue(store, tmp_path, facts(job=f"j{n}", number=1))
    in_progress_a = queue(store, tmp_path, facts(job="a", number=1))
    sender = Sender(store, sink(transport, compass.cloud_id, TokenBucket(0, 1)), max_in_flight=4)
    task = asyncio.create_task(sender.run())
    try:
        await until("len(compass.requests) >= 1", lambda: len(compass.requests) >= 1, within=5.0)
        terminal_a = queue(store, tmp_path, finished("SUCCESS", job="a", number=1))
        sender.wake()
        await until("store.outbox_depth() == 0", lambda: store.outbox_depth() == 0)
    finally:
        sender.stop()
        await asyncio.wait_for(task, 5)
    started = [r.at for r in compass.requests]
    assert max(started[:4]) - min(started[:4]) < 0.25, "the first four went out together"
    a = [usn(r.body) for r in compass.requests if r.body["event"]["build"]["displayName"] == "a #1"]
    assert a[-1] == terminal_a and in_progress_a not in a[1:], (
        "a run's newer update never goes before an older one"
    )


async def test_an_unreadable_token_file_never_leaves_events_stuck_in_flight(
    tmp_path: Path, store: Store, compass: FakeCompass
) -> None:
    token = tmp_path / "token"
    cfg = CompassSettings.model_validate(
        {
            "base_url": compass.base_url,
            "api_token_file": str(token),
            "cloud_id": compass.cloud_id,
            "email": compass.email,
            "timeout": 2.0,
        },
        context={"lenient": True},
    )
    transport = CompassTransport(cfg)
    for n in range(6):
        queue(store, tmp_path, finished("SUCCESS", job=f"j{n}", number=1))
    sender = Sender(store, sink(transport, compass.cloud_id, TokenBucket(0, 1)), max_in_flight=4)
    task = asyncio.create_task(sender.run())
    try:
        # the token file is missing: the attempts fail (each must release its slot) and delivery pauses
        await until("sender.paused is not None", lambda: sender.paused is not None, within=5.0)
        assert compass.events == []
        token.write_text(compass.token + "\n")
        sender.resume()
        await until("store.outbox_depth() == 0", lambda: store.outbox_depth() == 0)
    finally:
        sender.stop()
        await asyncio.wait_for(task, 5)
        await transport.close()
    assert len(compass.events) == 6


class _Recording:
    """Accepts everything at once and remembers (pipelineId, state) in sending order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, body: dict[str, Any]) -> SendResult:
        props = body["event"]["build"]["buildProperties"]
        self.sent.append((props["pipeline"]["pipelineId"], props["state"]))
        return SendResult("accepted", 202, "")

    async def close(self) -> None:
        return None


class _OneTokenAtATime(TokenBucket):
    async def acquire(self) -> bool:
        await asyncio.sleep(0.005)  # a paced budget: the queue stays long while answers come back
        return True


async def test_a_terminal_event_is_not_held_behind_the_queue_by_its_unacknowledged_in_progress(
    tmp_path: Path, store: Store
) -> None:
    queue(store, tmp_path, facts(number=1))  # first in line: answered early, acknowledged later
    for n in range(2, 150):  # a backlog of other runs' IN_PROGRESS events
        queue(store, tmp_path, facts(job="other", number=n))
    transport = _Recording()
    sender = Sender(store, sink(transport, "cloud", _OneTokenAtATime(0, 1)), max_in_flight=4)
    task = asyncio.create_task(sender.run())
    try:
        await until("len(transport.sent) >= 3", lambda: len(transport.sent) >= 3, within=5.0)
        sent_before = len(transport.sent)
        queue(store, tmp_path, finished("SUCCESS", number=1))  # terminal events go first
        sender.wake()
        await until(
            'any(state != "IN_PROGRESS" for _, state in transport.sent)',
            lambda: any(state != "IN_PROGRESS" for _, state in transport.sent),
            within=5.0,
        )
    finally:
        sender.stop()
        await asyncio.wait_for(task, 5)
    position = next(i for i, (_, state) in enumerate(transport.sent) if state != "IN_PROGRESS")
    assert position - sent_before <= 4, f"{position - sent_before} other events went first"
    row = store.latest_run("jenkins", "team/app", 1)
    # acknowledged in the order answered
    assert row is not None and store.acked_state(row.pipeline_id) == "SUCCESSFUL"


async def test_a_runs_delivery_lines_carry_its_pipeline_id_as_a_field(
    tmp_path: Path,
    store: Store,
    compass: FakeCompass,
    transport: CompassTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``log_format: json`` prints a record's ``run``: the retry and the delivery of c#4 both name it."""
    compass.script(Fault(status=503))
    caplog.set_level("DEBUG", logger="buildtail")
    queue(store, tmp_path, finished("FAILURE", job="c", number=4))
    async with Running(store, transport, compass.cloud_id):
        await until("store.outbox_depth() == 0", lambda: store.outbox_depth() == 0, within=15.0)
    about_c4 = [r.getMessage() for r in caplog.records if getattr(r, "run", None) == "c#4"]
    assert any("retrying" in m for m in about_c4), about_c4
    assert any(m.startswith("delivered") for m in about_c4), about_c4
