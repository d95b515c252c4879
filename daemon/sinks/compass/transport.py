"""The Compass HTTP API as buildtail uses it: one POST per event, answers classified.

``CompassTransport`` is the Compass sink's side of the transport seam (``daemon.sinks.Transport``):
HTTPS to Compass, each answer read by ``who_answered`` and turned into a ``SendResult`` by
``classify`` - where a 429 (and every other answer) is handled.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from daemon.config import CompassSettings
from daemon.sinks import SendResult
from daemon.sinks.compass.answers import NOT_COMPASS_HINT, Answer, who_answered
from daemon.sinks.compass.http import open_session

__all__ = ["CompassTransport", "classify", "parse_retry_after"]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header in either form (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify(answer: Answer, retry_after: str | None = None) -> SendResult:
    """What the sender does with one answer. Who answered is ``who_answered``'s decision: only
    Compass's own 202 is ``accepted``; an answer from something else is ``not_compass`` (kept,
    retried, and delivery pauses if it goes on)."""
    status = answer.status
    who = who_answered(answer)
    if who == "compass_accepted":
        return SendResult("accepted", status, "")
    if who == "not_compass":
        hint = NOT_COMPASS_HINT
        if 300 <= status < 400:
            hint += ", or compass.base_url is not the site's API address"
        return SendResult("not_compass", status, f"{answer.describe()}; {hint}", answer=answer)
    # an HTML page is named by its title, not pasted into the logs and the status
    detail = (answer.describe() if answer.html else answer.body.strip()[:2000]) or f"HTTP {status}"
    if status in (408, 425, 429) or status >= 500:
        return SendResult("retry", status, detail, parse_retry_after(retry_after))
    if status in (401, 403):
        return SendResult("unauthorized", status, detail)
    if status == 404:
        return SendResult("not_found", status, detail)
    return SendResult("rejected", status, detail)


class CompassTransport:
    """One aiohttp session for the process; explicit timeouts; redirects never followed."""

    def __init__(self, settings: CompassSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(
                total=self._settings.timeout, connect=min(10.0, self._settings.timeout)
            )
            self._session = open_session(self._settings, timeout, limit_per_host=4)
        return self._session

    async def send(self, body: dict[str, Any]) -> SendResult:
        session = self._open()
        try:
            token = self._settings.token()
        except (OSError, UnicodeDecodeError) as exc:
            return SendResult("unauthorized", None, f"cannot read compass.api_token_file: {exc}")
        headers = {
            "Authorization": aiohttp.encode_basic_auth(self._settings.email, token),
            "Content-Type": "application/json",
        }
        data = json.dumps(body, separators=(",", ":")).encode()
        try:
            async with session.post(
                self._settings.events_url, data=data, headers=headers, allow_redirects=False
            ) as resp:
                answer = Answer(
                    resp.status,
                    resp.headers.get("Content-Type"),
                    await resp.text(errors="replace"),
                    resp.headers.get("Location"),
                )
                return classify(answer, resp.headers.get("Retry-After"))
        except TimeoutError:
            return SendResult("retry", None, f"no answer within {self._settings.timeout:g}s")
        except aiohttp.ClientError as exc:
            return SendResult("retry", None, f"{type(exc).__name__}: {exc}")
        except OSError as exc:
            return SendResult("retry", None, f"{type(exc).__name__}: {exc.strerror or exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
