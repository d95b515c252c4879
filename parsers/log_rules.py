"""What a line of any CI log means, as told by two user regexes: one for a start, one for a finish.

The daemon tails logs in chunks of complete lines. Looping over lines in Python would cost far more
than the regex itself, so both rules are folded into ONE compiled bytes pattern and the chunk is
searched with a single finditer; each match is then extended to the end of its line. When both rules
name a literal every match must contain, only the lines holding one are searched (``RuleSet.scan``).

Semantics of the combined pattern:

* Patterns are compiled as bytes with re.MULTILINE, so ``^`` and ``$`` anchor at line boundaries
  (``$`` matches before ``\\n``; a ``\\r`` of a CRLF line stays in the line).
* At most one event per line. The earliest position in the line where either rule matches wins;
  at the same position the finish rule is tried first, so a line that both rules match from the
  same place is a finish.
* Group names are rewritten internally (``f__id``, ``s__id``) and mapped back; numbered
  backreferences (``\\1``) are refused because the group numbers shift when the rules are combined.
* A match whose ``id`` group is empty or did not take part is ignored (it names no run).
"""

from __future__ import annotations

import math
import re
import string
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal

from dateutil import tz as dateutil_tz

from parsers.literals import line_starts, required_literal

LOCAL_ZONE: tzinfo = dateutil_tz.tzlocal()
TIME_FORMATS_BUILTIN: tuple[str, ...] = ("iso", "epoch", "epoch_ms")

_FINISH_PREFIX = "f__"
_START_PREFIX = "s__"
# Wrapper groups: never clash with renamed user groups, which all contain a double underscore.
_FINISH_WRAPPER = "finishrule"
_START_WRAPPER = "startrule"
_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
_OCTAL = frozenset("01234567")
_MAX_TIME_TEXT = 64


class RuleError(ValueError):
    """A rule that cannot be used; the message names the rule and the reason."""


@dataclass(frozen=True, slots=True)
class LineEvent:
    """One start or finish line found in a chunk."""

    kind: Literal["start", "finish"]
    id: str
    result: str | None
    time: datetime | None
    fields: dict[str, str]
    end: int


def _strip_leading_flags(pattern: str) -> tuple[str, str]:
    """Move global inline flags such as ``(?i)`` out of the pattern (they must become scoped)."""
    flags = ""
    while True:
        match = _LEADING_FLAGS.match(pattern)
        if match is None:
            return flags, pattern
        flags += match.group(1)
        pattern = pattern[match.end() :]


_GROUP_OPENERS = re.compile(r"\(\?P<(\w+)>|\(\?P=(\w+)\)|\(\?\(([A-Za-z_]\w*)\)|\(\?\(\d")


def _rewrite_groups(rule: str, pattern: str, prefix: str, *, verbose: bool) -> str:
    """Prefix every group name (definitions, ``(?P=name)``, ``(?(name)...)``).

    Walks the pattern like the regex parser does, so escapes, character classes and verbose-mode
    comments are copied untouched. Numbered backreferences are refused: combining the rules shifts
    group numbers.
    """
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt in "123456789":
                octal = pattern[i + 1 : i + 4]
                if not (len(octal) == 3 and set(octal) <= _OCTAL):
                    raise RuleError(
                        f"{rule} rule: numbered backreference \\{nxt} is not supported, use (?P=name)"
                    )
            out.append(pattern[i : i + 2])
            i += 2
        elif c == "[":
            j = i + 1
            # A "]" right after "[" or "[^" is a literal member of the class.
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(pattern[i : j + 1])
            i = j + 1
        elif c == "#" and verbose:
            j = pattern.find("\n", i)
            j = n if j < 0 else j
            out.append(pattern[i:j])
            i = j
        elif c == "(":
            match = _GROUP_OPENERS.match(pattern, i)
            if match is None:
                out.append(c)
                i += 1
            elif match.group(1) is not None:
                out.append(f"(?P<{prefix}{match.group(1)}>")
                i = match.end()
            elif match.group(2) is not None:
                out.append(f"(?P={prefix}{match.group(2)})")
                i = match.end()
            elif match.group(3) is not None:
                out.append(f"(?({prefix}{match.group(3)})")
                i = match.end()
            else:
                raise RuleError(f"{rule} rule: numbered conditional group is not supported, use a group name")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _compile(pattern: str, failure: str) -> re.Pattern[bytes]:
    """Compile as bytes; errors and warnings (an ambiguous "[[", say) become a RuleError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return re.compile(pattern.encode("utf-8"), re.MULTILINE)
    except (re.error, ValueError, OverflowError, RecursionError, Warning) as exc:
        raise RuleError(f"{failure}: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: Literal["start", "finish"]
    source: str  # the rewritten, scoped pattern text
    names: tuple[tuple[str, str], ...]  # (internal name, user name)


def _compile_rule(kind: Literal["start", "finish"], pattern: str, prefix: str, need_id: bool = True) -> _Rule:
    if not isinstance(pattern, str):
        raise RuleError(f"{kind} rule: the pattern must be a string")
    if not pattern:
        raise RuleError(f"{kind} rule: the pattern is empty")
    original = _compile(pattern, f"{kind} rule: invalid regex")
    names = tuple(original.groupindex)
    if need_id and "id" not in names:
        raise RuleError(f"{kind} rule: the pattern needs a named group (?P<id>...) for the run id")
    if kind == "finish" and "result" not in names:
        raise RuleError("finish rule: the pattern needs a named group (?P<result>...) for the outcome")
    if original.match(b"") is not None or original.search(b"\n") is not None:
        raise RuleError(f"{kind} rule: the pattern matches an empty line, so it would match every line")
    flags, body = _strip_leading_flags(pattern)
    renamed = _rewrite_groups(kind, body, prefix, verbose="x" in flags)
    # A trailing verbose-mode comment would swallow the closing parenthesis without the newline.
    scoped = f"(?{flags}:{renamed}\n)" if "x" in flags else (f"(?{flags}:{renamed})" if flags else renamed)
    check = _compile(scoped, f"{kind} rule: cannot combine this pattern with the other rule")
    expected = {prefix + name for name in names}
    if set(check.groupindex) != expected or check.groups != original.groups:
        raise RuleError(f"{kind} rule: cannot rewrite the group names of this pattern")
    return _Rule(kind=kind, source=scoped, names=tuple((prefix + name, name) for name in names))


def _check_time_format(time_format: str | None) -> None:
    if time_format is None or time_format in TIME_FORMATS_BUILTIN:
        return
    if not isinstance(time_format, str) or "%" not in time_format:
        raise RuleError(
            f"time_format {time_format!r}: use 'iso', 'epoch', 'epoch_ms' or a strptime format with % codes"
        )
    sample = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    try:
        datetime.strptime(sample.strftime(time_format), time_format)
    except (ValueError, TypeError) as exc:
        raise RuleError(f"time_format {time_format!r}: not a usable strptime format: {exc}") from None


def _aware(value: datetime, zone: tzinfo) -> datetime:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _epoch(text: str, scale: float) -> datetime | None:
    number = float(text)
    if not math.isfinite(number):
        return None
    return datetime.fromtimestamp(number / scale, tz=UTC)


def parse_time(text: str, time_format: str | None, tz: tzinfo) -> datetime | None:
    """A matched time as an aware UTC datetime; naive times are read in ``tz``. Never raises."""
    if time_format is None:
        return None
    text = text.strip()
    if not text or len(text) > _MAX_TIME_TEXT:
        return None
    try:
        if time_format == "epoch":
            return _epoch(text, 1.0)
        if time_format == "epoch_ms":
            return _epoch(text, 1000.0)
        if time_format == "iso":
            if text[-1] in "zZ":
                text = text[:-1] + "+00:00"
            return _aware(datetime.fromisoformat(text), tz)
        return _aware(datetime.strptime(text, time_format), tz)
    except (ValueError, OverflowError, OSError, TypeError):
        return None


def _template_fields(template: str) -> Iterable[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(template))
    except ValueError as exc:
        raise RuleError(f"template {template!r}: {exc}") from None


def check_template(template: str, group_names: Iterable[str]) -> None:
    """Refuse a template (a pipeline name, run id or URL) whose placeholders are not plain names of
    the rule's groups."""
    known = set(group_names)
    for _literal, field, spec, conversion in _template_fields(template):
        if field is None:
            continue
        if field == "" or not field.isidentifier():
            raise RuleError(f"template {template!r}: placeholder {{{field}}} must be a plain group name")
        if spec or conversion:
            raise RuleError(f"template {template!r}: placeholder {{{field}}} takes no format spec")
        if field not in known:
            raise RuleError(
                f"template {template!r}: unknown placeholder {{{field}}}"
                f" (groups: {', '.join(sorted(known)) or 'none'})"
            )


def render_template(template: str, fields: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders from a match's fields; a missing field renders as "".

    One renderer for every template of a log or result-file source: the pipeline name, the run id
    and the run's URL.

    ``{{`` and ``}}`` are literal braces. Validate templates once with check_template.
    """
    parts: list[str] = []
    for literal, field, _spec, _conversion in _template_fields(template):
        parts.append(literal)
        if field is not None:
            parts.append(fields.get(field, ""))
    return "".join(parts)


class RuleSet:
    """A start rule (optional) and a finish rule, combined into one scanner for chunks of lines."""

    __slots__ = (
        "_finish_names",
        "_ids_from_lines",
        "_literals",
        "_pattern",
        "_start_names",
        "_time_format",
        "_tz",
        "group_names",
    )

    def __init__(
        self,
        *,
        start: str | None,
        finish: str,
        time_format: str | None = None,
        tz: tzinfo = LOCAL_ZONE,
        ids_from_lines: bool = True,
    ) -> None:
        # ids_from_lines=False: the caller names the run (one file per run, ids in its path), so an
        # ``id`` group is optional and events without one carry an empty id
        self._ids_from_lines = ids_from_lines
        finish_rule = _compile_rule("finish", finish, _FINISH_PREFIX, ids_from_lines)
        rules = [finish_rule]
        if start is not None:
            rules.append(_compile_rule("start", start, _START_PREFIX, ids_from_lines))
        _check_time_format(time_format)
        for rule in rules:
            if time_format is None and any(name == "time" for _, name in rule.names):
                raise RuleError(f"{rule.kind} rule: a (?P<time>...) group needs a time_format")
        alternatives = [f"(?P<{_FINISH_WRAPPER}>{finish_rule.source})"]
        if start is not None:
            alternatives.append(f"(?P<{_START_WRAPPER}>{rules[1].source})")
        # The tail always matches, so it never changes how the rules match: unless the rule already
        # ate the newline, it takes the rest of the line, so the search resumes on the next line
        # and a line gives at most one event.
        combined = "(?:" + "|".join(alternatives) + ")(?:(?<=\n)|[^\n]*)"
        self._pattern = _compile(combined, "start and finish rules cannot be combined")
        needles = [required_literal(finish), *([required_literal(start)] if start is not None else [])]
        self._literals = None if None in needles else tuple(n for n in needles if n is not None)
        self._finish_names = finish_rule.names
        self._start_names = rules[1].names if start is not None else ()
        self._time_format = time_format
        self._tz = tz
        self.group_names: frozenset[str] = frozenset(name for rule in rules for _, name in rule.names)

    @property
    def pattern(self) -> re.Pattern[bytes]:
        """The single combined pattern (exposed for measurements and diagnostics)."""
        return self._pattern

    def scan(self, chunk: bytes, size: int | None = None) -> list[LineEvent]:
        """Every start/finish line in ``chunk[:size]`` (complete lines), in order. Never raises on content.

        ``size`` lets a caller scan the lines at the front of a larger read without copying them out.
        When every rule contains a literal that any matching line must contain, the lines holding
        one are found first (see ``parsers.literals``) and the regex runs on those lines only: a log is mostly
        lines no rule wants, and this is what keeps the scan near grep's speed.
        """
        end = len(chunk) if size is None else min(size, len(chunk))
        if self._literals is None:
            return self._events(self._pattern.finditer(chunk, 0, end), chunk, end)
        matches = []
        for start in line_starts(self._literals, chunk, end):
            newline = chunk.find(b"\n", start, end)
            match = self._pattern.search(chunk, start, end if newline < 0 else newline + 1)
            if match is not None:
                matches.append(match)
        return self._events(matches, chunk, end)

    def _events(self, matches: Iterable[re.Match[bytes]], chunk: bytes, size: int) -> list[LineEvent]:
        events: list[LineEvent] = []
        for match in matches:
            if match.lastgroup == _FINISH_WRAPPER:
                kind: Literal["start", "finish"] = "finish"
                names = self._finish_names
            else:
                kind = "start"
                names = self._start_names
            stop = match.end()
            if stop > match.start() and chunk[stop - 1] == 0x0A:
                end = stop  # the rule itself consumed the newline
            else:
                newline = chunk.find(b"\n", stop, size)
                end = size if newline < 0 else newline + 1
            fields: dict[str, str] = {}
            for internal, name in names:
                value = match.group(internal)
                if value is not None:
                    fields[name] = value.decode("utf-8", errors="replace")
            run_id = fields.get("id", "")
            if not run_id and self._ids_from_lines:
                continue
            time_text = fields.get("time")
            events.append(
                LineEvent(
                    kind=kind,
                    id=run_id,
                    result=fields.get("result") if kind == "finish" else None,
                    time=None if time_text is None else parse_time(time_text, self._time_format, self._tz),
                    fields=fields,
                    end=end,
                )
            )
        return events
