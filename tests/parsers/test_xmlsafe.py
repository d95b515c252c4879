from __future__ import annotations

import contextlib
import random

import pytest

from parsers import ParseError, UnsafeXmlError, parse_xml
from tests.parsers.samples import HOSTILE, LEGACY_WINDOWS_1252


@pytest.mark.parametrize(
    "data",
    [
        b"<build><result>SUCCESS</result></build>",
        b"<?xml version='1.0' encoding='UTF-8'?>\n<build><result>SUCCESS</result></build>",
        b"<?xml version='1.1' encoding='UTF-8'?>\n<build><result>SUCCESS</result></build>",
        b'<?xml version="1.1" encoding="UTF-8"?>\n<build><result>SUCCESS</result></build>',
        b"\xef\xbb\xbf<?xml version='1.1' encoding='UTF-8'?><build><result>SUCCESS</result></build>",
        b"  \n<build>\n<result>SUCCESS</result></build>\n\n",
    ],
    ids=["bare", "xml10", "xml11-single", "xml11-double", "bom", "whitespace"],
)
def test_parses_normal_documents(data: bytes) -> None:
    root = parse_xml(data)
    assert root.tag == "build"
    assert root.findtext("result") == "SUCCESS"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (b"&#x1b;", "ab"),
        (b"&#X1B;", "ab"),
        (b"&#27;", "ab"),
        (b"&#x1;", "ab"),
        (b"&#x0001;", "ab"),
        (b"&#x8;", "ab"),
        (b"&#xb;", "ab"),
        (b"&#xC;", "ab"),
        (b"&#xe;", "ab"),
        (b"&#x1f;", "ab"),
        (b"&#0;", "ab"),
        (b"&#8;", "ab"),
        (b"&#11;", "ab"),
        (b"&#12;", "ab"),
        (b"&#14;", "ab"),
        (b"&#31;", "ab"),
        (b"&#0027;", "ab"),
        # XML 1.0 characters stay.
        (b"&#x9;", "a\tb"),
        (b"&#10;", "a\nb"),
        (b"&#xD;", "a\rb"),
        (b"&#32;", "a b"),
        (b"&#x41;", "aAb"),
        (b"&#127;", "a\x7fb"),
    ],
)
def test_xml11_control_character_references(ref: bytes, expected: str) -> None:
    data = b"<?xml version='1.1' encoding='UTF-8'?><build><description>a" + ref + b"b</description></build>"
    assert parse_xml(data).findtext("description") == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (LEGACY_WINDOWS_1252, "caf\xe9 \u20ac build"),
        (b"<?xml version='1.1' encoding='ISO-8859-1'?><a><description>\xfc</description></a>", "\xfc"),
        (b"<?xml version='1.0' encoding='US-ASCII'?><a><description>plain</description></a>", "plain"),
        ("<a><description>\u00e9\u4e2d</description></a>".encode(), "\u00e9\u4e2d"),
    ],
    ids=["windows-1252", "latin-1", "ascii", "utf-8"],
)
def test_declared_encodings(data: bytes, expected: str) -> None:
    assert parse_xml(data).findtext("description") == expected


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_xml_is_refused(name: str) -> None:
    with pytest.raises(UnsafeXmlError) as info:
        parse_xml(HOSTILE[name])
    assert "root:" not in str(info.value)  # nothing from /etc/passwd leaks into the message


def test_unsafe_error_is_a_parse_error() -> None:
    assert issubclass(UnsafeXmlError, ParseError)
    assert issubclass(ParseError, ValueError)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n\t",
        b"<?xml version='1.1' encoding='UTF-8'?>\n",
        b"<?xml version='1.1' encoding='UTF-8'?>\n<build><result>SUCC",
        b"<build><result>SUCCESS</build>",
        b"<build></build><build/>",
        b"not xml at all",
        b"\x00\x01\x02",
        b"<?xml version='1.0' encoding='bogus-charset'?><a/>",
        b"<?xml version='1.0' encoding='shift_jis'?><a/>",
        b"<?xml version='1.0' encoding='UTF-16'?><a/>",
        b"<a>\xff\xfe</a>",
        b"<a>&undefined;</a>",
        b"<a>&#xD800;</a>",
        b"<a b='1' b='2'/>",
        b"<1a/>",
    ],
)
def test_unreadable_documents_raise_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_xml(data)
    assert not isinstance(info.value, UnsafeXmlError)
    assert 0 < len(str(info.value)) <= 160


def test_random_bytes_only_raise_parse_error() -> None:
    rng = random.Random(20240501)
    prefixes = [b"", b"<?xml version='1.1' encoding='UTF-8'?>", b"<build>", b"<!DOCTYPE x [", b"&#x"]
    for _ in range(3000):
        size = rng.randrange(0, 200)
        data = rng.choice(prefixes) + bytes(rng.randrange(256) for _ in range(size))
        with contextlib.suppress(ParseError):
            parse_xml(data)


def test_mutated_records_only_raise_parse_error() -> None:
    rng = random.Random(7)
    base = bytearray(LEGACY_WINDOWS_1252)
    alphabet = b"<>&;#x/!?'\"=[]%\x00\xff\x1b abc1"
    for _ in range(2000):
        mutated = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.choice(alphabet)
        with contextlib.suppress(ParseError):
            parse_xml(bytes(mutated))
