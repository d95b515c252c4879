"""What reached the fake Compass and when: the first arrival of each run's events, and waits on a
condition (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tools.fake_compass import FakeCompass


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")


def pipeline_id(request_body: Any) -> str | None:
    try:
        return str(request_body["event"]["build"]["buildProperties"]["pipeline"]["pipelineId"])
    except (KeyError, TypeError):
        return None


def event_state(request_body: Any) -> str | None:
    try:
        return str(request_body["event"]["build"]["buildProperties"]["state"])
    except (KeyError, TypeError):
        return None


class Arrivals:
    """Incremental view of a FakeCompass' accepted events: first arrival time per (pipelineId, kind)."""

    def __init__(self, compass: FakeCompass) -> None:
        self.compass = compass
        self.seen = 0
        self.in_progress: dict[str, float] = {}
        self.terminal: dict[str, float] = {}
        self.terminal_states: dict[str, str] = {}
        self.bad: list[str] = []

    def update(self) -> None:
        reqs = self.compass.requests
        for r in reqs[self.seen :]:
            if r.status != 202:
                self.bad.append(f"HTTP {r.status}: {r.raw[:200]}")
                continue
            pid, state = pipeline_id(r.body), event_state(r.body)
            if pid is None or state is None:
                continue
            if state == "IN_PROGRESS":
                self.in_progress.setdefault(pid, r.at)
            else:
                self.terminal.setdefault(pid, r.at)
                self.terminal_states.setdefault(pid, state)
        self.seen = len(reqs)


def wait_quiet(compass: FakeCompass, quiet_s: float, timeout: float = 120.0) -> int:
    """Waits until no request has arrived for ``quiet_s``; returns the number of requests so far."""
    deadline = time.monotonic() + timeout
    last_n, last_change = len(compass.requests), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n = len(compass.requests)
        if n != last_n:
            last_n, last_change = n, time.monotonic()
        elif time.monotonic() - last_change >= quiet_s:
            return n
    raise RuntimeError(f"requests still arriving after {timeout:g}s")
