"""The sinks this build knows: adding a destination is its subpackage plus a line here.

``SINKS`` names each sink and how it is opened from the settings. The recorder queues every update
for each sink ``queued_for`` the settings name; the delivery opens the same ones and runs one
delivery loop per sink.
"""

from __future__ import annotations

from collections.abc import Callable

from daemon.config import Settings
from daemon.sinks import Sink, Transport
from daemon.sinks.compass.sink import NAME as COMPASS
from daemon.sinks.compass.sink import open_compass
from daemon.store import Store

__all__ = ["SINKS", "open_sinks", "queued_for"]

# name -> (whether the settings send to it, how it is opened). Compass is always one: without a
# ``compass`` section its events go to stdout (a dry run).
Opener = Callable[..., Sink]
SINKS: dict[str, tuple[Callable[[Settings], bool], Opener]] = {
    COMPASS: (lambda settings: True, open_compass),
}


def queued_for(settings: Settings) -> tuple[str, ...]:
    """The sinks a new update gets an outbox row for."""
    return tuple(name for name, (wanted, _) in SINKS.items() if wanted(settings))


def open_sinks(
    settings: Settings, store: Store, *, dry_run: bool, transport: Transport | None = None
) -> list[Sink]:
    """The configured sinks, ready to send; ``transport`` replaces the first one's (tests, bench)."""
    sinks: list[Sink] = []
    for name in queued_for(settings):
        opener = SINKS[name][1]
        sinks.append(opener(settings, store, dry_run=dry_run, transport=transport if not sinks else None))
    return sinks
