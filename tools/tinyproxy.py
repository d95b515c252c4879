"""A real HTTP proxy for tests: Debian's ``tinyproxy`` on a free 127.0.0.1 port with its own config.

It runs in the foreground (``-d``: no daemonizing, no pid file) as the user who starts it; as root
it warns that no ``User`` is set and keeps root, which tinyproxy allows. ``ConnectPort`` lets it
CONNECT only to the ports given (the fake Compass's), ``BasicAuth`` makes it answer 407 without the
credentials, and its log (``LogLevel Connect``) records each CONNECT so a test can tell that a
request really went through it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["TINYPROXY", "Tinyproxy", "free_port"]

TINYPROXY = shutil.which("tinyproxy") or next(
    (p for p in ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy") if Path(p).exists()), None
)


def free_port() -> int:
    """A port nothing listens on right now (the kernel's choice, released at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortTaken(RuntimeError):
    """Another process bound the port between ``free_port`` and tinyproxy's own bind."""


class Tinyproxy:
    """One tinyproxy process; ``start`` returns once its port accepts connections."""

    def __init__(
        self, workdir: Path, connect_ports: Sequence[int], credentials: tuple[str, str] | None = None
    ) -> None:
        if TINYPROXY is None:
            raise RuntimeError("tinyproxy is not installed")
        self.workdir = workdir
        self.connect_ports = list(connect_ports)
        self.credentials = credentials
        self.proc: subprocess.Popen[bytes] | None = None
        self._configure(free_port())

    def _configure(self, port: int) -> None:
        """Write the configuration for ``port`` (tinyproxy cannot be told to pick one itself)."""
        self.port = port
        self.log_path = self.workdir / f"tinyproxy-{port}.log"
        self.config_path = self.workdir / f"tinyproxy-{port}.conf"
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            f'LogFile "{self.log_path}"',
            "LogLevel Connect",
            "MaxClients 50",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
            *(f"ConnectPort {p}" for p in self.connect_ports),
        ]
        if self.credentials is not None:
            lines.append(f"BasicAuth {self.credentials[0]} {self.credentials[1]}")
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0, attempts: int = 5) -> Tinyproxy:
        """Start, on a new port when the chosen one was taken between choosing and binding."""
        for attempt in range(attempts):
            try:
                return self._start(timeout)
            except PortTaken:
                if attempt == attempts - 1:
                    raise
                self._configure(free_port())
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> Tinyproxy:
        assert TINYPROXY is not None
        self.proc = subprocess.Popen(
            [TINYPROXY, "-d", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.stop()
                if "Could not create listening sockets" in err:
                    raise PortTaken(self.port)
                raise RuntimeError(f"tinyproxy exited with {err}\n{self.log()}")
            try:
                if self._answers():
                    return self
                raise OSError("another process answers on the port")
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"tinyproxy did not accept connections within {timeout}s") from None
                time.sleep(0.02)  # polling a condition (the port), not waiting out a guess

    def _answers(self) -> bool:
        """Whether tinyproxy itself answers on the port (another listener there would accept too)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return b"Server: tinyproxy" in c.recv(400)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def connects(self, port: int) -> int:
        """How many CONNECT requests to 127.0.0.1:``port`` tinyproxy has logged."""
        return self.log().count(f"CONNECT 127.0.0.1:{port} ")

    def __enter__(self) -> Tinyproxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
