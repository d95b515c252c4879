"""One HTTP answer from the token endpoint or a bulk endpoint, read into plain data.

The transport only reads; what an answer means is ``answers.judge``'s decision alone. So the reply
keeps exactly what that needs: the status (None when nothing answered, with ``error`` saying why),
which request it answers (``stage``: the token request or the bulk one), the headers that matter
(``Retry-After``, ``Location``, the content type), the body parsed as JSON when it is JSON, and
otherwise the head of its text, enough for an HTML page's ``<title>``. A reply never holds an access
token (``read_token_reply`` hands it out apart from the reply).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from daemon.sinks.compass.answers import Answer

__all__ = ["TEXT_HEAD", "Reply", "Stage", "read_reply", "read_token_reply"]

Stage = Literal["token", "bulk"]
TEXT_HEAD = 64 * 1024  # characters of a non-JSON body kept: a page's title is near its top
_BODY_MAX = 4 * 1024 * 1024  # bytes of a body read; a 100-item answer is far smaller


@dataclass(frozen=True, slots=True)
class Reply:
    """What answered one request. ``renewed``: the bulk request was sent a second time with a new
    token after a 401 (so a 401 now is not a stale token)."""

    stage: Stage
    status: int | None
    content_type: str | None = None
    data: Any = None  # the body as JSON, when it parsed as JSON
    text: str = ""  # the head of the body when it is not JSON
    retry_after: str | None = None
    location: str | None = None
    error: str | None = None  # no answer: why (a connection failure, a timeout)
    renewed: bool = False

    @classmethod
    def failed(cls, stage: Stage, error: str) -> Reply:
        return cls(stage, None, error=error)

    @property
    def is_json(self) -> bool:
        return self.data is not None

    def answer(self) -> Answer:
        """The answer as ``daemon.sinks.compass.answers`` names what answered (status, content type,
        an HTML page's title, a redirect's host)."""
        body = self.text if not self.is_json else json.dumps(self.data)[:TEXT_HEAD]
        return Answer(self.status or 0, self.content_type, body, self.location)

    def summary(self) -> str:
        """The reply in one phrase for a log line or an error."""
        if self.status is None:
            return f"{self.stage}: no answer: {self.error}"
        return f"{self.stage}: {self.answer().describe()}"


async def _read(resp: aiohttp.ClientResponse) -> str:
    """The body, at most ``_BODY_MAX`` bytes of it (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    while size < _BODY_MAX:
        chunk = await resp.content.read(_BODY_MAX - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _json(text: str) -> Any:
    """The body as JSON, or None; an HTML page never counts as JSON, whatever it declares."""
    if not text.strip() or text.lstrip().startswith("<"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _reply(resp: aiohttp.ClientResponse, stage: Stage, text: str, data: Any) -> Reply:
    return Reply(
        stage,
        resp.status,
        resp.headers.get("Content-Type"),
        data,
        "" if data is not None else text[:TEXT_HEAD],
        resp.headers.get("Retry-After"),
        resp.headers.get("Location"),
    )


async def read_reply(resp: aiohttp.ClientResponse) -> Reply:
    """A bulk endpoint's answer, read whole (bounded). JSON is recognised by parsing, not by the
    declared content type alone."""
    text = await _read(resp)
    return _reply(resp, "bulk", text, _json(text))


async def read_token_reply(resp: aiohttp.ClientResponse) -> tuple[Reply, str | None]:
    """The token endpoint's answer and the access token in it (None: there is none). The reply
    itself never holds the token: it may end up in a log line or a status."""
    text = await _read(resp)
    data = _json(text)
    token: str | None = None
    if isinstance(data, dict) and "access_token" in data:
        value = data["access_token"]
        token = value if isinstance(value, str) and value else None
        data = {**data, "access_token": "(withheld)"}
    return _reply(resp, "token", text, data), token
