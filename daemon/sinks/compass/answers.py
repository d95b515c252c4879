"""Who answered a request meant for Compass: Compass itself, or something in the way.

A proxy's block page or a captive portal answers a POST with ``200 OK`` and an HTML page; a login
wall answers with a redirect. Treating those as delivered loses the build, so only Compass's own
"accepted" answer (HTTP 202, no body, or at most a JSON one) removes an event, and everything that
looks like a page someone else served is named as such: its status, content type and the page's
``<title>`` or the redirect's host, so that an operator can tell the portal from Compass at a glance.
The events transport and the GraphQL client both decide with ``who_answered``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["NOT_COMPASS_HINT", "Answer", "Answerer", "page_title", "who_answered"]

NOT_COMPASS_HINT = "a proxy or captive portal may be in the way"
TITLE_MAX = 120  # characters of a page title kept in a log line or a status
_TITLE_SCAN = 64 * 1024  # a title is near the top: a huge page is not parsed to its end

Answerer = Literal["compass_accepted", "compass", "not_compass"]
# What the request expects from Compass: the events endpoint's 202, or GraphQL's (and
# tenant_info's) 200 with a JSON body.
Expected = Literal["event_accepted", "json"]


class _TitleParser(HTMLParser):
    """Collects the text of the first ``<title>``; scripts, comments and the rest are ignored."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.inside = False
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self.done:
            self.inside = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.inside:
            self.inside = False
            self.done = True

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.parts.append(data)


def page_title(text: str, limit: int = TITLE_MAX) -> str | None:
    """The first ``<title>`` of an HTML page, whitespace collapsed and control characters dropped,
    at most ``limit`` characters; None when there is none. Never raises on broken markup."""
    parser = _TitleParser()
    try:
        parser.feed(text[:_TITLE_SCAN])
        parser.close()
    except Exception:  # html.parser is lenient, but a page is untrusted input
        pass
    raw = "".join(parser.parts)
    title = " ".join("".join(c if c.isprintable() else " " for c in raw).split())
    if not title:
        return None
    return title if len(title) <= limit else title[: limit - 3].rstrip() + "..."


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json_type(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer as far as telling who sent it needs."""

    status: int
    content_type: str | None
    body: str
    location: str | None = None

    @property
    def media_type(self) -> str:
        return _media_type(self.content_type)

    @property
    def html(self) -> bool:
        if self.media_type in ("text/html", "application/xhtml+xml"):
            return True
        head = self.body.lstrip()[:15].lower()
        return head.startswith(("<!doctype html", "<html"))

    @property
    def title(self) -> str | None:
        return page_title(self.body) if self.html else None

    @property
    def location_host(self) -> str | None:
        if not self.location:
            return None
        try:
            host = urlsplit(self.location).hostname
        except ValueError:
            return None
        return host or "this host (a relative redirect)"

    def describe(self) -> str:
        """What answered, in one phrase: ``HTTP 200 text/html, page titled 'Access denied'``."""
        text = f"HTTP {self.status} {self.media_type or 'without a content type'}"
        if 300 <= self.status < 400:
            host = self.location_host
            return text + (f", redirect to {host}" if host else ", redirect without a Location")
        if (title := self.title) is not None:
            return text + f", page titled {title!r}"
        if self.html:
            return text + ", an HTML page without a title"
        return text + (", empty body" if not self.body.strip() else f", {len(self.body)} characters")

    def fields(self) -> dict[str, str | int | None]:
        """The same facts as separate fields, for ``buildtail status --json``."""
        return {
            "status": self.status,
            "content_type": self.media_type or None,
            "title": self.title,
            "location_host": self.location_host if 300 <= self.status < 400 else None,
        }


def who_answered(answer: Answer, expected: Expected = "event_accepted") -> Answerer:
    """The one decision on whether Compass answered, and whether with the answer expected.

    * ``compass_accepted``: for an event, HTTP 202 with no body or a JSON one (declared as JSON or
      undeclared): Compass documents 202 without a body, and a JSON acknowledgement is tolerated.
      For GraphQL and tenant_info, HTTP 200 with a JSON body (not an HTML page).
    * ``not_compass``: any other 2xx (200 from a block page or portal, 204, a 202 with a page), any
      redirect (a login wall: buildtail never follows one), 407 (a proxy wants credentials), and a
      401 or 403 that comes as an HTML page (a proxy's "access denied", not Compass's gateway).
    * ``compass``: everything else; the status decides what happens (retry, pause, dead letter).
      A 5xx page is retried anyway, and a 404 page is most likely the site's own.
    """
    status = answer.status
    body = answer.body.strip()
    media = answer.media_type
    if status == (202 if expected == "event_accepted" else 200):
        declared_json = not media or _is_json_type(media)
        if (expected == "event_accepted" and not body) or (declared_json and body and _is_json(body)):
            return "compass_accepted"
        if expected == "json" and not answer.html and _is_json(body):
            return "compass_accepted"  # JSON under a loose content type (text/plain) is still Compass's
        return "not_compass"
    if 200 <= status < 400 or status == 407:
        return "not_compass"
    if status in (401, 403) and answer.html:
        return "not_compass"
    return "compass"
