"""The rate budget over minutes of a clock the tests move: exact across restarts (a crash loop never
goes over the limit, a restart with budget left does not wait), and the paced limit falling on 429s
and coming back. The send log is the real state database's."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from daemon.delivery.budget import TokenBucket
from daemon.store import Store

LIMIT = 100
BURST = 10


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def mono(self) -> float:
        return self.now

    def wall(self) -> int:
        return int(self.now * 1000) + 1_800_000_000_000

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _bucket(clock: Clock, store: Store | None = None, **kw: object) -> TokenBucket:
    sent = store.recent_sends(clock.wall() - 60_000) if store is not None else ()
    return TokenBucket(
        LIMIT,
        BURST,
        sent_ms=sent,
        on_take=store.record_send if store is not None else None,
        clock=clock.mono,
        wall_ms=clock.wall,
        **kw,  # type: ignore[arg-type]
    )


def _spend(bucket: TokenBucket, clock: Clock, seconds: float, step: float = 0.05) -> list[float]:
    """Takes every request the budget allows for ``seconds``; returns when each went."""
    out = []
    end = clock.now + seconds
    while clock.now < end:
        while bucket.wait_time() == 0:
            bucket.take()
            out.append(clock.now)
        clock.advance(step)
    return out


def _worst_minute(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + 60) for t in times), default=0)


def test_a_fresh_budget_allows_its_burst_at_once_then_paces(tmp_path: Path) -> None:
    clock = Clock()
    bucket = _bucket(clock)
    sent = _spend(bucket, clock, 120)
    assert sum(1 for t in sent if t == sent[0]) == BURST, "no needless wait when nothing was sent"
    assert _worst_minute(sent) <= LIMIT
    assert len(sent) >= 2 * LIMIT - BURST - 2


def test_a_crash_loop_never_goes_over_the_limit(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(tmp_path / "state")
    sent: list[float] = []
    for _ in range(150):  # a new process every 2 s for 5 minutes, each spending all it may
        bucket = _bucket(clock, store)
        sent += _spend(bucket, clock, 2.0)
    store.close()
    assert _worst_minute(sent) <= LIMIT
    assert len(sent) >= 4 * LIMIT, "and the budget is used, not wasted"


def test_without_the_send_log_a_crash_loop_would_go_over(tmp_path: Path) -> None:
    """The log is what makes it exact: each process starting from nothing bursts its bucket."""
    clock = Clock()
    sent: list[float] = []
    for _ in range(60):
        sent += _spend(_bucket(clock), clock, 1.0)
    assert _worst_minute(sent) > LIMIT


def test_a_restart_with_budget_left_does_not_wait(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(tmp_path / "state")
    first = _bucket(clock, store)
    for _ in range(5):
        first.take()
    clock.advance(1.0)
    again = _bucket(clock, store)  # the restart
    assert again.wait_time() == 0
    assert again.sent_last_minute() == 5
    assert again.tokens == pytest.approx(BURST - 5 + 1.0 * (LIMIT - BURST) / 60, abs=0.01)
    store.close()


def test_a_restart_after_a_spent_minute_waits_for_it_to_age(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(tmp_path / "state")
    for i in range(LIMIT):  # a minute's budget spent in the last 30 s (by processes that kept dying)
        store.record_send(clock.wall() - 30_000 + i * 10)
    again = _bucket(clock, store)
    assert again.sent_last_minute() == LIMIT
    assert again.wait_time() >= 30.0 - 0.01, "at least until the oldest of them is a minute old"
    store.close()


def test_the_paced_limit_falls_on_429_and_comes_back(tmp_path: Path) -> None:
    clock = Clock()
    bucket = _bucket(clock)
    for _ in range(40):  # what this host got accepted in the last minute: its share of the account
        bucket.take()
        bucket.accepted(more_waiting=True)
        clock.advance(1.0)
    bucket.rate_limited()
    assert bucket.paced == pytest.approx(40 * 0.85), "a little under its share, in one step"
    clock.advance(1.0)
    bucket.rate_limited()  # the other requests in flight when the minute filled up: the same signal
    assert bucket.paced == pytest.approx(40 * 0.85)
    assert bucket.tokens <= bucket.rate, "no burst when the pause is over"
    paced = {}
    for second in range(1, 60 * 10):  # ten busy minutes without a 429
        clock.advance(1.0)
        bucket.accepted(more_waiting=True)
        paced[second] = bucket.paced
    assert 34 < paced[30] < paced[60] < 40, "quickly at first"
    assert paced[118] == pytest.approx(40, abs=0.5), "the share it was cut from, two minutes later"
    assert paced[180] - paced[118] < 1.0, "flat around it: a stable sharing meets few 429s"
    assert paced[60 * 10 - 1] == LIMIT, "a host alone gets its whole budget back within minutes"
    values = [paced[k] for k in sorted(paced)]
    assert all(b >= a for a, b in itertools.pairwise(values)) and max(values) == LIMIT


def test_a_restarted_host_keeps_its_share(tmp_path: Path) -> None:
    """The last minute's requests of the earlier process count as this host's share."""
    clock = Clock()
    store = Store(tmp_path / "state")
    for i in range(30):
        store.record_send(clock.wall() - 40_000 + i * 1000)
    bucket = _bucket(clock, store)
    bucket.rate_limited()
    assert bucket.paced == pytest.approx(30 * 0.85)
    store.close()


def test_an_idle_host_does_not_raise_its_pace(tmp_path: Path) -> None:
    clock = Clock()
    bucket = _bucket(clock)
    bucket.rate_limited()
    low = bucket.paced
    for _ in range(600):
        bucket.accepted(more_waiting=False)
        clock.advance(1.0)
    assert bucket.paced == low


def test_pacing_off_counts_but_never_waits(tmp_path: Path) -> None:
    bucket = TokenBucket(0, 1)
    for _ in range(1000):
        assert bucket.wait_time() == 0
        bucket.take()
    assert bucket.spent == 1000 and bucket.sent_last_minute() == 1000
    bucket.rate_limited()
    assert bucket.paced == 0
