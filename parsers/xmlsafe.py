"""Hardened XML entry point: every XML byte string the daemon reads goes through here.

build.xml and config.xml live in a directory that other users and plugins can write to, so the
parser refuses DTDs and entities outright instead of trusting the content.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import cast

import defusedxml  # type: ignore[import-untyped, unused-ignore]
import defusedxml.ElementTree as DET  # type: ignore[import-untyped, unused-ignore]

from parsers.records import ParseError, UnsafeXmlError

# Jenkins writes XML 1.1, where references to C0 controls are legal; expat only speaks XML 1.0 and
# rejects them. They carry nothing a watcher needs (ANSI escapes in descriptions and the like).
_XML11_ONLY_CHAR_REF = re.compile(
    rb"&#(?:[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F])|0*(?:[0-8]|1[124-9]|2[0-9]|3[01]));"
)

_MAX_MESSAGE = 120


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def parse_xml(data: bytes) -> ET.Element:
    """Parse untrusted XML bytes; every failure becomes a ParseError so callers can simply retry."""
    if not data.strip():
        raise ParseError("empty document")
    cleaned = _XML11_ONLY_CHAR_REF.sub(b"", data)
    try:
        root = DET.fromstring(cleaned, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise UnsafeXmlError(f"unsafe XML refused: {_short(exc)}") from None
    except ET.ParseError as exc:
        raise ParseError(f"malformed XML: {_short(exc)}") from None
    except (ValueError, LookupError) as exc:
        # Unknown or multi-byte encodings declared in the prolog surface as these.
        raise ParseError(f"unreadable XML: {_short(exc)}") from None
    return cast(ET.Element, root)
