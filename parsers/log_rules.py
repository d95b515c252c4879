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

# The literal prefilter's costs, measured on a warm 4 MB chunk and expressed as a number of bytes a
# pass covers for the price of checking one candidate in Python (about 0.25 us): a memchr pass for
# one byte (about 0.01 ns a byte) and a bytes.find pass for a literal of a few words (0.15 to 0.6 ns).
_MEMCHR_BYTES = 16384
_FIND_BYTES = 1024
_SAMPLE = 4096  # bytes of the chunk in which the literals' bytes are counted
_MIN_ANCHORED = 16 * _SAMPLE  # smaller chunks: plain finds cost less than choosing anchors
_FIRST_CANDIDATES = 64  # checked before the anchor's own cost is compared with plain finds


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


_QUANTIFIER = re.compile(r"\{(\d*)(?:,(\d*))?\}")
_GLOBAL_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}


def _skip_class(pattern: str, i: int) -> int:
    """The index just past the character class that starts at ``pattern[i] == "["``."""
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":  # a leading ] is a member, not the end
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


def _skip_group(pattern: str, i: int) -> int:
    """The index just past the group that starts at ``pattern[i] == "("``."""
    depth = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = _skip_class(pattern, i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _skip_escape(pattern: str, i: int) -> tuple[str | None, int]:
    """The literal character an escape at ``pattern[i] == "\\"`` stands for (None for a class, an
    anchor or a reference), and the index just past it."""
    nxt = pattern[i + 1 : i + 2]
    if not nxt:
        return None, i + 1
    if not nxt.isalnum():
        return nxt, i + 2  # escaped punctuation or space: itself
    if nxt in _ESCAPE_LENGTH:
        return None, i + _ESCAPE_LENGTH[nxt]
    if nxt == "N":
        end = pattern.find("}", i)
        return None, (end + 1) if end >= 0 else len(pattern)
    if nxt.isdigit():  # a reference or an octal escape
        end = i + 1
        while end < len(pattern) and end < i + 4 and pattern[end].isdigit():
            end += 1
        return None, end
    return None, i + 2  # \d, \w, \s, \b, \A, \Z ...


def _required_literal(pattern: str) -> bytes | None:
    """The longest run of plain characters that every match of ``pattern`` must contain, if any.

    Only the top level of the pattern is read: a group, a class, an escape that is not a plain
    character, or a quantified character ends a run (a quantified one is dropped from it, since it
    may be absent or repeated). An alternation at the top, a case-insensitive or verbose flag, or a
    pattern that spans lines gives None: the scan then simply runs the regex over everything.
    """
    if "\\n" in pattern or "\n" in pattern or "(?s" in pattern:
        return None  # a rule that says it spans lines is searched over the whole chunk
    if any(set(m.group(1)) & {"i", "x"} for m in _GLOBAL_FLAGS.finditer(pattern)):
        return None
    best = ""
    run = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        literal: str | None = None
        if c == "\\":
            literal, i = _skip_escape(pattern, i)
        elif c == "[":
            i = _skip_class(pattern, i)
        elif c == "(":
            i = _skip_group(pattern, i)
        elif c == "|":
            return None
        elif c in "*+?" or (c == "{" and _QUANTIFIER.match(pattern, i)):
            run = run[:-1]  # the quantified character may be absent or repeated
            quantifier = _QUANTIFIER.match(pattern, i) if c == "{" else None
            i = quantifier.end() if quantifier else i + 1
            if i < len(pattern) and pattern[i] in "?+":  # lazy or possessive
                i += 1
        elif c in ".^$":
            i += 1
        else:
            literal, i = c, i + 1
        if literal is None:
            best = max(best, run, key=len)
            run = ""
        else:
            run += literal
    best = max(best, run, key=len)
    if len(best) < 3 or not best.isascii() or "\n" in best:
        return None
    return best.encode()


@dataclass(frozen=True, slots=True)
class _Anchor:
    """One byte found with memchr on behalf of the literals that contain it."""

    byte: bytes
    literals: tuple[bytes, ...]
    checks: tuple[tuple[bytes, int], ...]  # (literal, index of the byte in it), one per occurrence


def _anchor(byte: int, literals: Iterable[bytes]) -> _Anchor:
    group = tuple(literal for literal in literals if byte in literal)
    checks = tuple((literal, i) for literal in group for i, b in enumerate(literal) if b == byte)
    return _Anchor(bytes((byte,)), group, checks)


def _commonness(byte: int) -> int:
    """Breaks ties between bytes equally rare in the sample: log text is mostly lowercase and spaces."""
    if byte in b" \t":
        return 3
    if 0x61 <= byte <= 0x7A or 0x30 <= byte <= 0x39:
        return 2
    return 1 if 0x41 <= byte <= 0x5A else 0


def _plan(literals: tuple[bytes, ...], chunk: bytes, size: int) -> tuple[list[_Anchor], list[bytes]]:
    """How to find ``literals`` in ``chunk[:size]``: anchors (a rare byte each) and plain finds.

    A literal's rarest byte is found with memchr, which is far faster than ``bytes.find`` for the
    whole literal, and each occurrence is checked against the literal; literals sharing a rare byte
    share its pass. Rarity is counted in a sample of this chunk, taken from the middle of each of
    its quarters so that one odd stretch of log does not decide alone. A literal whose best byte is
    not rare enough for the anchor to cost less than half of a plain find gets a plain find.
    """
    if size < _MIN_ANCHORED:
        return [], list(literals)
    piece = _SAMPLE // 4
    sample = b"".join([chunk[at : at + piece] for at in (size * k // 4 + size // 8 for k in range(4))])
    # expected candidates per byte of chunk; half a count for a byte the sample does not contain (the
    # ``in`` test is a memchr, much cheaper than counting, and the bytes that matter are mostly absent)
    rate = {b: ((sample.count(b) if b in sample else 0) + 0.5) / _SAMPLE for b in set(b"".join(literals))}
    anchors: list[_Anchor] = []
    todo = list(literals)
    while todo:
        share, byte = _cheapest(todo, rate)
        if share > 0.5 / _FIND_BYTES:
            break  # nothing left has a byte rare enough: plain finds for the rest
        anchors.append(_anchor(byte, todo))
        todo = [literal for literal in todo if byte not in literal]
    return anchors, todo


def _cheapest(literals: list[bytes], rate: dict[int, float]) -> tuple[float, int]:
    """The byte with the lowest cost (its pass and its candidates) per literal it covers, and that cost."""
    cover: dict[int, int] = {}
    for literal in literals:
        for b in set(literal):
            cover[b] = cover.get(b, 0) + 1
    share, _, byte = min(((1 / _MEMCHR_BYTES + rate[b]) / n, _commonness(b), b) for b, n in cover.items())
    return share, byte


def _literal_lines(chunk: bytes, literal: bytes, pos: int, size: int, starts: set[int]) -> None:
    """Adds the start of every line of ``chunk[pos:size]`` that contains ``literal``."""
    pos = chunk.find(literal, pos, size)
    while pos >= 0:
        starts.add(chunk.rfind(b"\n", 0, pos) + 1)
        newline = chunk.find(b"\n", pos, size)
        if newline < 0:
            return
        pos = chunk.find(literal, newline + 1, size)


def _anchored_lines(chunk: bytes, anchor: _Anchor, size: int, starts: set[int]) -> None:
    """Adds the start of every line of ``chunk[:size]`` that contains one of the anchor's literals.

    The sample may be wrong about the byte. The candidates checked are therefore kept within half of
    what plain finds over the same stretch would have cost (plus a few to start with); past that the
    rest of the chunk is searched with plain finds, so a byte that turns out common makes the chunk
    cost about what it did without anchors, never much more.
    """
    per_byte = len(anchor.literals) / (2 * _FIND_BYTES)
    allowed = float(_FIRST_CANDIDATES)
    byte, checks = anchor.byte, anchor.checks
    pos = chunk.find(byte, 0, size)
    while pos >= 0:
        allowed -= 1
        if allowed < 0 and allowed + pos * per_byte < 0:
            for literal in anchor.literals:  # a literal holding the byte at pos or later starts here
                _literal_lines(chunk, literal, max(0, pos - len(literal)), size, starts)
            return
        for literal, index in checks:
            at = pos - index
            if at >= 0 and chunk.startswith(literal, at, size):
                starts.add(chunk.rfind(b"\n", 0, at) + 1)
                pos = chunk.find(b"\n", pos, size)  # the line is a candidate: on to the next one
                if pos < 0:
                    return
                break
        pos = chunk.find(byte, pos + 1, size)


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
    """Refuse a pipeline template whose placeholders are not plain names of the rule's groups."""
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


def render_pipeline(template: str, fields: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders from a match's fields; a missing field renders as "".

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
        needles = [_required_literal(finish), *([_required_literal(start)] if start is not None else [])]
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
        one are found first (see ``_plan``) and the regex runs on those lines only: a log is mostly
        lines no rule wants, and this is what keeps the scan near grep's speed.
        """
        end = len(chunk) if size is None else min(size, len(chunk))
        if self._literals is None:
            return self._events(self._pattern.finditer(chunk, 0, end), chunk, end)
        anchors, plain = _plan(self._literals, chunk, end)
        starts: set[int] = set()
        for literal in plain:
            _literal_lines(chunk, literal, 0, end, starts)
        for anchor in anchors:
            _anchored_lines(chunk, anchor, end, starts)
        matches = []
        for start in sorted(starts):
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
