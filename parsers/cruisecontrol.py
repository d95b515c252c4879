"""CruiseControl (Java) finished-build logs: ``logs/<project>/log<yyyyMMddHHmmss>[L<label>].xml``.

What CruiseControl writes (Project.build, Log.writeLogFile and decideLogfileName, XMLLogHelper):

* one log per build, when the build ends, so a new log is a finished build; the name's time is the
  build's start (the modification check that triggered it) in the server's local time, and
  ``<build time="...">`` is how long it took; releases of 2002 named logs ``log<yyyyMMddHHmm>``;
* a ``<build>`` with an ``error`` attribute is a failure, and only a success's name has
  ``L<label>``;
* ``<info><property name="label">`` is the label the project holds during the build. The default
  label incrementer raises it only after a success, so every failure is logged with the label the
  next build will try, and the success that follows has the same one. A failure's identity is
  therefore its name's timestamp, a success's the name's label;
* old logs may be gzipped (the caller decompresses). Times are returned naive.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

from parsers.records import ParseError
from parsers.xmlsafe import parse_xml

_LOG_NAME = re.compile(r"log(\d{14}|\d{12})(?:L(.*?))?\.xml(?:\.gz)?")
_STAMP = re.compile(r"\d{14}|\d{12}")
_STAMP_FORMATS = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M"}
_UNIT_SECONDS = {"day": 86400.0, "hour": 3600.0, "minute": 60.0, "min": 60.0, "second": 1.0, "sec": 1.0}
# "3 minutes 10 seconds", "0 minute(s) 3 second(s)", "1 hour, 2 minutes and 5 seconds"
_DURATION_PART = re.compile(
    r"\s*(?:,|and)?\s*(\d+(?:\.\d+)?)\s*(day|hour|minute|min|second|sec)(?:s|\(s\))?(?![A-Za-z])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class CruiseControlBuild:
    project: str | None
    label: str | None  # the content's label (a failure's is the next build's)
    timestamp: datetime  # naive, the CruiseControl server's local time
    duration_s: float | None
    success: bool
    error: str | None
    stamp: str  # the timestamp as written: the name's digits, else the cctimestamp property
    name_label: str | None = None  # the label in a success's file name

    @property
    def run_id(self) -> str:
        """A success's label (from its name, else its content), a failure's timestamp."""
        if self.success:
            return self.name_label or self.label or self.stamp
        return self.stamp


def _stamp(text: str) -> datetime | None:
    if not _STAMP.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, _STAMP_FORMATS[len(text)])
    except ValueError:
        return None


def _name_parts(name: str) -> tuple[datetime, str, str | None] | None:
    match = _LOG_NAME.fullmatch(name.rsplit("/", 1)[-1])
    if match is None:
        return None
    when = _stamp(match.group(1))
    return None if when is None else (when, match.group(1), match.group(2))


def parse_log_name(name: str) -> tuple[datetime, str | None] | None:
    """The build time and (successful builds only) label a log file's name encodes, else None."""
    parts = _name_parts(name)
    return None if parts is None else (parts[0], parts[2])


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
    from_name = _name_parts(name)
    stamp_text = from_name[1] if from_name is not None else props.get("cctimestamp", "").strip()
    timestamp = from_name[0] if from_name is not None else _stamp(stamp_text)
    if timestamp is None:
        raise ParseError(f"{name}: no build time (neither a log<yyyyMMddHHmmss> name nor a cctimestamp)")

    name_label = from_name[2] if from_name is not None else None
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
        stamp=stamp_text,
        name_label=name_label or None,
    )
