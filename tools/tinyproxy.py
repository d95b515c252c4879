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


class Tinyproxy:
    """One tinyproxy process; ``start`` returns once its port accepts connections."""

    def __init__(
        self, workdir: Path, connect_ports: Sequence[int], credentials: tuple[str, str] | None = None
    ) -> None:
        if TINYPROXY is None:
            raise RuntimeError("tinyproxy is not installed")
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / f"tinyproxy-{self.port}.log"
        self.config_path = workdir / f"tinyproxy-{self.port}.conf"
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            f'LogFile "{self.log_path}"',
            "LogLevel Connect",
            "MaxClients 50",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
            *(f"ConnectPort {p}" for p in connect_ports),
        ]
        if credentials is not None:
            lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
        self.config_path.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Tinyproxy:
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
                raise RuntimeError(f"tinyproxy exited with {self.proc.returncode}: {err}\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"tinyproxy did not accept connections within {timeout}s") from None
                time.sleep(0.02)  # polling a condition (the port), not waiting out a guess

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
