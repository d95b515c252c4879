"""The hidden ConsoleNotes Jenkins embeds in console logs.

A real log is not plain text: the user of a cause is a serialized, MAC'd hyperlink note and every
``[Pipeline]`` marker has a hidden note before it. A reader of logs has to cope with those bytes, so
the fake writes them as Jenkins does.
"""

from __future__ import annotations

import base64
import gzip
import hashlib


def _console_note_user(user: str) -> bytes:
    """A new-style (MAC'd) hyperlink ConsoleNote: ESC[8mha:////4...ESC[0m."""
    payload = gzip.compress(
        b"\xac\xed\x00\x05sr\x00\x1ehudson.console.HyperlinkNote" + user.encode(), mtime=0
    )
    mac = hashlib.sha256(b"console-note:" + user.encode()).digest()
    raw = b"\xff\xff\xff\xe0" + mac + len(payload).to_bytes(4, "big") + payload
    return b"\x1b[8mha:" + base64.b64encode(raw) + b"\x1b[0m"


def _hidden_note(label: str) -> bytes:
    """The hidden note Pipeline puts before each ``[Pipeline]`` marker."""
    raw = b"\xff\xff\xff\xe0" + hashlib.sha256(label.encode()).digest() + b"\x00\x00\x00\x10"
    return b"\x1b[8mha:" + base64.b64encode(raw) + b"\x1b[0m"
