"""GoCD job consoles: ``pipelines/<pipeline>/<counter>/<stage>/<stageCounter>/<job>/cruise-output/``.

Since GoCD 15.1 the server writes a running job's console to a temporary file and moves it to that
path when the job completes, so a console found there is one finished job. What the agent writes
(GoCD's BuildWork, DefaultGoPublisher, Builders, ConsoleOutputTransmitter):

* every line starts with the agent's time of day, ``HH:mm:ss.SSS``; since 17.4 also with a two
  character tag and a bar (``j1|17:45:26.461 [go] ...``); the date appears once, in
  ``[go] Job Started: 2016-03-21 17:45:07 UTC`` (the agent's zone, as Java abbreviates it);
* up to 17.3 ``[go] Current job status: passed.`` is printed before EVERY task, so only the last
  one is the job's outcome; since 17.4 it is printed once, at the end, tagged ``j0``/``j1``;
* a cancelled job prints cancel-task lines and no final status; artifacts that fail to upload turn a
  passed job into a failed one after its status line; ``[go] Job completed ...`` is the last line.

The server appends its own untimed notes when it cancels or fails a job itself, and moves an EMPTY
file into place for a job cancelled before an agent took it. The console is read in pieces (a job's
console can be gigabytes); only the ``[go]`` lines and the times are kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import partial

from parsers.records import ParseError
from parsers.vocabulary import GOCD_RESULTS

__all__ = ["GoCDConsole", "GoCDJob", "GoCDPath", "console_zone", "parse_console_path", "parse_gocd_console"]

_HOUR_MS = 3_600_000
MAX_LINE = 1 << 20  # a longer line is build output, never a line GoCD itself writes

_TIMES = re.compile(rb"\n(?:[!-~]{2}\|)?(\d\d:\d\d:\d\d\.\d{3}) ")
_TIMED_START = re.compile(rb"(?:[!-~]{2}\|)?\d\d:\d\d:\d\d\.\d{3} ")
# untimed lines may be indented: a console copied from GoCD's page keeps the [go] lines, not the times
_GO_LINE = re.compile(rb"(?:([!-~]{2})\|)?(?:(\d\d:\d\d:\d\d\.\d{3}) |[ \t]*)(\[go\] [^\r\n]*)")
_STARTED = re.compile(r"Job Started: (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?: (\S+))?")
_STATUS = re.compile(r"Current job status: ([A-Za-z]+)")
_WITH_RESULT = re.compile(r" with result:? ([A-Za-z]+)")
_CANCEL_MESSAGES = (
    "Job is cancelled",  # the job was cancelled before its tasks ran
    "Start to execute cancel task",  # up to 17.3
    "Task is cancelled",
    "On Cancel Task",  # since 17.4
    "Task status: cancelled",
    "Job is canceled",  # the build-command agent of 16.x to 18.x (BuildComposer)
    "Cancel task:",
)
_CANCEL_TAGS = frozenset({"^C", "!x", "x0", "x1"})
# artifacts that could not be published fail a passed job after its status line (ArtifactsPublisher's
# summary; other lines tagged "ae" are warnings, such as test results not found)
_UPLOAD_FAILED = "Uploading finished. Failed to upload"
# the server's own notes: appended untimed when it cancels or fails a job without the agent
_SERVER_NOTES = (
    (b"Go cancelled this job", "cancelled"),
    (b"This job was cancelled by GoCD", "cancelled"),
    (b"This job was failed by GoCD", "failed"),
    (b"has been failed as one or more material configurations", "failed"),
    (b"failed due to errors", "failed"),
)
_OFFSET = re.compile(r"(?:GMT|UTC|UT)?([+-])(\d{1,2})(?::?(\d\d))?")
# Java's short names that mean one offset wherever they are printed (minutes east of UTC). Not here
# on purpose, because they name several zones: IST (India, Israel, Ireland), CST and CDT (US Central,
# China, Cuba), BST (British summer, Bangladesh, Bougainville), AST and ADT (Atlantic, Arabia), SST,
# and MSK (+4 from 2011 to 2014, +3 before and since).
_ZONE_OFFSETS: dict[str, int] = {
    "UTC": 0, "UT": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 60,
    "CET": 60, "CEST": 120, "MET": 60, "MEST": 120, "MEZ": 60, "MESZ": 120,
    "EET": 120, "EEST": 180, "WAT": 60, "CAT": 120, "SAST": 120, "EAT": 180,
    "PKT": 300, "NPT": 345, "ICT": 420, "WIB": 420, "HKT": 480, "SGT": 480, "AWST": 480, "PHT": 480,
    "JST": 540, "KST": 540, "ACST": 570, "ACDT": 630, "AEST": 600, "AEDT": 660,
    "NZST": 720, "NZDT": 780, "HST": -600, "AKST": -540, "AKDT": -480,
    "PST": -480, "PDT": -420, "MST": -420, "MDT": -360, "EST": -300, "EDT": -240,
    "NST": -210, "NDT": -150, "BRT": -180, "ART": -180,
}  # fmt: skip
_CONSOLE_PATH = re.compile(
    r"(?:^|/)pipelines/(?P<pipeline>[^/]+)/(?P<counter>[^/]+)/(?P<stage>[^/]+)/(?P<stage_counter>[^/]+)"
    r"/(?P<job>[^/]+)/cruise-output/console\.log$"
)


@dataclass(frozen=True, slots=True)
class GoCDPath:
    """The job a console belongs to, from its place under the artifacts directory."""

    pipeline: str
    counter: str
    stage: str
    stage_counter: str
    job: str

    @property
    def job_name(self) -> str:
        return f"{self.pipeline}/{self.stage}/{self.job}"

    @property
    def run_id(self) -> str:
        return f"{self.counter}.{self.stage_counter}"


@dataclass(frozen=True, slots=True)
class GoCDJob:
    """One finished job as its console tells it."""

    result: str  # passed | failed | cancelled (GoCD's words), or unknown
    started: datetime | None  # aware; None when no line carries a time
    completed: datetime | None  # aware
    finished: bool  # the agent's "Job completed" line is there
    note: str | None  # why, when the outcome is not the agent's own status line


def _time_of_day(text: bytes) -> int | None:
    """Milliseconds since midnight from ``HH:mm:ss.SSS``; None when it is no time of day."""
    hour, minute, second, ms = int(text[0:2]), int(text[3:5]), int(text[6:8]), int(text[9:12])
    if hour > 23 or minute > 59 or second > 59:
        return None
    return ((hour * 60 + minute) * 60 + second) * 1000 + ms


def parse_console_path(path: str) -> GoCDPath | None:
    match = _CONSOLE_PATH.search(path)
    return None if match is None else GoCDPath(**match.groupdict())


def console_zone(token: str | None, local: datetime, fallback: tzinfo) -> tzinfo:
    """The zone of an agent's ``Job Started`` abbreviation.

    The fallback (the configured zone) wins when it prints the same abbreviation at that time,
    because it also knows the zone's daylight-saving changes; then an explicit offset, then the
    unambiguous names above; anything else (IST, CST...) is read in the fallback zone.
    """
    if not token:
        return fallback
    if local.replace(tzinfo=fallback).tzname() == token:
        return fallback
    match = _OFFSET.fullmatch(token)
    if match is not None:
        hours, minutes = int(match.group(2)), int(match.group(3) or 0)
        if hours < 24 and minutes < 60:
            sign = -1 if match.group(1) == "-" else 1
            return timezone(sign * timedelta(hours=hours, minutes=minutes))
    minutes_east = _ZONE_OFFSETS.get(token.upper())
    if minutes_east is not None:
        return timezone(timedelta(minutes=minutes_east), token)
    return fallback


class GoCDConsole:
    """Reads a console in pieces with ``feed``; ``close`` gives the job. Pure: no I/O of its own."""

    def __init__(self, fallback_zone: tzinfo) -> None:
        self._fallback = fallback_zone
        self._zone: tzinfo | None = None
        self._tail = b""
        self._skipping = False  # inside a line longer than MAX_LINE
        self._seen_bytes = False
        self._recognised = False
        self._day = 0  # midnights passed since the first timed line
        self._prev_tod: int | None = None
        self._base: date | None = None  # the date of day 0
        self._start: tuple[int, int] | None = None  # (day, time of day in ms)
        self._start_stamp: datetime | None = None  # the first Job Started's own date and time
        self._first: tuple[int, int] | None = None
        self._last: tuple[int, int] | None = None
        self._reset_outcome()
        self._server: str | None = None

    def _reset_outcome(self) -> None:
        self._status: str | None = None
        self._cancelled: str | None = None
        self._failed: str | None = None
        self._completed: tuple[int, int] | None = None  # when the agent said "Job completed"
        self._done = False  # that it said so (a console without times has no "when")
        self._with_result: str | None = None

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._seen_bytes = True
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._skipping = False
            data = data[newline + 1 :]
        buf = self._tail + data if self._tail else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._hold(buf)
            return
        self._lines(buf, cut + 1)
        self._hold(buf[cut + 1 :])

    def _hold(self, rest: bytes) -> None:
        if len(rest) > MAX_LINE:
            self._tail = b""
            self._skipping = True
        else:
            self._tail = rest

    def _lines(self, buf: bytes, end: int) -> None:
        """Complete lines: times of day and the few lines that matter, without a Python loop per line.

        Times are fixed-width text, so a piece whose times are already in order has no midnight
        inside it (the common case: one C-level sort check); only a piece with a step back is
        walked line by line.
        """
        text = b"\n" + buf[:end]  # every line now follows a newline
        times = _TIMES.findall(text)
        marks = self._marks(text)
        first = _time_of_day(times[0]) if times else None
        last = _time_of_day(times[-1]) if times else None
        if first is not None and last is not None and times == sorted(times):
            self._advance(first)
            for _, tod, handle in marks:
                if tod is not None:
                    self._advance(tod)
                handle()
            self._advance(last)
            return
        pending = iter(marks)
        mark = next(pending, None)
        for timed in _TIMES.finditer(text):
            while mark is not None and mark[0] < timed.start():
                mark[2]()
                mark = next(pending, None)
            tod = _time_of_day(timed.group(1))
            if tod is not None:
                self._advance(tod)
        while mark is not None:
            mark[2]()
            mark = next(pending, None)

    def _marks(self, text: bytes) -> list[tuple[int, int | None, Callable[[], None]]]:
        """The [go] lines and the server's notes, as (position, time of day, handler), in order."""
        found: list[tuple[int, int | None, Callable[[], None]]] = []
        at = text.find(b"[go] ")
        while at >= 0:
            start = text.rfind(b"\n", 0, at) + 1
            line = _GO_LINE.match(text, start)
            if line is not None and line.start(3) == at:
                tag = None if line.group(1) is None else line.group(1).decode()
                message = line.group(3)[5:].decode("utf-8", "replace")
                tod = None if line.group(2) is None else _time_of_day(line.group(2))
                found.append((start, tod, partial(self._go, message, tag)))
            newline = text.find(b"\n", at)
            at = -1 if newline < 0 else text.find(b"[go] ", newline)
        for phrase, outcome in _SERVER_NOTES:
            at = text.find(phrase)
            while at >= 0:
                start = text.rfind(b"\n", 0, at) + 1
                if _TIMED_START.match(text, start) is None:  # the agent's lines all carry a time
                    found.append((start, None, partial(self._server_note, outcome)))
                newline = text.find(b"\n", at)
                at = -1 if newline < 0 else text.find(phrase, newline)
        found.sort(key=lambda mark: mark[0])
        return found

    def _advance(self, tod: int) -> None:
        # Times of day only grow within a job; a step back of more than an hour (more than a
        # daylight-saving change) is midnight.
        self._recognised = True
        if self._prev_tod is not None and tod < self._prev_tod - _HOUR_MS:
            self._day += 1
        self._prev_tod = tod
        self._last = (self._day, tod)
        if self._first is None:
            self._first = self._last

    def _go(self, text: str, tag: str | None) -> None:
        self._recognised = True
        here = self._last
        started = _STARTED.match(text)
        if started is not None:
            self._job_started(started)
            return
        status = _STATUS.match(text)
        if status is not None:
            if status.group(1).lower() in GOCD_RESULTS:  # not a line cut short
                self._status = status.group(1).lower()
            return
        if text.startswith("Job completed"):
            self._completed = here
            self._done = True
            with_result = _WITH_RESULT.search(text)
            if with_result is not None and with_result.group(1).lower() in GOCD_RESULTS:
                self._with_result = with_result.group(1).lower()
            return
        if tag in _CANCEL_TAGS or text.startswith(_CANCEL_MESSAGES):
            self._cancelled = self._cancelled or text[:200]
        elif _UPLOAD_FAILED in text:
            self._failed = self._failed or text.removeprefix("[go] ")[:200]

    def _job_started(self, match: re.Match[str]) -> None:
        y, mo, d, h, mi, s, token = match.groups()
        try:
            stamped = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        except ValueError:
            return
        if self._zone is None:
            self._zone = console_zone(token, stamped, self._fallback)
        line_date = stamped.date()
        if self._last is not None:
            stamped_tod = ((stamped.hour * 60 + stamped.minute) * 60 + stamped.second) * 1000
            if self._last[1] < stamped_tod - _HOUR_MS:  # the line's own time is past midnight
                line_date += timedelta(days=1)
            if self._base is None:
                self._base = line_date - timedelta(days=self._day)
            else:  # a later attempt (the job was rescheduled): its date wins over counted midnights
                self._day = (line_date - self._base).days
                self._last = (self._day, self._last[1])
        else:
            self._base = self._base or line_date
        if self._start_stamp is None:
            self._start = self._last
            self._start_stamp = stamped
        self._reset_outcome()

    def _server_note(self, outcome: str) -> None:
        self._recognised = True
        self._server = outcome

    def close(self, written: datetime | None = None) -> GoCDJob:
        """The job; ``written`` (the file's modification time, aware) dates a console without a
        ``Job Started`` line and ends one whose completion only the server wrote."""
        if self._tail and not self._skipping:
            self._lines(self._tail, len(self._tail))
            self._tail = b""
        if self._seen_bytes and not self._recognised:
            raise ParseError("not a GoCD console: no [go] line and no timed line")
        zone = self._zone or self._fallback
        base = self._base
        if base is None and self._last is not None and written is not None:
            local = written.astimezone(zone).replace(tzinfo=None)
            last = datetime.combine(local.date(), datetime.min.time()) + timedelta(milliseconds=self._last[1])
            if last > local + timedelta(hours=1):
                last -= timedelta(days=1)
            base = last.date() - timedelta(days=self._last[0])

        def instant(point: tuple[int, int] | None) -> datetime | None:
            if point is None or base is None:
                return None
            midnight = datetime.combine(base, datetime.min.time())
            return (midnight + timedelta(days=point[0], milliseconds=point[1])).replace(tzinfo=zone)

        started = instant(self._start or self._first)
        if started is None and self._start_stamp is not None:
            started = self._start_stamp.replace(tzinfo=zone)
        completed = instant(self._completed or self._last)
        if written is not None and (completed is None or (self._server is not None and written >= completed)):
            completed = written  # no time on the lines, or the server's note: when the file was written
        if started is not None and completed is not None and completed < started:
            completed = started
        result, note = self._outcome()
        if not self._seen_bytes and written is not None:
            started = completed = written
        return GoCDJob(result, started, completed, self._done, note)

    def _outcome(self) -> tuple[str, str | None]:
        if self._server == "cancelled" or self._cancelled:
            return "cancelled", self._cancelled or "cancelled by the GoCD server"
        if self._server == "failed" or self._failed:
            return "failed", self._failed or "failed by the GoCD server"
        if self._with_result is not None:
            return self._with_result, None
        if self._status is not None:
            return self._status, None
        if self._done:
            return "failed", "the job ended before its tasks ran"  # the agent reported an error
        if not self._seen_bytes:
            return "cancelled", "cancelled before an agent took the job"  # GoCD moves an empty file
        return "unknown", "the console ends before the job's outcome"


def parse_gocd_console(data: bytes, *, zone: tzinfo, written: datetime | None = None) -> GoCDJob:
    """A whole console in memory; see ``GoCDConsole`` for reading one in pieces."""
    console = GoCDConsole(zone)
    console.feed(data)
    return console.close(written)
