"""A captive portal on 127.0.0.1 for the tests that run buildtail's processes: it answers whatever is
asked with its sign-in page (HTTP 200, text/html) or a redirect to its login page, until it is
``let_through`` and then passes every request on to the fake Compass behind it, as a portal does
once the machine has signed in. A plain threaded HTTP server: the daemon and the commands reach it
as they would reach the real thing, and a test can switch it from any thread.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

__all__ = ["PORTAL_TITLE", "Portal"]

PORTAL_TITLE = "Example Corp Guest Network - Sign in"
PAGE = (
    "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>\n"
    f"<title>\n  {PORTAL_TITLE}\n</title>\n"
    "<style>body { font-family: sans-serif }</style></head>\n"
    "<body><h1>Welcome</h1><form method='post' action='/portal/login'>"
    "<input name='user'><input type='password' name='password'><button>Sign in</button></form>"
    "</body></html>\n"
)
_FORWARDED = ("Authorization", "Content-Type", "Accept", "User-Agent", "X-ExperimentalApi")

Mode = Literal["page", "redirect", "through"]


class Portal:
    """``mode``: ``page`` (200 with the sign-in page), ``redirect`` (302 to the login page) or
    ``through`` (forwarded to ``upstream``). ``answers`` counts what each request got."""

    def __init__(self, upstream: str) -> None:
        """``upstream``: the fake Compass's site root (FakeCompass.site_url)."""
        self.upstream = upstream.rstrip("/")
        self.mode: Mode = "page"
        self.answers: dict[str, int] = {"page": 0, "redirect": 0, "through": 0}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="portal", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def let_through(self) -> None:
        with self._lock:
            self.mode = "through"

    def __enter__(self) -> Portal:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        portal = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with portal._lock:
                    mode = portal.mode
                    portal.answers[mode] += 1
                if mode == "through":
                    self._forward(body)
                elif mode == "redirect":
                    self._send(302, b"", "text/html", {"Location": "https://portal.example.net/login"})
                else:
                    self._send(200, PAGE.encode(), "text/html; charset=utf-8")

            def _forward(self, body: bytes) -> None:
                headers = {k: v for k in _FORWARDED if (v := self.headers.get(k)) is not None}
                method = self.command
                request = urllib.request.Request(
                    portal.upstream + self.path, data=body or None, headers=headers, method=method
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        status, data, ctype = resp.status, resp.read(), resp.headers.get("Content-Type")
                except urllib.error.HTTPError as err:
                    status, data, ctype = err.code, err.read(), err.headers.get("Content-Type")
                self._send(status, data, ctype)

            def _send(
                self, status: int, data: bytes, ctype: str | None, extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        return Handler
