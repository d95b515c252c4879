"""The report-once mechanism."""

from __future__ import annotations

import logging
import time

import pytest

from daemon.ops.logs import LogOnce, ReportOnce
from daemon.sources.files.tailed import Problems


def test_a_persistent_problem_is_news_once_until_cleared() -> None:
    once = ReportOnce()
    assert once.fresh(("a", "denied"))
    assert not once.fresh(("a", "denied"))
    assert once.fresh(("a", "missing"))  # another kind is news of its own
    assert once.active(("a", "denied"))
    once.clear(("a", "denied"))
    assert not once.active(("a", "denied"))
    assert once.fresh(("a", "denied"))


def test_clear_where_forgets_every_problem_of_a_path() -> None:
    problems = Problems()
    assert problems.report("a", "denied", "permission denied") is not None
    assert problems.report("a", "gz", "gzip corrupt") is not None
    assert problems.report("b", "denied", "permission denied") is not None
    assert problems.report("a", "denied", "permission denied") is None
    problems.forget("a")
    assert problems.report("a", "denied", "permission denied") is not None
    assert problems.report("a", "gz", "gzip corrupt") is not None
    assert problems.report("b", "denied", "permission denied") is None  # b still has its problem


def test_news_again_after_every_seconds() -> None:
    once = ReportOnce(every=0.05)
    assert once.fresh("k")
    assert not once.fresh("k")
    deadline = time.monotonic() + 5
    while not once.fresh("k"):
        assert time.monotonic() < deadline, "never news again"
        time.sleep(0.01)


def test_log_once_logs_only_the_news(caplog: pytest.LogCaptureFixture) -> None:
    say = LogOnce(logging.getLogger("test.once"))
    with caplog.at_level(logging.WARNING, logger="test.once"):
        assert say("k", logging.WARNING, "%s: broken", "x", extra={"source": "s"})
        assert not say("k", logging.WARNING, "%s: broken", "x")
    assert [r.getMessage() for r in caplog.records] == ["x: broken"]
    assert caplog.records[0].source == "s"
