"""The OAuth 2.0 access token Jira's builds and deployments APIs want from an on-premises tool.

A Jira site admin creates OAuth credentials (a client id and a client secret) for the tool; the
tool trades them for a bearer token at ``https://api.atlassian.com/oauth/token`` with the
client-credentials grant. The body is the form Atlassian's own Jenkins plugin sent while it called
these APIs itself (1.4.5: ``client_id``, ``client_secret``, ``grant_type=client_credentials``, no
``audience``): that form is known to have worked, while the JSON body with ``audience`` that some
write-ups show is not confirmed by Atlassian's text. Should the endpoint refuse the form, the
refusal comes back as a ``TokenRefused`` carrying the endpoint's own answer (its status and error),
which ``answers`` turns into a pause that quotes it - never a silent loss.

The plugin asked for a new token for every submission; buildtail sends far more often, so the
token is kept until shortly before it expires. Its lifetime is ``expires_in`` when the answer has
one (Atlassian's plugin never read it, so it is an assumption that it is there), else
``ASSUMED_LIFETIME_S``: the plugin's own comment says 60 minutes. A wrong guess costs one 401: the
transport then asks for a new token once (``renew``) before it calls the credentials wrong.

Concurrent sends share one fetch: the fetch happens under a lock, and whoever waited on the lock
finds the new token cached. Neither the secret nor a token is ever logged or shown by ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from daemon.sinks.jira.reply import Reply, read_token_reply

__all__ = ["ASSUMED_LIFETIME_S", "ClientCredentials", "TokenRefused", "TokenSource"]

log = logging.getLogger(__name__)

ASSUMED_LIFETIME_S = 3600.0  # no expires_in in the answer: the 1.x plugin's comment says 60 minutes
# refresh this long before the expiry (a tenth of a short lifetime): a request in flight, clocks apart
MARGIN_S = 60.0


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """The client id and a way to read the secret: ``secret`` is called for each token request, so
    that a secret read from a file is read when it is needed and a rotated one is picked up. The
    secret appears in no ``repr``."""

    client_id: str
    secret: Callable[[], str] = field(repr=False)


class TokenRefused(Exception):
    """The token endpoint did not hand out a token: ``reply`` is its answer (status None: no answer
    at all, ``reply.error`` says why). ``answers.judge`` decides what that means."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.summary())
        self.reply = reply


@dataclass(slots=True)
class _Token:
    value: str = field(repr=False)
    expires_at: float  # on the source's clock


class TokenSource:
    """One cached bearer token for one set of credentials; ``get`` and ``renew`` are the only ways in.

    ``clock`` is monotonic seconds (``time.monotonic``); a test may hand in its own to move time."""

    def __init__(
        self,
        token_url: str,
        credentials: ClientCredentials,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self._credentials = credentials
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: _Token | None = None
        self.fetches = 0  # tokens fetched so far (a metric; never the token itself)

    def __repr__(self) -> str:
        state = "cached" if self._fresh() else "none"
        return f"TokenSource({self.token_url!r}, client_id={self._credentials.client_id!r}, token={state})"

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._token.expires_at

    async def get(self, session: aiohttp.ClientSession) -> str:
        """The cached token, or a new one when there is none or it is about to expire."""
        if self._token is not None and self._fresh():
            return self._token.value
        async with self._lock:
            if self._token is not None and self._fresh():  # fetched while this call waited
                return self._token.value
            return await self._fetch(session)

    async def renew(self, session: aiohttp.ClientSession, stale: str) -> str:
        """A new token in place of ``stale``, which the API has just refused (401). When another
        send already replaced it, that newer token is returned and nothing is fetched."""
        async with self._lock:
            if self._token is not None and self._token.value != stale and self._fresh():
                return self._token.value
            self._token = None
            return await self._fetch(session)

    def forget(self) -> None:
        """Drop the cached token (new credentials: the next send fetches one)."""
        self._token = None

    async def _fetch(self, session: aiohttp.ClientSession) -> str:
        """One token request; the caller holds the lock. Raises ``TokenRefused``."""
        try:
            secret = self._credentials.secret()
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise TokenRefused(Reply.failed("token", f"cannot read the client secret: {exc}")) from None
        form = {
            "grant_type": "client_credentials",
            "client_id": self._credentials.client_id,
            "client_secret": secret,
        }
        started = self._clock()
        try:
            async with session.post(self.token_url, data=form, allow_redirects=False) as resp:
                reply, value = await read_token_reply(resp)
        except TimeoutError:
            raise TokenRefused(Reply.failed("token", "no answer from the token endpoint in time")) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TokenRefused(Reply.failed("token", f"{type(exc).__name__}: {exc}")) from None
        if reply.status != 200 or value is None:
            raise TokenRefused(reply)
        expires_in = reply.data.get("expires_in") if isinstance(reply.data, dict) else None
        lifetime, source = _lifetime(expires_in)
        self._token = _Token(value, started + lifetime - min(MARGIN_S, lifetime / 10))
        self.fetches += 1
        log.info(
            "Jira access token fetched for client id %s, kept for %gs (%s)",
            self._credentials.client_id,
            lifetime,
            source,
        )
        return value


def _lifetime(expires_in: object) -> tuple[float, str]:
    """Seconds a token lives and where that came from: ``expires_in`` when it is a number (0 or
    less: not at all), else the assumed lifetime."""
    if not isinstance(expires_in, bool) and isinstance(expires_in, int | float | str):
        try:
            return max(0.0, float(expires_in)), "its expires_in"
        except ValueError:
            pass
    return ASSUMED_LIFETIME_S, "no expires_in: the assumed lifetime"
