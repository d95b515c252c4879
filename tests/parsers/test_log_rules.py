from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from parsers.log_rules import LineEvent, RuleError, RuleSet, check_template, parse_time, render_template

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
PLUS_0530 = timezone(timedelta(hours=5, minutes=30))

GITLAB_START = r"Checking for jobs\.\.\. received\s+job=(?P<id>\d+) repo_url=(?P<repo>\S+)"
GITLAB_FINISH = (
    r"Job (?P<result>succeeded|failed)(?:: exit code \d+)?\s+duration(?:_s)?=\S+\s+job=(?P<id>\d+)"
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- events from realistic log lines ----------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "finish", "chunk", "expected"),
    [
        pytest.param(
            r"^Build (?P<id>\d+) started",
            r"^Build (?P<id>\d+) finished: (?P<result>\w+)",
            b"Build 7 started\nnoise\nBuild 7 finished: SUCCESS\n",
            [("start", "7", None), ("finish", "7", "SUCCESS")],
            id="plain",
        ),
        pytest.param(
            GITLAB_START,
            GITLAB_FINISH,
            b"Checking for jobs... received        job=14796 repo_url=https://x/y.git runner=d87\n"
            b"WARNING: Job failed: exit code 1 duration=51m54.6s job=14796 project=318 runner=d87fcd19\n"
            b"Job succeeded        duration_s=3.2 job=14797 project=318\n",
            [("start", "14796", None), ("finish", "14796", "failed"), ("finish", "14797", "succeeded")],
            id="gitlab-runner",
        ),
        pytest.param(
            r"Build (?P<id>\S+) started",
            r"Build (?P<id>\S+) finished (?P<result>SUCCESSFULLY|FAILED)",
            b"[2026-01-01 10:00] Build 1.2.3 started\n[2026-01-01 10:03] Build 1.2.3 finished FAILED\n",
            [("start", "1.2.3", None), ("finish", "1.2.3", "FAILED")],
            id="cruisecontrol-rb",
        ),
        pytest.param(
            None,
            r"\[go\] Job completed (?P<id>[^ ]+) on \S+ \[(?P<result>\w+)\]",
            b"[go] Start to build pipe/1/stage/1/job\n"
            b"[go] Job completed pipe/1/stage/1/job on agent1 [Passed]\n",
            [("finish", "pipe/1/stage/1/job", "Passed")],
            id="no-start-rule",
        ),
        pytest.param(
            r"(?i)^run (?P<id>\d+) begin",
            r"(?i)^run (?P<id>\d+) end (?P<result>\w+)",
            b"RUN 3 BEGIN\nRun 3 End ok\n",
            [("start", "3", None), ("finish", "3", "ok")],
            id="global-flags-per-rule",
        ),
        pytest.param(
            r"^start (?P<id>\d+)$",
            r"^end (?P<id>\d+) (?P<result>\w+)$",
            b"start 1\nxstart 2\nstart 3 trailing\nend 1 ok\nend 2 ok  \n",
            [("start", "1", None), ("finish", "1", "ok")],
            id="anchors-per-line",
        ),
        pytest.param(
            r"(?P<id>\d+) started",
            r"(?P<id>\d+) (?P<result>done|failed)",
            b"5 started then 5 done\n6 done then 6 started\n",
            [("start", "5", None), ("finish", "6", "done")],
            id="earliest-match-on-a-line-wins",
        ),
        pytest.param(
            r"job (?P<id>\d+) (?P<verb>\w+)",
            r"job (?P<id>\d+) (?P<result>finished \w+)",
            b"job 9 finished ok\n",
            [("finish", "9", "finished ok")],
            id="same-position-finish-wins",
        ),
        pytest.param(
            r"^(?P<id>\d+) start(?: by (?P<who>\w+))?",
            r"^(?P<id>\d+) end(?: (?P<result>\w+))?",
            b"1 start\n1 end\n",
            [("start", "1", None), ("finish", "1", None)],
            id="optional-groups",
        ),
        pytest.param(
            r"build(?P<id>\d*) start",
            r"build(?P<id>\d*) end (?P<result>\w+)",
            b"build start\nbuild end ok\nbuild4 start\n",
            [("start", "4", None)],
            id="empty-id-ignored",
        ),
        pytest.param(
            r"^(?P<id>\d+) (?P<q>['\"]).*?(?P=q) start",
            r"^(?P<id>\d+) (?P<result>\w+)(?(result) end|x)",
            b"1 'a' start\n1 'a\" start\n1 ok end\n",
            [("start", "1", None), ("finish", "1", "ok")],
            id="named-backreference-and-conditional",
        ),
        pytest.param(
            r"(?x) ^ build \s (?P<id>\d+) \s started  # a comment (?P<nope>x) [",
            r"(?x) ^ build \s (?P<id>\d+) \s (?P<result>passed|failed)  # trailing comment",
            b"build 1 started\nbuild 1 passed\n",
            [("start", "1", None), ("finish", "1", "passed")],
            id="verbose-patterns",
        ),
        pytest.param(
            r"\((?P<id>\d+)\) \[(?P<x>[(?P<]+)\] start",
            r"\((?P<id>\d+)\) (?P<result>[]\w]+)",
            b"(1) [(?P<] start\n(1) ]ok]\n",
            [("start", "1", None), ("finish", "1", "]ok]")],
            id="escapes-and-classes-untouched",
        ),
    ],
)
def test_scan_events(
    start: str | None, finish: str, chunk: bytes, expected: list[tuple[str, str, str | None]]
) -> None:
    events = RuleSet(start=start, finish=finish).scan(chunk)
    assert [(e.kind, e.id, e.result) for e in events] == expected


def test_fields_and_end_offsets() -> None:
    rules = RuleSet(
        start=r"^(?P<name>[\w-]+) #(?P<id>\d+) started",
        finish=r"^(?P<name>[\w-]+) #(?P<id>\d+) (?P<result>[A-Z]+)$",
    )
    lines = [b"nightly #1 started\n", b"garbage\n", b"nightly #1 SUCCESS\n", b"\n", b"weekly #2 started\n"]
    chunk = b"".join(lines)
    events = rules.scan(chunk)
    offsets = [len(b"".join(lines[: i + 1])) for i in (0, 2, 4)]
    assert [e.end for e in events] == offsets
    assert events[0] == LineEvent("start", "1", None, None, {"name": "nightly", "id": "1"}, offsets[0])
    assert events[1].fields == {"name": "nightly", "id": "1", "result": "SUCCESS"}
    assert events[2].fields == {"name": "weekly", "id": "2"}
    # Resuming right after an event's end sees only what follows.
    assert [e.id for e in rules.scan(chunk[events[1].end :])] == ["2"]
    assert rules.group_names == {"name", "id", "result"}


def test_end_when_the_rule_consumes_the_newline_or_the_chunk_has_none() -> None:
    rules = RuleSet(start=None, finish=r"end (?P<id>\d+) (?P<result>\w+)\n")
    assert [e.end for e in rules.scan(b"end 1 ok\nend 2 ok\n")] == [9, 18]
    loose = RuleSet(start=None, finish=r"end (?P<id>\d+) (?P<result>\w+)")
    assert [e.end for e in loose.scan(b"x\nend 1 ok")] == [10]


def test_crlf_lines() -> None:
    rules = RuleSet(start=None, finish=r"^done (?P<id>\d+) (?P<result>\w+)\r?$")
    events = rules.scan(b"done 1 ok\r\ndone 2 bad\r\n")
    assert [(e.id, e.result, e.end) for e in events] == [("1", "ok", 11), ("2", "bad", 23)]


def test_a_rule_may_span_lines() -> None:
    rules = RuleSet(start=None, finish=r"^result of (?P<id>\d+):\n(?P<result>\w+)$")
    events = rules.scan(b"result of 4:\nPASS\nnext\n")
    assert [(e.id, e.result, e.end) for e in events] == [("4", "PASS", 18)]


# --- times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "time_format", "zone", "expected"),
    [
        ("2026-11-26T01:00:00Z", "iso", BERLIN, utc(2026, 11, 26, 1)),
        ("2026-11-26T01:00:00z", "iso", BERLIN, utc(2026, 11, 26, 1)),
        ("2026-11-26T01:00:00.250+02:00", "iso", UTC, datetime(2026, 11, 25, 23, 0, 0, 250000, tzinfo=UTC)),
        ("2026-11-26 01:00:00", "iso", BERLIN, utc(2026, 11, 26, 0)),
        ("2026-07-01T12:00:00", "iso", BERLIN, utc(2026, 7, 1, 10)),
        ("2026-07-01T12:00:00", "iso", NEW_YORK, utc(2026, 7, 1, 16)),
        ("2026-01-01T12:00:00", "iso", NEW_YORK, utc(2026, 1, 1, 17)),
        ("2026-01-01T12:00:00", "iso", PLUS_0530, utc(2026, 1, 1, 6, 30)),
        ("1764118800", "epoch", BERLIN, utc(2025, 11, 26, 1)),
        ("1764118800.5", "epoch", BERLIN, datetime(2025, 11, 26, 1, 0, 0, 500000, tzinfo=UTC)),
        ("1764118800123", "epoch_ms", BERLIN, datetime(2025, 11, 26, 1, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-26 01:00:00", "%Y-%m-%d %H:%M:%S", UTC, utc(2026, 11, 26, 1)),
        ("26/Nov/2026:01:00:00 +0100", "%d/%b/%Y:%H:%M:%S %z", UTC, utc(2026, 11, 26, 0)),
        ("20261126-010000", "%Y%m%d-%H%M%S", NEW_YORK, utc(2026, 11, 26, 6)),
        # Never raises: garbage, out of range, wrong format, no format.
        ("yesterday", "iso", UTC, None),
        ("2026-13-01T00:00:00", "iso", UTC, None),
        ("nan", "epoch", UTC, None),
        ("inf", "epoch", UTC, None),
        ("1e300", "epoch", UTC, None),
        ("-99999999999999", "epoch_ms", UTC, None),
        ("12:00", "%Y-%m-%d %H:%M:%S", UTC, None),
        ("", "iso", UTC, None),
        ("1" * 500, "epoch", UTC, None),
        ("2026-11-26T01:00:00Z", None, UTC, None),
    ],
)
def test_parse_time(text: str, time_format: str | None, zone: timezone, expected: datetime | None) -> None:
    parsed = parse_time(text, time_format, zone)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


def test_event_times_use_the_rule_sets_zone() -> None:
    rules = RuleSet(
        start=r"^\[(?P<time>[^\]]+)\] start (?P<id>\d+)",
        finish=r"^\[(?P<time>[^\]]+)\] end (?P<id>\d+) (?P<result>\w+)",
        time_format="%Y-%m-%d %H:%M:%S",
        tz=BERLIN,
    )
    events = rules.scan(b"[2026-07-01 12:00:00] start 1\n[2026-07-01 12:05:00] end 1 ok\n[bad] end 2 ok\n")
    assert [e.time for e in events] == [utc(2026, 7, 1, 10), utc(2026, 7, 1, 10, 5), None]


def test_default_zone_is_local() -> None:
    rules = RuleSet(start=None, finish=r"(?P<time>\S+ \S+) (?P<id>\d+) (?P<result>\w+)", time_format="iso")
    (event,) = rules.scan(b"2026-01-01 12:00:00 1 ok\n")
    assert event.time == datetime(2026, 1, 1, 12).astimezone(UTC)


# --- rejected rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": r"started (?P<run>\d+)", "finish": r"(?P<id>\d+) (?P<result>\w+)"}, "start rule.*id"),
        ({"start": None, "finish": r"(?P<run>\d+) (?P<result>\w+)"}, "finish rule.*id"),
        ({"start": None, "finish": r"(?P<id>\d+) done"}, "finish rule.*result"),
        ({"start": None, "finish": r"(?P<id>\d+ (?P<result>\w+)"}, "finish rule: invalid regex"),
        ({"start": r"(?P<id>[a-", "finish": r"(?P<id>\d+) (?P<result>\w+)"}, "start rule: invalid regex"),
        ({"start": None, "finish": r"(?P<id>\d) (?P<id>\w+)"}, "finish rule: invalid regex"),
        ({"start": None, "finish": r"(?P<id>\d+) (?P<result>\w+) \u00e9"}, "finish rule: invalid regex"),
        ({"start": None, "finish": r"(?P<id>\d+) (?i)(?P<result>\w+)"}, "finish rule: invalid regex"),
        ({"start": None, "finish": r"(?P<id>\d*)(?P<result>\w*)"}, "matches an empty line"),
        ({"start": r"^(?P<id>x?)$", "finish": r"(?P<id>\d+) (?P<result>\w+)"}, "start rule.*empty line"),
        ({"start": None, "finish": ""}, "finish rule: the pattern is empty"),
        ({"start": None, "finish": r"(\d+) (?P<id>\d+) (?P<result>\w+) \1"}, "backreference"),
        ({"start": None, "finish": r"(x)?(?P<id>\d+) (?P<result>\w+)(?(1)y|z)"}, "conditional"),
        ({"start": None, "finish": r"[[a] (?P<id>\d+) (?P<result>\w+)"}, "finish rule: invalid regex"),
        (
            {"start": None, "finish": r"(?P<time>\S+) (?P<id>\d+) (?P<result>\w+)"},
            "finish rule: a \\(\\?P<time>",
        ),
        (
            {"start": None, "finish": r"(?P<id>\d+) (?P<result>\w+)", "time_format": "rfc"},
            "time_format 'rfc'",
        ),
        ({"start": None, "finish": r"(?P<id>\d+) (?P<result>\w+)", "time_format": "%Q %Y"}, "time_format"),
    ],
)
def test_unusable_rules_are_refused(kwargs: dict[str, str | None], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        RuleSet(**kwargs)  # type: ignore[arg-type]


def test_octal_escapes_are_not_backreferences() -> None:
    rules = RuleSet(start=None, finish=r"\101(?P<id>\d+) (?P<result>\w+)")
    assert [e.id for e in rules.scan(b"A1 ok\n")] == ["1"]


# --- hostile content ------------------------------------------------------------------------------


def test_invalid_utf8_and_binary_garbage_never_raise() -> None:
    rules = RuleSet(
        start=r"start (?P<id>\S+)(?: at (?P<time>\S+))?",
        finish=r"end (?P<id>\S+) (?P<result>\S+)(?: at (?P<time>\S+))?",
        time_format="iso",
    )
    events = rules.scan(b"start \xff\xfe at \x80\x80\nend \xc3\x28 \xe2\x82 at 2026-01-01T00:00:00\xff\n")
    assert [(e.id, e.result, e.time) for e in events] == [
        ("\ufffd\ufffd", None, None),
        ("\ufffd(", "\ufffd", None),
    ]
    noise = random.Random(1234)
    for _ in range(200):
        blob = bytes(noise.randrange(256) for _ in range(noise.randrange(1, 400))) + b"\n"
        for event in rules.scan(blob):
            assert 0 < event.end <= len(blob)
    assert rules.scan(b"") == []
    assert rules.scan(b"\x00" * 10_000 + b"\n") == []


# --- size and speed -------------------------------------------------------------------------------


def test_only_matching_lines_in_a_large_chunk() -> None:
    rules = RuleSet(
        start=r"^Build (?P<id>\d+) started$", finish=r"^Build (?P<id>\d+) finished: (?P<result>\w+)$"
    )
    lines = [b"[INFO] compiling module %d of 100000\n" % i for i in range(100_000)]
    lines[10] = b"Build 77 started\n"
    lines[50_000] = b"Build 77 finished: SUCCESS\n"
    lines[99_999] = b"Build 78 started\n"
    chunk = b"".join(lines)
    events = rules.scan(chunk)
    assert [(e.kind, e.id) for e in events] == [("start", "77"), ("finish", "77"), ("start", "78")]
    assert events[-1].end == len(chunk)
    assert events[0].end == len(b"".join(lines[:11]))


def test_scan_speed_on_50_mb_of_non_matching_lines() -> None:
    rules = RuleSet(
        start=r"^Build (?P<id>\d+) started",
        finish=r"Job (?P<id>\d+) (?P<result>succeeded|failed)",
        time_format="iso",
    )
    line = b"2026-11-26T01:00:00Z INFO worker-3 compiled src/main/java/Foo.java in 12 ms (cache miss)\n"
    chunk = line * (50_000_000 // len(line))

    began = time.perf_counter()
    baseline = sum(1 for _ in rules.pattern.finditer(chunk))
    finditer_s = time.perf_counter() - began

    began = time.perf_counter()
    events = rules.scan(chunk)
    scan_s = time.perf_counter() - began

    assert baseline == 0
    assert events == []
    megabytes = len(chunk) / 1e6
    print(
        f"scan: {megabytes / scan_s:.0f} MB/s ({scan_s:.2f} s),"
        f" bare finditer: {megabytes / finditer_s:.0f} MB/s, ratio {scan_s / finditer_s:.2f}"
    )
    assert scan_s < 5.0


# --- pipeline templates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "fields", "expected"),
    [
        ("nightly-{name}#{id}", {"name": "db", "id": "7"}, "nightly-db#7"),
        ("{name}", {}, ""),
        ("static", {"id": "1"}, "static"),
        ("{{literal}}-{id}", {"id": "1"}, "{literal}-1"),
        ("{id}{id}", {"id": "ab"}, "abab"),
    ],
)
def test_render_template(template: str, fields: dict[str, str], expected: str) -> None:
    assert render_template(template, fields) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("nightly-{nmae}", "unknown placeholder \\{nmae\\}"),
        ("{}", "plain group name"),
        ("{0}", "plain group name"),
        ("{id.real}", "plain group name"),
        ("{id[0]}", "plain group name"),
        ("{id:>10}", "no format spec"),
        ("{id!r}", "no format spec"),
        ("{id", "template"),
        ("id}", "template"),
    ],
)
def test_check_template_refuses(template: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        check_template(template, {"id", "name", "result"})


def test_check_template_accepts_known_groups() -> None:
    rules = RuleSet(start=r"(?P<name>\w+) (?P<id>\d+) go", finish=r"(?P<id>\d+) (?P<result>\w+)")
    check_template("{name}-{id}-{result}", rules.group_names)
    with pytest.raises(RuleError):
        render_template("{oops", {})


def test_pattern_is_one_compiled_multiline_regex() -> None:
    rules = RuleSet(start=r"s (?P<id>\d+)", finish=r"f (?P<id>\d+) (?P<result>\w+)")
    assert isinstance(rules.pattern, re.Pattern)
    assert rules.pattern.flags & re.MULTILINE
    assert set(rules.pattern.groupindex) >= {"f__id", "f__result", "s__id"}
