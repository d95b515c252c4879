"""``buildtail status``: what the daemon's state database says, read while the daemon runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from daemon.config import Settings
from daemon.store import Store

__all__ = ["status_report"]


def _age(ms: int | None, now_ms: int) -> str:
    if ms is None:
        return "never"
    seconds = max(0, (now_ms - ms) // 1000)
    when = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if seconds < 120:
        return f"{seconds}s ago ({when})"
    if seconds < 7200:
        return f"{seconds // 60}m ago ({when})"
    return f"{seconds // 3600}h ago ({when})"


def status_report(settings: Settings) -> tuple[list[str], bool]:
    """Report lines, and whether anything needs attention (paused delivery or dead letters)."""
    store = Store(settings.state_dir, readonly=True)
    try:
        now = time.time_ns() // 1_000_000
        depth = store.outbox_depth()
        by_state = store.outbox_by_state()
        oldest = store.oldest_queued_ms()
        paused, paused_since = store.delivery_state()
        dead = store.dead_letters()
        budget = store.get_meta_json("budget")
        lines = [f"state database   {store.path}"]
        detail = ", ".join(f"{n} {s}" for s, n in sorted(by_state.items()))
        lines.append(f"queue            {depth} event(s)" + (f" ({detail})" if detail else ""))
        lines.append(f"oldest queued    {_age(oldest, now) if oldest else '-'}")
        if depth and (error := store.last_error()):
            lines.append(f"last error       {error}")
        lines.append(f"last delivery    {_age(store.get_meta_int('last_delivery_ms'), now)}")
        if paused:
            lines.append(f"delivery         PAUSED since {_age(paused_since, now)}: {paused}")
        else:
            lines.append("delivery         running" + (" (dry run)" if settings.compass is None else ""))
        if budget:
            lines.append(
                f"rate budget      {budget['limit']}/min, burst {budget['burst']}: "
                f"{budget['sent_last_minute']} request(s) in the last minute, "
                f"{budget['tokens']:.1f} token(s) left ({_age(budget['at_ms'], now)})"
            )
        lines.append(f"dead letters     {len(dead)}")
        for d in dead:
            lines.append(f"  {d.pipeline_id} seq {d.seq}: HTTP {d.status}: {d.error}"[:400])
        return lines, bool(paused or dead)
    finally:
        store.close()
