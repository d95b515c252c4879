"""A captive portal between buildtail and Compass: nothing is delivered, nothing is dropped.

A real aiohttp server on 127.0.0.1 plays the portal: it answers the events POST with a redirect to
its login page and with its HTML page (200 OK), as a hotel's or a company's portal does, until it
"goes away" and answers as Compass does (202, no body). The real Sender, Store and CompassTransport
deliver through it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from daemon.config import CompassSettings
from daemon.delivery.budget import TokenBucket
from daemon.delivery.sender import NOT_COMPASS_PAUSE_AFTER, Sender
from daemon.sinks.compass.transport import CompassTransport
from daemon.store import Store
from tests.daemon.delivery.test_sender import queue, sink
from tests.daemon.test_events import facts, finished
from tests.inprocess import until

PAGE = (
    "<!doctype html><html><head><title>Guest  WiFi\n  - please sign in</title></head>"
    "<body><form action='/login'>...</form></body></html>"
)


@dataclass
class Portal:
    """Answers with ``script`` in order, then with its page until ``gone``; then like Compass."""

    store: Store
    script: list[str] = field(default_factory=lambda: ["redirect", "page", "page"])
    gone: bool = False
    answered: list[tuple[str, int]] = field(default_factory=list)  # (answer, outbox depth on arrival)
    delivered: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        kind = "compass" if self.gone else (self.script.pop(0) if self.script else "page")
        self.answered.append((kind, self.store.outbox_depth()))
        if kind == "redirect":
            raise web.HTTPFound("https://portal.example.net/login?continue=%2Fgateway")
        if kind == "page":
            return web.Response(text=PAGE, content_type="text/html")
        self.delivered.append(json.loads(body))
        return web.Response(status=202)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state")
    yield s
    s.close()


@pytest.mark.slow  # waits out the pause's real back-off: about 4 s
async def test_a_portal_keeps_every_event_queued_pauses_once_and_delivery_resumes_by_itself(
    tmp_path: Path, store: Store, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="buildtail.sender")
    queued = [
        queue(store, tmp_path, finished("SUCCESS", job="app", number=1)),
        queue(store, tmp_path, finished("FAILURE", job="lib", number=7)),
        queue(store, tmp_path, facts(job="web", number=3)),
    ]
    portal = Portal(store)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", portal.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    settings = CompassSettings.model_validate(
        {
            "base_url": f"http://127.0.0.1:{unused_tcp_port}/gateway/api",
            "api_token": "tok",
            "cloud_id": "cloud-1",
            "email": "bot@example.com",
            "timeout": 2.0,
        }
    )
    transport = CompassTransport(settings)
    sender = Sender(
        store,
        sink(transport, "cloud-1", TokenBucket(0, 1)),
        max_in_flight=1,
        not_compass_recheck_s=0.5,
    )
    task = asyncio.create_task(sender.run())
    try:
        await until("sender.paused is not None", lambda: sender.paused is not None)
        # three answers in a row that were not Compass's: paused, with what answered and why
        assert [kind for kind, _ in portal.answered] == ["redirect", "page", "page"]
        reason = sender.paused
        assert reason is not None
        assert "HTTP 200 text/html, page titled 'Guest WiFi - please sign in'" in reason
        assert "a proxy or captive portal may be in the way" in reason
        assert sender.pause_cause == "not_compass"
        recorded = store.sink_fact("compass", "paused")
        assert recorded["cause"] == "not_compass"
        assert recorded["answer"] == {
            "status": 200,
            "content_type": "text/html",
            "title": "Guest WiFi - please sign in",
            "location_host": None,
        }
        # paused, it re-checks with one request at a time, and keeps everything
        await until(
            "len(portal.answered) >= NOT_COMPASS_PAUSE_AFTER + 2",
            lambda: len(portal.answered) >= NOT_COMPASS_PAUSE_AFTER + 2,
            within=5.0,
        )
        assert store.outbox_depth() == 3 and store.dead_letters() == []
        assert sender.delivered == 0 and store.last_delivery_ms("compass") is None

        portal.gone = True  # signed in: from now on the answers are Compass's
        await until("store.outbox_depth() == 0", lambda: store.outbox_depth() == 0, within=5.0)
        await until(
            "store.delivery_state()[0] is None", lambda: store.delivery_state()[0] is None, within=5.0
        )
    finally:
        sender.stop()
        await asyncio.wait_for(task, 5)
        await transport.close()
        await runner.cleanup()
    assert sender.paused is None and sender.pause_cause is None
    # nothing was removed until Compass's 202: every answer before it found all three events queued
    assert all(depth == 3 for kind, depth in portal.answered if kind != "compass")
    delivered = [b["event"]["build"]["updateSequenceNumber"] for b in portal.delivered]
    assert sorted(delivered) == sorted(queued) and len(delivered) == 3
    pauses = [r.getMessage() for r in caplog.records if "delivery paused" in r.getMessage()]
    assert len(pauses) == 1, pauses  # one line, however many re-checks
    assert "3 event(s) kept" in pauses[0] and "Guest WiFi - please sign in" in pauses[0]
    assert any("delivery resumes: Compass accepted" in r.getMessage() for r in caplog.records)
