"""Wall-clock milliseconds, the unit of every time the daemon stores or sends.

One definition, so that the store's sequence numbers, the event times and the history cutoff all
read the same clock the same way.
"""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000
