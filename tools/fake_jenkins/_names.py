"""How an item's name becomes a directory name and a full name (branch-api's mangling and encoding).

A multibranch branch such as ``feature/login`` lives in a mangled directory but is known by an
encoded full name; the home needs both to place and to find branch jobs, and tests need the
mangling to predict where Jenkins puts them.
"""

from __future__ import annotations

import hashlib


def mangle_branch_name(name: str) -> str:
    """Simplified, deterministic version of branch-api ``NameMangler.apply``.

    Unchanged when the name is at most 32 characters of ``[A-Za-z0-9-]`` and does not start with
    ``-``; otherwise ``/\\._`` and space become ``-``, other characters ``_XX`` (UTF-8 hex), and
    ``.`` plus the first 5 hex digits of the name's sha256 is appended.
    """
    safe = (
        len(name) <= 32
        and not name.startswith("-")
        and all(c.isascii() and (c.isalnum() or c == "-") for c in name)
    )
    if safe and name:
        return name
    out: list[str] = []
    for ch in name:
        if ch in "/\\._ ":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch == "-"):
            out.append(ch)
        else:
            out.extend(f"_{b:02x}" for b in ch.encode("utf-8"))
    return "".join(out)[:32] + "." + hashlib.sha256(name.encode("utf-8")).hexdigest()[:5]


def _encode_item_name(name: str) -> str:
    """branch-api NameEncoder (subset): characters not allowed in item names are %-encoded."""
    return "".join(f"%{ord(c):02X}" if c in '%/\\:?#*|<>"[]' else c for c in name)


def _decode_item_name(name: str) -> str:
    out, i = [], 0
    while i < len(name):
        hexdigits = name[i + 1 : i + 3]
        if name[i] == "%" and len(hexdigits) == 2 and all(c in "0123456789abcdefABCDEF" for c in hexdigits):
            out.append(chr(int(name[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(name[i])
            i += 1
    return "".join(out)
