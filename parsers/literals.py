"""Which lines of a chunk can match a rule at all: the literal every match must contain, found fast.

A log is mostly lines no rule wants. When every rule names a literal that any matching line must
hold (``required_literal``), ``line_starts`` finds the lines holding one, and the regex runs on those
lines only. Finding them is the costly part, so the search is planned per chunk: a literal's rarest
byte is found with memchr (``bytes.find`` of one byte) and each hit checked, or, when no byte is rare
enough, the literal is found whole. The plan never costs much more than plain finds would.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["line_starts", "required_literal"]

# The literal prefilter's costs, measured on a warm 4 MB chunk and expressed as a number of bytes a
# pass covers for the price of checking one candidate in Python (about 0.25 us): a memchr pass for
# one byte (about 0.01 ns a byte) and a bytes.find pass for a literal of a few words (0.15 to 0.6 ns).
_MEMCHR_BYTES = 16384
_FIND_BYTES = 1024
_SAMPLE = 4096  # bytes of the chunk in which the literals' bytes are counted
_MIN_ANCHORED = 16 * _SAMPLE  # smaller chunks: plain finds cost less than choosing anchors
_FIRST_CANDIDATES = 64  # checked before the anchor's own cost is compared with plain finds


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


def required_literal(pattern: str) -> bytes | None:
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


def line_starts(literals: tuple[bytes, ...], chunk: bytes, size: int) -> list[int]:
    """The start of every line of ``chunk[:size]`` holding one of ``literals``, in order."""
    anchors, plain = _plan(literals, chunk, size)
    starts: set[int] = set()
    for literal in plain:
        _literal_lines(chunk, literal, 0, size, starts)
    for anchor in anchors:
        _anchored_lines(chunk, anchor, size, starts)
    return sorted(starts)
