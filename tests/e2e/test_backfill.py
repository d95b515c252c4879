"""``buildtail backfill``: history sent oldest first, paced, resumable, never twice, beside the daemon."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import REPO, TOKEN, Daemon, make_config, wait_until
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]
HOUR_MS = 3_600_000


def _pid(event: dict[str, Any]) -> str:
    return str(event["event"]["build"]["buildProperties"]["pipeline"]["pipelineId"])


def _history(home: JenkinsHome) -> list[str]:
    """Six finished runs over the last five days and one from ten days ago."""
    now = int(time.time() * 1000)
    job = home.job("app")
    other = home.job("team/lib", kind="pipeline")
    written = []
    for hours_ago, j in [(240, job), (100, job), (80, other), (50, job), (30, other), (10, job), (2, other)]:
        run = j.start(start_ms=now - hours_ago * HOUR_MS)
        run.finish("SUCCESS", duration_ms=60_000)
        written.append(f"{j.full_name}#{run.number}")
    return written


def _config(
    tmp: Path, home: JenkinsHome, compass: FakeCompass, limit: int = 120, burst: int = 2
) -> dict[str, Any]:
    cfg = make_config(tmp, home, compass)
    cfg["compass"]["rate_limit_per_minute"] = limit
    cfg["compass"]["burst"] = burst
    return cfg


def _command(daemon: Daemon, *args: str) -> list[str]:
    return [sys.executable, "-m", "daemon", "backfill", "--config", str(daemon.config_path), *args]


def _backfill(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COMPASS_API_TOKEN=TOKEN)
    return subprocess.run(
        _command(daemon, *args), cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _start_backfill(daemon: Daemon, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, COMPASS_API_TOKEN=TOKEN)
    with open(log, "wb") as fh:
        return subprocess.Popen(_command(daemon, *args), cwd=REPO, env=env, stdout=fh, stderr=fh)


def _first_start(daemon: Daemon) -> None:
    daemon.start()
    assert daemon.stop() == 0


def test_backfill_sends_history_oldest_first_once_and_paced(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    written = _history(home)
    daemon = daemon_factory(_config(tmp_path, home, compass), start=False)
    _first_start(daemon)
    assert compass.events == [], "the first start sends no history"
    dry = _backfill(daemon, "--since", "5d", "--dry-run")
    out = dry.stderr
    assert dry.returncode == 0, out
    assert "6 finished run(s)" in out and "at 120 per minute" in out
    assert compass.events == [], "a dry run sends nothing"
    proc = _backfill(daemon, "--since", "5d")
    err = proc.stderr
    assert proc.returncode == 0, err
    assert "daemon is not running" in err and "Done: 6 event(s)" in err
    assert "\r" not in err and "\x1b" not in err, "no terminal, no bar: whole lines only"
    assert re.search(r"^\[#{30}\] 6/6 100%  ETA .+$", err, re.M), err
    assert len(re.findall(r"^\S+ \S+ INFO +buildtail\.sender: delivered \S+ #\d+ SUCCESSFUL", err, re.M)) == 6
    assert [_pid(e) for e in compass.events] == written[1:], "oldest first, nothing older than --since"
    times = [r.at for r in compass.requests]
    assert times[-1] - times[0] >= (6 - 2) / 2 - 0.2, "paced by the budget (2 per second after a burst of 2)"
    again = _backfill(daemon, "--since", "30d")
    assert again.returncode == 0
    assert [_pid(e) for e in compass.events] == [*written[1:], written[0]], (
        "a second backfill adds only the rest"
    )
    assert TOKEN not in err


def test_interrupted_backfill_resumes_without_duplicates(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    written = _history(home)
    daemon = daemon_factory(_config(tmp_path, home, compass, limit=61, burst=1), start=False)  # 1 per second
    _first_start(daemon)
    proc = _start_backfill(daemon, tmp_path / "backfill.log", "--since", "30d")
    compass.wait_for(lambda events: len(events) >= 2, timeout=20)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) != 0
    partial = len(compass.events)
    assert partial < len(written)
    resumed = _backfill(daemon, "--since", "30d")
    assert resumed.returncode == 0
    pids = [_pid(e) for e in compass.events]
    assert sorted(set(pids)) == sorted(written)
    assert len(pids) - len(set(pids)) <= 1, (
        "at most the one event in flight at the interruption is sent again"
    )


def test_backfill_beside_the_running_daemon_never_sends_twice_and_live_builds_go_first(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    written = _history(home)
    daemon = daemon_factory(_config(tmp_path, home, compass, limit=61, burst=1))
    log = tmp_path / "backfill.log"
    proc = _start_backfill(daemon, log, "--since", "30d")
    compass.wait_for(lambda events: len(events) >= 1, timeout=20)
    live = home.job("live")
    live.start(start_ms=int(time.time() * 1000) - 1000).finish("FAILURE", duration_ms=10)
    assert proc.wait(timeout=60) == 0
    err = log.read_text()
    assert "daemon is running" in err
    wait_until(lambda: "live#1" in [_pid(e) for e in compass.events], what="the live build")
    pids = [_pid(e) for e in compass.events]
    assert sorted(p for p in pids if p != "live#1") == sorted(written)
    assert len(pids) == len(set(pids)), "nothing sent twice"
    assert pids.index("live#1") < len(pids) - 2, "the live build did not wait for the whole backfill"
    assert daemon.stop() == 0


# --- on a terminal --------------------------------------------------------------------------------

BAR = re.compile(r"^\[[#.]{30}\] \d+/\d+ \d+%  ETA .+$")
BAR_PART = re.compile(r"\[[#.]{30}\]")
STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) +\S+: ")


def _on_a_terminal(cmd: list[str], columns: int = 160) -> tuple[str, int]:
    """Runs ``cmd`` with stdin, stdout and stderr on a pseudo-terminal; everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = dict(os.environ, COMPASS_API_TOKEN=TOKEN)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child and its terminal are gone
                    break
                if not chunk:
                    break
                out += chunk
        return out.decode(), proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def _screen(raw: str) -> list[str]:
    """What a terminal shows after ``raw``: carriage returns, newlines and ESC[K (erase to the end
    of the line) interpreted, characters overwriting what is under them."""
    lines, col, i = [""], 0, 0
    while i < len(raw):
        if raw.startswith("\x1b[K", i):
            lines[-1] = lines[-1][:col]
            i += 3
            continue
        ch = raw[i]
        assert ch != "\x1b", f"an escape sequence the bar has no need of: {raw[i : i + 8]!r}"
        if ch == "\r":
            col = 0
        elif ch == "\n":  # the terminal's output processing sends \r\n
            lines.append("")
            col = 0
        else:
            line = lines[-1].ljust(col)
            lines[-1] = line[:col] + ch + line[col + 1 :]
            col += 1
        i += 1
    return lines


def test_on_a_terminal_log_lines_go_above_the_progress_bar(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    """The backfill delivers (the daemon is down), so the sender's log lines, one per delivered
    run, come while the bar is shown: each must stand on a line of its own, and the bar below."""
    written = _history(home)
    daemon = daemon_factory(_config(tmp_path, home, compass, limit=240, burst=1), start=False)
    _first_start(daemon)
    raw, code = _on_a_terminal(_command(daemon, "--since", "30d"))
    assert code == 0, raw
    assert len(compass.events) == len(written)
    screen = [line for line in _screen(raw) if line]
    delivered = [i for i, line in enumerate(screen) if LOG.match(line) and ": delivered " in line]
    assert len(delivered) >= len(written), raw  # the terminal events at INFO, IN_PROGRESS too at DEBUG
    for line in screen:  # a log record only at the start of a line, the bar only alone on its line
        assert LOG.match(line) or not STAMP.search(line), f"a log line not at column 0: {line!r}\n{raw!r}"
        assert BAR.match(line) or not BAR_PART.search(line), f"a broken bar: {line!r}\n{raw!r}"
    bars = [i for i, line in enumerate(screen) if BAR.match(line)]
    assert len(bars) == 1, "one bar, redrawn in place, left as last drawn"
    assert screen[bars[0]].startswith(f"[{'#' * 30}] 7/7 100%")
    assert screen[bars[0] + 1].startswith("Done: 7 event(s) delivered")
    assert max(delivered) < bars[0], "log lines above the bar"
    # in the stream: a log line printed while the bar shows clears the bar's line first, ends with a
    # newline and is followed by the bar, drawn again
    records = [m for m in re.finditer(r"\r\x1b\[K(\d{4}-[^\r\n]*)\r\n(.)", raw) if "delivered" in m.group(1)]
    assert len(records) == len(delivered), raw
    assert all(m.group(2) == "[" for m in records[:-1]), "the bar is redrawn below each log line"
    assert TOKEN not in raw
