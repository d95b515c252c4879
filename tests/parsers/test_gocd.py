"""GoCD consoles as the agents of each era write them (lines shaped after GoCD's BuildWork,
DefaultGoPublisher, Builders and ConsoleOutputTransmitter), and as the server leaves them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from parsers.gocd import (
    MAX_LINE,
    GoCDConsole,
    GoCDJob,
    GoCDPath,
    console_zone,
    parse_console_path,
    parse_gocd_console,
)
from parsers.records import ParseError

WHERE = "build_capi_native/13/defaultStage/1/defaultJob on 0f29bb7cc96f [/var/lib/go-agent]"
WRITTEN = datetime(2016, 3, 21, 17, 45, 30, tzinfo=UTC)


def console_16(*body: str, started: str = "2016-03-21 17:45:07 UTC", first: str = "17:45:07.452") -> bytes:
    """An agent up to 17.3: no tags, a status line before every task (with a blank line after it)."""
    head = [f"{first} [go] Job Started: {started}", "", f"{first} [go] Start to prepare {WHERE}"]
    return ("\n".join([*head, *body]) + "\n").encode()


def task_16(at: str, status: str = "passed") -> list[str]:
    return [
        f"{at} [go] Current job status: {status}.",
        "",
        f'{at} [go] Start to execute task: <exec command="sh" >',
        "<arg>-c</arg>",
        "</exec>.",
        f"{at} + make",
    ]


def end_16(at: str, status: str = "passed") -> list[str]:
    return [
        f"{at} [go] Current job status: {status}.",
        "",
        f"{at} [go] Start to create properties {WHERE}",
        f"{at} [go] Start to upload {WHERE}",
        f"{at} [go] Job completed {WHERE}",
    ]


def console_new(*body: str, started: str = "2024-05-01 10:00:00 CEST") -> bytes:
    """An agent since 17.4: tagged lines, task statuses, one job status at the end."""
    head = [
        f"##|10:00:00.000 [go] Job Started: {started}",
        "pr|10:00:00.001 [go] Start to prepare p/1/s/1/j on agent [/go]",
        "pr|10:00:00.100 [go] Start to update materials.",
        "##|10:00:01.000 [go] Start to build p/1/s/1/j on agent [/go]",
        "!!|10:00:01.001 [go] Task: make",
        "&1|10:00:01.050 compiling",
    ]
    return ("\n".join([*head, *body]) + "\n").encode()


def iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


CASES: list[tuple[str, bytes, tzinfo, str, str | None, str | None, bool]] = [
    (
        "16.x passed",
        console_16(*task_16("17:45:08.573"), *end_16("17:45:26.461")),
        UTC,
        "passed",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-21T17:45:26.461+00:00",
        True,
    ),
    (
        "16.x failed: the status before every task says passed, the last one failed",
        console_16(*task_16("17:45:08.573"), *task_16("17:45:09.000"), *end_16("17:45:10.100", "failed")),
        UTC,
        "failed",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-21T17:45:10.100+00:00",
        True,
    ),
    (
        "16.x cancelled while a task ran",
        console_16(
            *task_16("17:45:08.573"),
            "17:50:00.000 [go] Start to execute cancel task: <kill all child process>",
            "17:50:00.100 [go] Task is cancelled",
            f"17:50:00.200 [go] Job completed {WHERE}",
        ),
        UTC,
        "cancelled",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-21T17:50:00.200+00:00",
        True,
    ),
    (
        "16.x artifacts failed to upload after a passed status",
        console_16(
            *end_16("17:45:26.000")[:-1],
            "17:45:26.100 [go] Uploading finished. Failed to upload [target/app.jar]",
            f"17:45:26.200 [go] Job completed {WHERE}",
        ),
        UTC,
        "failed",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-21T17:45:26.200+00:00",
        True,
    ),
    (
        "16.x material update failed: no status line at all",
        console_16(
            "17:45:08.000 [go] Start to update materials.",
            "17:45:09.000 STDERR: fatal: could not read from remote repository",
            f"17:45:09.100 [go] Job completed {WHERE}",
        ),
        UTC,
        "failed",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-21T17:45:09.100+00:00",
        True,
    ),
    (
        "since 17.4: passed, agent in CEST",
        console_new(
            "?0|10:00:01.060 [go] Task status: passed (59 ms)",
            "j0|10:00:01.070 [go] Current job status: passed",
            "ar|10:00:01.080 [go] Start to upload p/1/s/1/j on agent [/go]",
            "ex|10:00:01.200 [go] Job completed p/1/s/1/j on agent [/go]",
        ),
        UTC,
        "passed",
        "2024-05-01T08:00:00+00:00",
        "2024-05-01T08:00:01.200+00:00",
        True,
    ),
    (
        "since 17.4: failed",
        console_new(
            "?1|10:00:01.060 [go] Task status: failed (59 ms) (exit code: 2)",
            "j1|10:00:01.070 [go] Current job status: failed",
            "ex|10:00:01.200 [go] Job completed p/1/s/1/j on agent [/go]",
        ),
        UTC,
        "failed",
        "2024-05-01T08:00:00+00:00",
        "2024-05-01T08:00:01.200+00:00",
        True,
    ),
    (
        "since 17.4: cancelled (no job status is printed)",
        console_new(
            "!x|10:05:00.000 [go] On Cancel Task: <kill all child process>",
            "x0|10:05:00.100 [go] On Cancel Task completed",
            "^C|10:05:00.200 [go] Task status: cancelled (299000 ms)",
            "ex|10:05:00.300 [go] Job completed p/1/s/1/j on agent [/go]",
        ),
        UTC,
        "cancelled",
        "2024-05-01T08:00:00+00:00",
        "2024-05-01T08:05:00.300+00:00",
        True,
    ),
    (
        "since 17.4: artifacts failed to publish after a passed status",
        console_new(
            "j0|10:00:01.070 [go] Current job status: passed",
            "ar|10:00:01.080 [go] Start to upload p/1/s/1/j on agent [/go]",
            "ae|10:00:01.500 [go] Failed to upload /go/pipelines/p/target/app.jar",
            "ae|10:00:02.000 [go] [go] Uploading finished. Failed to upload [target/app.jar].",
            "ex|10:00:02.100 [go] Job completed p/1/s/1/j on agent [/go]",
        ),
        UTC,
        "failed",
        "2024-05-01T08:00:00+00:00",
        "2024-05-01T08:00:02.100+00:00",
        True,
    ),
    (
        "since 17.4: a publishing warning does not fail the job",
        console_new(
            "j0|10:00:01.070 [go] Current job status: passed",
            "ar|10:00:01.080 [go] Start to upload p/1/s/1/j on agent [/go]",
            "ae|10:00:01.090 [go] The directory target/reports specified as a test artifact was not found."
            " Please check your configuration",
            "ae|10:00:01.095 [go] No files were found in the Test Results folders",
            "ae|10:00:01.100 [go] Failed to upload /go/a.zip",  # an attempt; the retry succeeded
            "ex|10:00:02.100 [go] Job completed p/1/s/1/j on agent [/go]",
        ),
        UTC,
        "passed",
        "2024-05-01T08:00:00+00:00",
        "2024-05-01T08:00:02.100+00:00",
        True,
    ),
    (
        "the build-command agent (16.x to 18.x) cancelled",
        console_16(
            "17:45:08.573 [go] Current job status: passed",
            "17:45:08.600 [go] Task: sleep 600",
            "17:50:00.000 [go] Cancel task: kill",
            "17:50:00.100 [go] Job is canceled build_capi_native/13/defaultStage/1/defaultJob on a [/w]",
            f"17:50:00.200 [go] Job completed {WHERE}",
        ),
        UTC,
        "cancelled",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-21T17:50:00.200+00:00",
        True,
    ),
    (
        "a result on the completion line wins",
        console_16(*task_16("17:45:08.573"), f"17:45:10.000 [go] Job completed {WHERE} with result: Failed"),
        UTC,
        "failed",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-21T17:45:10+00:00",
        True,
    ),
    (
        "the server cancelled a hung job: its untimed note, the end when it wrote it",
        console_16(
            *task_16("17:45:08.573"),
            "Go cancelled this job as it has not generated any console output for more than 1 minute(s)",
        ),
        UTC,
        "cancelled",
        "2016-03-21T17:45:07.452+00:00",
        WRITTEN.isoformat(),
        False,
    ),
    (
        "the server failed a job whose material left the configuration",
        console_16(
            "",
            "Job for pipeline 'build_capi_native/13/defaultStage/1/defaultJob' has been failed as one or"
            " more material configurations were either changed or removed.",
        ),
        UTC,
        "failed",
        "2016-03-21T17:45:07.452+00:00",
        WRITTEN.isoformat(),
        False,
    ),
    ("an empty console: cancelled before an agent took it", b"", UTC, "cancelled", None, None, False),
    (
        "midnight: lines after it are on the next day",
        console_16(
            *task_16("23:59:58.000"),
            "00:00:03.000 still building",
            *end_16("00:10:00.000"),
            started="2016-03-21 23:59:50 UTC",
            first="23:59:50.100",
        ),
        UTC,
        "passed",
        "2016-03-21T23:59:50.100+00:00",
        "2016-03-22T00:10:00+00:00",
        True,
    ),
    (
        "midnight between the stamp and its own line",
        console_16(*end_16("00:00:10.000"), started="2016-03-21 23:59:59 UTC", first="00:00:00.002"),
        UTC,
        "passed",
        "2016-03-22T00:00:00.002+00:00",
        "2016-03-22T00:00:10+00:00",
        True,
    ),
    (
        "truncated: no completion, the last status line is the best word",
        console_16(*task_16("17:45:08.573"), "17:45:20.000 + make test"),
        UTC,
        "passed",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-21T17:45:20+00:00",
        False,
    ),
    (
        "truncated before any status",
        console_16("17:45:08.000 [go] Start to update materials."),
        UTC,
        "unknown",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-21T17:45:08+00:00",
        False,
    ),
    (
        "no Job Started line: the date comes from the file's time",
        b"17:45:08.573 + make\n" + b"\n".join(line.encode() for line in end_16("17:45:26.461")) + b"\n",
        UTC,
        "passed",
        "2016-03-21T17:45:08.573+00:00",
        "2016-03-21T17:45:26.461+00:00",
        True,
    ),
    (
        "16.x cancelled before it started: no Job Started",
        f"17:45:20.000 [go] Job is cancelled {WHERE}\n17:45:20.010 [go] Job completed {WHERE}\n".encode(),
        UTC,
        "cancelled",
        "2016-03-21T17:45:20+00:00",
        "2016-03-21T17:45:20.010+00:00",
        True,
    ),
    (
        "rescheduled: the first attempt's start, the second attempt's outcome",
        console_16(
            *task_16("17:45:08.573", "failed"),
            "09:00:00.000 [go] Job Started: 2016-03-23 09:00:00 UTC",
            *end_16("09:00:30.000"),
        ),
        UTC,
        "passed",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-23T09:00:30+00:00",
        True,
    ),
    (
        "copied from GoCD's page: no times, indented; the start from Job Started, the end unknown",
        b"[go] Job Started: 2024-02-14 15:20:54 KST\n"
        b"    [go] Start to prepare p/2/s/1/j on agent [/var/lib/go-agent]\n"
        b"    [go] Task: cd /stb/workspacetook: 0.3s\n"
        b"    [go] Task status: failed, took: 0.3s\n"
        b"    [go] Current job status: failed\n"
        b"    [go] Job completed p/2/s/1/j on agent [/var/lib/go-agent]\n",
        UTC,
        "failed",
        "2024-02-14T06:20:54+00:00",
        "2024-02-14T06:20:54+00:00",  # the file's time, unless that is older than the start
        True,
    ),
    (
        "the configured zone knows an ambiguous name (IST in Kolkata)",
        console_16(*end_16("17:45:26.461"), started="2016-03-21 17:45:07 IST"),
        ZoneInfo("Asia/Kolkata"),
        "passed",
        "2016-03-21T12:15:07.452+00:00",
        "2016-03-21T12:15:26.461+00:00",
        True,
    ),
    (
        "an ambiguous name the configured zone does not print is read in that zone",
        console_16(*end_16("17:45:26.461"), started="2016-03-21 17:45:07 IST"),
        UTC,
        "passed",
        "2016-03-21T17:45:07.452+00:00",
        "2016-03-21T17:45:26.461+00:00",
        True,
    ),
    (
        "the zone's daylight-saving change during a job",
        console_16(*end_16("03:00:30.000"), started="2021-03-28 01:59:00 CET", first="01:59:00.000"),
        ZoneInfo("Europe/Berlin"),
        "passed",
        "2021-03-28T00:59:00+00:00",
        "2021-03-28T01:00:30+00:00",
        True,
    ),
]


@pytest.mark.parametrize(
    ("console", "zone", "result", "started", "completed", "finished"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_consoles(
    console: bytes, zone: tzinfo, result: str, started: str | None, completed: str | None, finished: bool
) -> None:
    job = parse_gocd_console(console, zone=zone, written=WRITTEN)
    assert job.result == result
    assert job.finished is finished
    assert job.started == (WRITTEN if started is None else iso(started))
    assert job.completed == (WRITTEN if completed is None else iso(completed))


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_pieces_of_any_size_read_like_the_whole(case: tuple[str, bytes, tzinfo, str, str, str, bool]) -> None:
    _, data, zone, *_ = case
    whole = parse_gocd_console(data, zone=zone, written=WRITTEN)
    rng = random.Random(len(data))
    for _ in range(5):
        console = GoCDConsole(zone)
        at = 0
        while at < len(data):
            step = rng.randint(1, 64)
            console.feed(data[at : at + step])
            at += step
        assert console.close(WRITTEN) == whole


def test_a_notice_without_a_result_says_why() -> None:
    job = parse_gocd_console(console_16("17:45:08.000 [go] Start to update materials."), zone=UTC)
    assert job.note == "the console ends before the job's outcome"
    cancelled = parse_gocd_console(
        console_16(*task_16("17:45:08.573"), "17:50:00.100 [go] Task is cancelled"), zone=UTC
    )
    assert cancelled.note == "Task is cancelled"


def test_without_any_date_the_times_are_unknown() -> None:
    job = parse_gocd_console(b"17:45:08.573 [go] Current job status: passed.\n", zone=UTC)
    assert (job.result, job.started, job.completed) == ("passed", None, None)


# --- hostile and broken input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        random.Random(1).randbytes(64 << 10),
        b"<cruisecontrol><build/></cruisecontrol>\n",
        b'{"pipeline": "x"}',
        b"\x00" * 100,
        b"99:99:99.999 not a time\n",
    ],
    ids=["random-bytes", "xml", "json", "zeros", "impossible-time"],
)
def test_what_is_no_console_is_refused(data: bytes) -> None:
    with pytest.raises(ParseError, match="not a GoCD console"):
        parse_gocd_console(data, zone=UTC)


def test_invalid_utf8_is_read_around() -> None:
    data = console_16("17:45:08.000 OUTPUT", *end_16("17:45:26.461"))
    data = data.replace(b"OUTPUT", b"\xff\xfe\xc3\x28 output").replace(
        b"Start to prepare", b"Start \xc3\x28\xff"
    )
    job = parse_gocd_console(data, zone=UTC)
    assert (job.result, job.completed) == ("passed", iso("2016-03-21T17:45:26.461+00:00"))


@pytest.mark.parametrize("size", [MAX_LINE - 10, MAX_LINE + 10, 5 * MAX_LINE])
def test_a_huge_line_is_skipped_and_what_follows_kept(size: int) -> None:
    huge = "17:45:09.000 " + "x" * size
    data = console_16(*task_16("17:45:08.573"), huge, *end_16("17:45:26.461", "failed"))
    for piece in (len(data), 4096, 1 << 20):
        console = GoCDConsole(UTC)
        for at in range(0, len(data), piece):
            console.feed(data[at : at + piece])
        job = console.close(WRITTEN)
        assert (job.result, job.completed) == ("failed", iso("2016-03-21T17:45:26.461+00:00"))


def test_a_huge_last_line_without_newline() -> None:
    data = console_16(*end_16("17:45:26.461"))[:-1] + b" " + b"y" * (3 * MAX_LINE)
    job = parse_gocd_console(data, zone=UTC)
    assert job.result == "passed"


def test_every_truncation_reads_or_is_refused() -> None:
    """A console cut anywhere (a crash, a partial copy) never raises anything but ParseError."""
    data = console_16(*task_16("17:45:08.573"), *end_16("17:45:26.461", "failed"))
    for cut in range(len(data)):
        try:
            job = parse_gocd_console(data[:cut], zone=UTC, written=WRITTEN)
        except ParseError:
            assert cut < 14, f"refused at {cut}"
            continue
        assert isinstance(job, GoCDJob)
        assert job.result in ("passed", "failed", "unknown", "cancelled")
        assert job.started is None or job.completed is None or job.started <= job.completed


def test_a_server_phrase_in_the_agents_output_is_output() -> None:
    data = console_16(
        *task_16("17:45:08.573"), "17:45:09.000 echo Go cancelled this job", *end_16("17:45:26.461")
    )
    assert parse_gocd_console(data, zone=UTC).result == "passed"


# --- zones and paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "local", "fallback", "offset"),
    [
        ("UTC", datetime(2016, 3, 21, 12), ZoneInfo("Asia/Tokyo"), timedelta(0)),
        ("CEST", datetime(2016, 7, 1, 12), UTC, timedelta(hours=2)),
        ("EDT", datetime(2016, 7, 1, 12), UTC, timedelta(hours=-4)),
        ("MESZ", datetime(2016, 7, 1, 12), UTC, timedelta(hours=2)),
        ("GMT+05:30", datetime(2016, 7, 1, 12), UTC, timedelta(hours=5, minutes=30)),
        ("GMT-3", datetime(2016, 7, 1, 12), UTC, timedelta(hours=-3)),
        ("+0545", datetime(2016, 7, 1, 12), UTC, timedelta(hours=5, minutes=45)),
        ("IST", datetime(2016, 7, 1, 12), ZoneInfo("Asia/Kolkata"), timedelta(hours=5, minutes=30)),
        ("IST", datetime(2016, 7, 1, 12), ZoneInfo("Europe/Dublin"), timedelta(hours=1)),
        ("IST", datetime(2016, 7, 1, 12), ZoneInfo("Asia/Jerusalem"), timedelta(hours=3)),
        ("IST", datetime(2016, 7, 1, 12), UTC, timedelta(0)),
        ("CST", datetime(2016, 7, 1, 12), ZoneInfo("Asia/Shanghai"), timedelta(hours=8)),
        ("CST", datetime(2016, 1, 1, 12), ZoneInfo("America/Chicago"), timedelta(hours=-6)),
        ("XYZT", datetime(2016, 7, 1, 12), ZoneInfo("Europe/Paris"), timedelta(hours=2)),
        (None, datetime(2016, 7, 1, 12), ZoneInfo("Europe/Paris"), timedelta(hours=2)),
        ("GMT+99:00", datetime(2016, 7, 1, 12), UTC, timedelta(0)),
    ],
)
def test_console_zone(token: str | None, local: datetime, fallback: tzinfo, offset: timedelta) -> None:
    assert local.replace(tzinfo=console_zone(token, local, fallback)).utcoffset() == offset


def test_a_matching_configured_zone_keeps_its_daylight_saving_rules() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert console_zone("CET", datetime(2021, 3, 28, 1, 59), berlin) is berlin
    assert console_zone("CET", datetime(2021, 7, 1), berlin) == timezone(timedelta(hours=1), "CET")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/var/lib/go-server/artifacts/pipelines/shop/12/build/1/unit/cruise-output/console.log",
            GoCDPath("shop", "12", "build", "1", "unit"),
        ),
        (
            "pipelines/a.b-c_d/3/st/2/job-1/cruise-output/console.log",
            GoCDPath("a.b-c_d", "3", "st", "2", "job-1"),
        ),
        ("/x/pipelines/shop/12/build/1/unit/cruise-output/console.log.1", None),
        ("/x/pipelines/shop/12/build/unit/cruise-output/console.log", None),
        ("/x/pipelines/shop/12/build/1/unit/console.log", None),
    ],
)
def test_console_paths(path: str, expected: GoCDPath | None) -> None:
    where = parse_console_path(path)
    assert where == expected
    if where is not None:
        assert where.job_name == f"{where.pipeline}/{where.stage}/{where.job}"
        assert where.run_id == f"{where.counter}.{where.stage_counter}"
