"""The report-once mechanism and the JSON log lines."""

from __future__ import annotations

import json
import logging
import time

import pytest

from daemon.ops.logs import LogOnce, ReportOnce, about, setup_logging
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
        assert say("k", logging.WARNING, "%s: broken", "x", extra=about(source="s"))
        assert not say("k", logging.WARNING, "%s: broken", "x")
    assert [r.getMessage() for r in caplog.records] == ["x: broken"]
    assert caplog.records[0].source == "s"


def test_json_lines_carry_source_path_and_run_as_keys(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("debug", "json")
        log = logging.getLogger("buildtail.test")
        log.warning("%s: %s: permission denied", "ci", "/x/a.log", extra=about(source="ci", path="/x/a.log"))
        log.debug("queued %s", "p-1", extra=about(source="ci", run="p-1"))
        log.info("ready")
    finally:
        root.handlers[:], root.level = handlers, level
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e.get("source"), e.get("path"), e.get("run")) for e in lines] == [
        ("ci", "/x/a.log", None),
        ("ci", None, "p-1"),
        (None, None, None),
    ]
    assert lines[0]["msg"] == "ci: /x/a.log: permission denied"  # the message is unchanged
    assert "source" not in lines[2] and "path" not in lines[2] and "run" not in lines[2]


def test_the_text_format_keeps_the_message_as_it_was(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("info", "text")
        logging.getLogger("buildtail.test").warning("ci: broken", extra=about(source="ci", path="/x"))
    finally:
        root.handlers[:], root.level = handlers, level
    err = capsys.readouterr().err
    assert err.rstrip().endswith("buildtail.test: ci: broken")
    assert "{" not in err
