"""Result files: one small JSON or YAML file per run, written by a build script, and JUnit reports.

Shape of a result file (JSON object or YAML mapping)::

    pipeline: nightly-backup            # required
    id: "2026-11-26.1"                  # required, string or integer
    state: SUCCESSFUL                   # a Compass state ... or
    result: success                     # ... a CI word for the source's result_map (exactly one)
    started_at: 2026-11-26T01:00:00Z    # required: RFC 3339 (with an offset) or epoch seconds
    completed_at: 2026-11-26T01:12:30Z  # required unless state is IN_PROGRESS (then absent)
    url: https://ci.example.com/runs/42 # optional, http(s)
    description: backup of db01         # optional
    junit: [reports/*.xml]              # optional globs, relative to the result file

A ``null`` value counts as absent. Times without a UTC offset are refused rather than guessed.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from parsers.records import ParseError
from parsers.vocabulary import COMPASS_STATES
from parsers.xmlsafe import parse_xml

RESULT_FILE_KEYS: tuple[str, ...] = (
    "pipeline",
    "id",
    "state",
    "result",
    "started_at",
    "completed_at",
    "url",
    "description",
    "junit",
    "parameters",
)
MAX_RESULT_FILE_BYTES = 1 << 20  # a result file is a few hundred bytes; anything this big is not one
_MAX_KEY_IN_MESSAGE = 40
_EPOCH_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")


class ResultFileError(ValueError):
    """A result file that does not have the documented shape; the message names the field."""


@dataclass(frozen=True, slots=True)
class ResultRecord:
    pipeline: str
    id: str
    state: str | None
    result: str | None
    started_at: datetime
    completed_at: datetime | None
    url: str | None
    description: str | None
    junit: tuple[str, ...]
    parameters: tuple[tuple[str, str], ...] = ()  # e.g. where a deployment went: {"TARGET_ENV": "prod"}


@dataclass(frozen=True, slots=True)
class TestSummary:
    __test__ = False  # not a pytest test class, whatever its name

    tests: int
    failures: int
    errors: int
    skipped: int
    time_s: float | None


def _load(data: bytes, name: str) -> object:
    if len(data) > MAX_RESULT_FILE_BYTES:
        raise ResultFileError(f"{name}: file too large ({len(data)} bytes, at most {MAX_RESULT_FILE_BYTES})")
    try:
        loaded: object = json.loads(data)
    except (ValueError, RecursionError):
        loaded = None
    if isinstance(loaded, dict):
        return loaded
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultFileError(f"{name}: neither a JSON object nor valid YAML: {problem}") from None
    except (RecursionError, ValueError, OverflowError) as exc:
        raise ResultFileError(f"{name}: unreadable YAML: {type(exc).__name__}") from None


def _text(mapping: dict[str, Any], key: str, name: str) -> str | None:
    """An optional string field; null counts as absent, an empty string is refused."""
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ResultFileError(f"{name}: {key}: must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ResultFileError(f"{name}: {key}: must not be empty")
    return value


def _run_id(mapping: dict[str, Any], name: str) -> str:
    value = mapping.get("id")
    if value is None:
        raise ResultFileError(f"{name}: id: missing (required)")
    if isinstance(value, bool) or not isinstance(value, int | str):
        # YAML reads an unquoted 2026-11-26 as a date and 1.10 as 1.1: quote such ids.
        raise ResultFileError(
            f"{name}: id: must be a string or an integer (quote it), not {type(value).__name__}"
        )
    text = str(value)
    if not text.strip():
        raise ResultFileError(f"{name}: id: must not be empty")
    return text


def _to_datetime(value: object) -> datetime | None:
    """An aware or naive datetime from a YAML/JSON value, or None when it is not a date-time."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC) if math.isfinite(value) else None
        if isinstance(value, datetime):
            return value
        if isinstance(value, str):
            text = value.strip()
            if _EPOCH_TEXT.fullmatch(text):
                return datetime.fromtimestamp(float(text), tz=UTC)
            if text[-1:] in ("z", "Z"):
                text = text[:-1] + "+00:00"
            if "T" not in text.upper() and " " not in text:
                return None  # a bare date: no time of day
            return datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        return None
    return None  # a YAML date, a list, a mapping...


def _instant(mapping: dict[str, Any], key: str, name: str) -> datetime | None:
    value = mapping.get(key)
    if value is None:
        return None
    parsed = _to_datetime(value)
    if parsed is None:
        raise ResultFileError(f"{name}: {key}: not a date-time (RFC 3339 with an offset, or epoch seconds)")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ResultFileError(f"{name}: {key}: no UTC offset (write e.g. 2026-11-26T01:00:00Z)")
    return parsed.astimezone(UTC)


def _junit_globs(mapping: dict[str, Any], name: str) -> tuple[str, ...]:
    value = mapping.get("junit")
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ResultFileError(f"{name}: junit: must be a list of globs, not {type(value).__name__}")
    globs: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ResultFileError(f"{name}: junit: every entry must be a non-empty string glob")
        parts = re.split(r"[/\\]", item)
        if item.startswith(("/", "\\", "~")) or _WINDOWS_DRIVE.match(item) or ".." in parts:
            raise ResultFileError(f"{name}: junit: {item!r} must stay inside the result file's directory")
        globs.append(item)
    return tuple(globs)


def parse_result_file(data: bytes, *, name: str) -> ResultRecord:
    """Read and check one result file; ResultFileError names the first field that is wrong."""
    loaded = _load(data, name)
    if not isinstance(loaded, dict):
        raise ResultFileError(f"{name}: must be a JSON object or YAML mapping, not {type(loaded).__name__}")
    for key in loaded:
        if key not in RESULT_FILE_KEYS:
            shown = (
                repr(key)
                if len(repr(key)) <= _MAX_KEY_IN_MESSAGE
                else repr(key)[:_MAX_KEY_IN_MESSAGE] + "..."
            )
            raise ResultFileError(f"{name}: unknown key {shown}")
    mapping: dict[str, Any] = loaded

    pipeline = _text(mapping, "pipeline", name)
    if pipeline is None:
        raise ResultFileError(f"{name}: pipeline: missing (required)")
    run_id = _run_id(mapping, name)
    state = _text(mapping, "state", name)
    result = _text(mapping, "result", name)
    if (state is None) == (result is None):
        raise ResultFileError(f"{name}: state and result: give exactly one")
    if state is not None:
        state = state.strip().upper()
        if state not in COMPASS_STATES:
            raise ResultFileError(f"{name}: state: {state!r} is not one of {', '.join(COMPASS_STATES)}")
    started_at = _instant(mapping, "started_at", name)
    if started_at is None:
        raise ResultFileError(f"{name}: started_at: missing (required)")
    completed_at = _instant(mapping, "completed_at", name)
    if state == "IN_PROGRESS":
        if completed_at is not None:
            raise ResultFileError(f"{name}: completed_at: must be absent while state is IN_PROGRESS")
    elif completed_at is None:
        raise ResultFileError(f"{name}: completed_at: missing (required unless state is IN_PROGRESS)")
    elif completed_at < started_at:
        raise ResultFileError(f"{name}: completed_at: before started_at")
    url = _text(mapping, "url", name)
    if url is not None and not re.match(r"https?://[^\s/]", url):
        raise ResultFileError(f"{name}: url: not an http(s) URL")
    return ResultRecord(
        pipeline=pipeline,
        id=run_id,
        state=state,
        result=result,
        started_at=started_at,
        completed_at=completed_at,
        url=url,
        description=_text(mapping, "description", name),
        junit=_junit_globs(mapping, name),
        parameters=_parameters(mapping, name),
    )


def _parameters(mapping: dict[str, Any], name: str) -> tuple[tuple[str, str], ...]:
    """``parameters``: names to scalar values (a string, a number or a boolean), as the run had them."""
    raw = mapping.get("parameters")
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ResultFileError(f"{name}: parameters: must be a mapping of names to values")
    out = []
    for key, value in raw.items():
        if not isinstance(key, str) or isinstance(value, dict | list) or value is None:
            raise ResultFileError(
                f"{name}: parameters: {str(key)[:_MAX_KEY_IN_MESSAGE]!r} must map to a value"
            )
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out.append((key[:1000], text[:1000]))
    return tuple(out)


# --- JUnit XML -------------------------------------------------------------------------------


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _count_attr(element: ET.Element, *names: str) -> int | None:
    for attr in names:
        raw = element.get(attr)
        if raw is None:
            continue
        try:
            value = int(raw.strip())
        except ValueError:
            continue
        if value >= 0:
            return value
    return None


def _seconds(raw: str | None) -> float | None:
    if raw is None:
        return None
    text = raw.strip()
    # Surefire in some locales writes "1,234.5"; others write a decimal comma "0,5".
    text = text.replace(",", "") if "." in text else text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _summarise(element: ET.Element) -> TestSummary:
    """Attributes where present and sane, else counts from the <testcase>/<testsuite> children."""
    tests = failures = errors = skipped = 0
    times: list[float] = []
    for child in element:
        tag = _local(child.tag)
        if tag == "testsuite":
            nested = _summarise(child)
            tests += nested.tests
            failures += nested.failures
            errors += nested.errors
            skipped += nested.skipped
            if nested.time_s is not None:
                times.append(nested.time_s)
        elif tag == "testcase":
            tests += 1
            outcomes = {_local(grand.tag) for grand in child}
            if "failure" in outcomes:
                failures += 1
            elif "error" in outcomes:
                errors += 1
            elif "skipped" in outcomes:
                skipped += 1
            case_time = _seconds(child.get("time"))
            if case_time is not None:
                times.append(case_time)
    own_time = _seconds(element.get("time"))
    return TestSummary(
        tests=_or(_count_attr(element, "tests"), tests),
        failures=_or(_count_attr(element, "failures"), failures),
        errors=_or(_count_attr(element, "errors"), errors),
        skipped=_or(_count_attr(element, "skipped", "skip"), skipped),
        time_s=own_time if own_time is not None else (sum(times) if times else None),
    )


def _or(value: int | None, fallback: int) -> int:
    return fallback if value is None else value


def parse_junit(data: bytes) -> TestSummary:
    """Totals of a JUnit XML report (<testsuites> or <testsuite> root); ParseError on anything else."""
    root = parse_xml(data)
    tag = _local(root.tag)
    if tag not in ("testsuites", "testsuite"):
        raise ParseError(f"not a JUnit report: root element <{tag[:40]}>")
    try:
        return _summarise(root)
    except RecursionError:
        raise ParseError("JUnit report nests test suites too deeply") from None
