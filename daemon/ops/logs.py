"""Logging to stderr: plain lines on a terminal, ``<N>``-prefixed lines without a timestamp under
journald, or one JSON object per line (``log_format: json``) for log shippers; and ``LogOnce``, the
one way a persistent problem is reported once rather than on every attempt."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime

__all__ = ["FIELDS", "LogOnce", "ReportOnce", "about", "setup_logging"]

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    """journald stamps each line itself and reads the priority from a ``<N>`` prefix."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).splitlines())


def _under_journald() -> bool:
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


FIELDS = ("source", "path", "run")
"""What a log line is about, as ``extra=`` attributes: top-level keys of a JSON line when present."""


def about(*, source: str | None = None, path: object = None, run: str | None = None) -> dict[str, str]:
    """The ``extra=`` of a log call about a source, a file path or a run (its pipelineId), so that a
    log shipper can filter on them; the text formats keep saying them in the message."""
    given = {"source": source, "path": None if path is None else str(path), "run": run}
    return {key: value for key, value in given.items() if value is not None}


class _JsonFormatter(logging.Formatter):
    """One JSON object per line for log shippers: time, level, logger, message, the source, path
    and run the line is about (when it is about one), and the error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in FIELDS:
            if (value := record.__dict__.get(key)) is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    elif _under_journald():
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    logging.getLogger("watchdog").setLevel(logging.WARNING)


class ReportOnce:
    """The one answer to "is this problem news?": a key is news the first time, again only after
    ``every`` seconds (never, when None), or once it was ``clear``-ed because the problem went away.
    A daemon that retries every few seconds would otherwise bury the one line that matters under
    thousands of copies. Code that hands problems on instead of logging them asks ``fresh``;
    ``LogOnce`` logs the news itself."""

    def __init__(self, every: float | None = None) -> None:
        self._every = every
        self._reported: dict[Hashable, float] = {}

    def fresh(self, key: Hashable) -> bool:
        """Whether ``key`` is news now; if so, it counts as reported from now on."""
        now = time.monotonic()
        at = self._reported.get(key)
        if at is not None and (self._every is None or now - at < self._every):
            return False
        self._reported[key] = now
        return True

    def clear(self, key: Hashable) -> None:
        self._reported.pop(key, None)

    def clear_where(self, gone: Callable[[Hashable], bool]) -> None:
        """Clears every key ``gone`` accepts (a path that is fine again, whatever its problems were)."""
        for key in [k for k in self._reported if gone(k)]:
            del self._reported[key]

    def active(self, key: Hashable) -> bool:
        """Whether ``key`` was reported and has not been cleared since."""
        return key in self._reported


class LogOnce(ReportOnce):
    """``ReportOnce`` that logs the news to ``logger``."""

    def __init__(self, logger: logging.Logger, every: float | None = None) -> None:
        super().__init__(every)
        self._logger = logger

    def __call__(
        self, key: Hashable, level: int, msg: str, *args: object, extra: Mapping[str, object] | None = None
    ) -> bool:
        """Logs unless ``key`` was logged recently; returns whether it did."""
        if not self.fresh(key):
            return False
        self._logger.log(level, msg, *args, extra=extra)
        return True
