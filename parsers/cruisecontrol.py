"""CruiseControl (Java) finished-build logs: ``logs/<project>/log<yyyyMMddHHmmss>[L<label>].xml``.

CruiseControl writes one log per build when the build ends, so a new log is a finished build. The
``L<label>`` part of the name is written only for successful builds; inside, a ``<build>`` element
with an ``error`` attribute marks a failure. Old logs may be gzipped; the caller decompresses.
Times are the server's local wall-clock time, so they are returned naive.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

from parsers.records import ParseError
from parsers.xmlsafe import parse_xml

_LOG_NAME = re.compile(r"log(\d{14})(?:L(.*?))?\.xml(?:\.gz)?")
_STAMP = re.compile(r"\d{14}")
_STAMP_FORMAT = "%Y%m%d%H%M%S"
_UNIT_SECONDS = {"day": 86400.0, "hour": 3600.0, "minute": 60.0, "min": 60.0, "second": 1.0, "sec": 1.0}
# "3 minutes 10 seconds", "0 minute(s) 3 second(s)", "1 hour, 2 minutes and 5 seconds"
_DURATION_PART = re.compile(
    r"\s*(?:,|and)?\s*(\d+(?:\.\d+)?)\s*(day|hour|minute|min|second|sec)(?:s|\(s\))?(?![A-Za-z])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class CruiseControlBuild:
    project: str | None
    label: str | None
    timestamp: datetime  # naive, the CruiseControl server's local time
    duration_s: float | None
    success: bool
    error: str | None


def _stamp(text: str) -> datetime | None:
    if not _STAMP.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, _STAMP_FORMAT)
    except ValueError:
        return None


def parse_log_name(name: str) -> tuple[datetime, str | None] | None:
    """The build time and (successful builds only) label a log file's name encodes, else None."""
    base = name.rsplit("/", 1)[-1]
    match = _LOG_NAME.fullmatch(base)
    if match is None:
        return None
    when = _stamp(match.group(1))
    if when is None:
        return None
    return when, match.group(2)


def parse_build_time(text: str) -> float | None:
    """Seconds from CruiseControl's ``<build time="...">`` text; None when it is not a duration."""
    position = 0
    total = 0.0
    found = False
    text = text.strip()
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None or match.end() == position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        found = True
        position = match.end()
    return total if found else None


def _properties(root: ET.Element) -> dict[str, str]:
    props: dict[str, str] = {}
    info = root.find("info")
    if info is None:
        return props
    for prop in info.findall("property"):
        key = prop.get("name")
        value = prop.get("value")
        if key is not None and value is not None:
            props.setdefault(key, value)
    return props


def parse_cruisecontrol_log(data: bytes, *, name: str) -> CruiseControlBuild:
    """One finished CruiseControl build; ParseError when the log is garbage, truncated or incomplete."""
    root = parse_xml(data)
    if root.tag != "cruisecontrol":
        raise ParseError(f"{name}: not a CruiseControl log: root element <{str(root.tag)[:40]}>")
    build = root.find("build")
    if build is None:
        raise ParseError(f"{name}: no <build> element")
    props = _properties(root)
    from_name = parse_log_name(name)

    timestamp = from_name[0] if from_name is not None else _stamp(props.get("cctimestamp", "").strip())
    if timestamp is None:
        raise ParseError(f"{name}: no build time (neither a log<yyyyMMddHHmmss> name nor a cctimestamp)")

    name_label = from_name[1] if from_name is not None else None
    label = props.get("label") or name_label or None
    error = build.get("error")
    success = error is None and (from_name is None or name_label is not None)
    time_text = build.get("time")
    return CruiseControlBuild(
        project=props.get("projectname") or None,
        label=label,
        timestamp=timestamp,
        duration_s=None if time_text is None else parse_build_time(time_text),
        success=success,
        error=error,
    )
