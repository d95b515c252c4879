"""The literal prefilter: which lines can match, found by memchr on a rare byte or by plain finds.

Every plan must find exactly the lines a plain search finds; the scans that use it must equal the
full regex on any log, including ones written to fool the sample the plan is chosen from.
"""

from __future__ import annotations

import random

import pytest

from parsers import literals as prefilter
from parsers.literals import required_literal
from parsers.log_rules import LineEvent, RuleSet


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        (r"^\S+ START job=(?P<name>\S+) id=(?P<id>\d+)$", b" START job="),
        (r"\[go\] Current job status: (?P<result>\w+)", b"[go] Current job status: "),
        (r"(?i)start (?P<id>\d+)", None),  # case-insensitive: no literal to search for
        (r"start (?P<id>\d+)|begin (?P<x>\d+)", None),  # an alternation at the top
        (r"^result of (?P<id>\d+):\n(?P<result>\w+)$", None),  # spans lines
        (r"(?P<id>\d+)ok", None),  # too short
        (r"ab*cdef", b"cdef"),  # a quantified character may be absent: it ends the run
        (r"xyz{2}wvu", b"wvu"),
        (r"abc+?defg", b"defg"),  # lazy
        (r"\x41BCD", b"BCD"),  # an escape that is not plain punctuation ends the run
        (r"[a-z]+ done\.", b" done."),
        (r"(?i:abc)defg", b"defg"),  # a scoped flag applies inside its group only
        (r"a\dbcd", b"bcd"),
        (r"job {name} ok", b"job {name} ok"),  # a brace that is no quantifier is itself
        (r"(?x) a b c d", None),  # verbose: spaces are not literal
        (r"[]x]yzw", b"yzw"),  # a leading ] belongs to the class
    ],
)
def test_required_literal(pattern: str, literal: bytes | None) -> None:
    assert required_literal(pattern) == literal


def test_prefiltered_scan_finds_exactly_what_the_full_regex_finds() -> None:
    rng = random.Random(3)
    lines = []
    for i in range(20_000):
        roll = rng.random()
        if roll < 0.01:
            lines.append(f"t START job=j id={i}")
        elif roll < 0.02:
            lines.append(f"t FINISH job=j id={i} result=ok")
        elif roll < 0.03:
            lines.append(f"noise START job= but not a match {i}")  # the literal alone is not enough
        else:
            lines.append(f"t INFO {i} " + "x" * rng.randint(0, 80))
    chunk = ("\n".join(lines) + "\n").encode()
    start, finish = (
        r"^\S+ START job=(?P<name>\S+) id=(?P<id>\d+)$",
        r"^\S+ FINISH job=\S+ id=(?P<id>\d+) result=(?P<result>\w+)$",
    )
    fast = RuleSet(start=start, finish=finish).scan(chunk)
    slow = RuleSet(start=start + r"(?:\n)?", finish=finish).scan(chunk)  # \n in a rule: no prefilter
    assert [(e.kind, e.id, e.end) for e in fast] == [(e.kind, e.id, e.end) for e in slow]
    assert len(fast) > 300


# --- the rare-byte prefilter ----------------------------------------------------------------------


def _plain_lines(chunk: bytes, literals: tuple[bytes, ...], size: int) -> set[int]:
    """Reference: the start of every line of chunk[:size] containing a literal, by slicing."""
    body = chunk[:size]
    starts = set()
    pos = 0
    for line in body.split(b"\n"):
        if any(literal in line for literal in literals):
            starts.add(pos)
        pos += len(line) + 1
    return starts


def test_anchored_search_finds_the_lines_plain_finds_find(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any byte of any literal as the anchor, any cut, with and without falling back part-way."""
    rng = random.Random(11)
    alphabet = b"ab=S \n"
    for round_ in range(3000):
        literals = tuple(
            bytes(rng.choice(b"ab=S ") for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 3))
        )
        chunk = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        if rng.random() < 0.5:  # overlapping and back-to-back occurrences, at the very start and end
            chunk = literals[0] * 3 + chunk + literals[-1]
        size = rng.randint(0, len(chunk)) if rng.random() < 0.3 else len(chunk)  # a cut, even mid-literal
        # a tiny _FIND_BYTES makes anchors affordable; a huge one makes them fall back at once
        monkeypatch.setattr(prefilter, "_FIND_BYTES", rng.choice([1, 8, 10**9]))
        monkeypatch.setattr(prefilter, "_FIRST_CANDIDATES", rng.choice([0, 2, 64]))
        byte = rng.choice(b"".join(literals))
        anchor = prefilter._anchor(byte, literals)
        starts: set[int] = set()
        prefilter._anchored_lines(chunk, anchor, size, starts)
        for literal in literals:
            if literal not in anchor.literals:
                prefilter._literal_lines(chunk, literal, 0, size, starts)
        assert starts == _plain_lines(chunk, literals, size), (round_, literals, chunk, size)


NOISE_LINE = b"2026-11-26T01:00:00Z INFO worker-3 processed item 48213 in 12ms (queue depth 7, cache hit)\n"
START_JOB = r"^\S+ START job=(?P<name>\S+) id=(?P<id>\d+)$"
FINISH_JOB = r"^\S+ FINISH job=(?P<name>\S+) id=(?P<id>\d+) result=(?P<result>\w+)$"


def test_plan_anchors_rare_bytes_and_leaves_common_ones_to_plain_finds() -> None:
    literals = (b" START job=", b" FINISH job=")
    quiet = NOISE_LINE * (200_000 // len(NOISE_LINE))
    anchors, plain = prefilter._plan(literals, quiet, len(quiet))
    assert plain == [] and len(anchors) == 1  # one byte missing from the noise covers both: one pass
    assert set(anchors[0].literals) == set(literals)
    busy = b"ts=1 START_AT=2 FINISH job=x obj=b SHA=ff\n" * (200_000 // 43)  # every byte is common
    assert prefilter._plan(literals, busy, len(busy)) == ([], list(literals))
    small = prefilter._MIN_ANCHORED - 1  # a small chunk: not worth choosing anchors
    assert prefilter._plan(literals, quiet, small) == ([], list(literals))


def _hostile_logs() -> dict[str, bytes]:
    rng = random.Random(5)
    match_lines = [
        b"t START job=j id=%d\n",
        b"t FINISH job=j id=%d result=ok\n",
        b"noise START job= but not a match %d\n",
        b"=S= START job=j id=%d\n",
        b"t FINISH job=j id=%d result=ok START job=x\n",  # both literals in one line
    ]

    def log(filler: list[bytes], count: int) -> bytes:
        out = []
        for i in range(count):
            if rng.random() < 0.02:
                out.append(rng.choice(match_lines) % i)
            else:
                out.append(rng.choice(filler))
        return b"".join(out)

    dense = [b"=" * 70 + b"\n", b"S=jb" * 20 + b"\n", b"job= job= job=\n"]
    logs = {
        "noise": log([NOISE_LINE], 6000),
        "anchor bytes everywhere": log(dense, 9000),
        "random bytes": log([bytes(rng.randrange(256) for _ in range(60)).replace(b"\n", b"") + b"\n"], 6000),
    }
    # quiet where the sample looks (the middle of each quarter), anchor bytes dense everywhere else
    quarter = log(dense, 2200)
    calm = log([NOISE_LINE], 40)
    logs["sample fooled"] = b"".join(
        quarter[: len(quarter) // 2] + calm + quarter[len(quarter) // 2 :] for _ in range(4)
    )
    return logs


@pytest.mark.parametrize("name", ["noise", "anchor bytes everywhere", "random bytes", "sample fooled"])
def test_prefiltered_scan_equals_the_full_regex_on_hostile_logs(name: str) -> None:
    chunk = _hostile_logs()[name]
    assert len(chunk) > 100_000  # large enough for anchors to be considered
    fast_rules = RuleSet(start=START_JOB, finish=FINISH_JOB)
    slow_rules = RuleSet(start=START_JOB + r"(?:\n)?", finish=FINISH_JOB)  # \n in a rule: no prefilter

    def key(events: list[LineEvent]) -> list[tuple[str, str, str | None, int]]:
        return [(e.kind, e.id, e.result, e.end) for e in events]

    expected = key(slow_rules.scan(chunk))
    assert len(expected) > 50
    assert key(fast_rules.scan(chunk)) == expected
    # the lines at the front of a larger buffer, cut anywhere (mid-line, mid-literal): the same as a copy
    rng = random.Random(len(chunk))
    for cut in [rng.randrange(len(chunk)) for _ in range(5)] + [chunk.rfind(b"START") + 3, len(chunk) - 1]:
        assert key(fast_rules.scan(chunk, cut)) == key(slow_rules.scan(chunk[:cut])), cut


def test_an_anchor_that_turns_out_common_gives_way_to_plain_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = _hostile_logs()["sample fooled"]
    literals = (b" START job=", b" FINISH job=")
    anchors, plain = prefilter._plan(literals, chunk, len(chunk))
    assert plain == [] and [a.byte for a in anchors] == [b"="]  # the sample missed the dense "="
    fallbacks: list[int] = []
    plain_find = prefilter._literal_lines

    def spy(chunk: bytes, literal: bytes, pos: int, size: int, starts: set[int]) -> None:
        fallbacks.append(pos)
        plain_find(chunk, literal, pos, size, starts)

    monkeypatch.setattr(prefilter, "_literal_lines", spy)
    starts: set[int] = set()
    prefilter._anchored_lines(chunk, anchors[0], len(chunk), starts)
    assert len(fallbacks) == 2 and max(fallbacks) < 1000  # gave up on "=" within the first line or so
    assert starts == _plain_lines(chunk, literals, len(chunk))
