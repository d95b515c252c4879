"""Facts from a build's console log, read as a head and a tail window.

Freestyle, matrix and Maven builds usually write no build.xml until they end, so the log is the
only early signal of causes and commit, and its "Finished:" line is the first sign of the end.
"""

from __future__ import annotations

import re

from parsers.records import LogFacts
from parsers.vocabulary import JENKINS_RESULTS

_CONSOLE_NOTE = re.compile(rb"\x1b\[8mha:[A-Za-z0-9+/=]*\x1b\[0m")
_SGR = re.compile(rb"\x1b\[[0-9;]*m")
# The Timestamper plugin can prefix every Pipeline log line with "[2024-05-01T12:00:00.000Z] ".
_TIMESTAMP_PREFIX = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\] ")
_FINISHED = re.compile(r"Finished: (" + "|".join(JENKINS_RESULTS) + r")\s*")
_CAUSE = re.compile(r"Started by .+|Started|Branch indexing")
_TIMED_OUT = re.compile(
    r"Build timed out \(after \d+ minutes?\)\. Marking the build as \w+"
    r"|Timeout has been exceeded"
    r"|Cancelling nested steps due to timeout"
)
_JENKINSFILE_SHA = re.compile(r"Obtained Jenkinsfile from ([0-9a-fA-F]{40})\b")
_CHECKOUT_SHA = re.compile(r"Checking out Revision ([0-9a-fA-F]{40}) \(")
_MAX_CAUSE = 200
# Cause lines are printed first; unknown plugin cause lines may precede the known ones.
_CAUSE_SCAN_LINES = 20


def strip_console_notes(data: bytes) -> bytes:
    """Drop hidden ConsoleNotes and colour codes so log text can be matched like plain output."""
    return _SGR.sub(b"", _CONSOLE_NOTE.sub(b"", data))


def _complete_lines(data: bytes, *, drop_first: bool) -> list[str]:
    """Lines that are certainly whole: the unterminated last one is still being written."""
    text = strip_console_notes(data).decode("utf-8", errors="replace")
    lines = text.split("\n")[:-1]
    if drop_first:
        lines = lines[1:]
    return [_TIMESTAMP_PREFIX.sub("", line.rstrip("\r")) for line in lines]


def _finished_result(lines_in_order: list[str]) -> str | None:
    for line in reversed(lines_in_order):
        match = _FINISHED.fullmatch(line)
        if match:
            return match.group(1)
    return None


def _causes(head_lines: list[str]) -> tuple[str, ...]:
    causes: dict[str, None] = {}
    for line in head_lines[:_CAUSE_SCAN_LINES]:
        if _CAUSE.fullmatch(line.rstrip()):
            causes.setdefault(line.rstrip()[:_MAX_CAUSE], None)
        elif line.startswith((" ", "\t")) or line.strip() == "originally caused by:":
            continue  # ancestors of an upstream cause, not causes of this build
        elif causes:
            break
    return tuple(causes)


def _commit(lines: list[str]) -> str | None:
    # The Jenkinsfile's revision is the project's commit; "Checking out Revision" may first report
    # the checkout of a Pipeline shared lib, so it only serves as a fallback (the freestyle case).
    for pattern in (_JENKINSFILE_SHA, _CHECKOUT_SHA):
        for line in lines:
            match = pattern.search(line)
            if match:
                return match.group(1).lower()
    return None


def parse_log(head: bytes, tail: bytes) -> LogFacts:
    """Summarise a log from its first and last windows; never raises, whatever the bytes."""
    head_lines = _complete_lines(head, drop_first=False)
    tail_lines = [] if tail == head else _complete_lines(tail, drop_first=True)
    # Tail lines come later in the file, so they win for "last Finished line".
    ordered = head_lines + tail_lines
    return LogFacts(
        finished_result=_finished_result(ordered),
        timed_out=any(_TIMED_OUT.search(line) for line in ordered),
        causes=_causes(head_lines),
        commit=_commit(ordered),
    )
