"""The sinks this build knows: adding a destination is its subpackage plus a line here.

``SINKS`` names each sink, whether the settings configure it, whether it wants a given update
(``wants``: each sink decides for itself), and how it is opened. The recorder queues each update
for the sinks ``queued_for`` names; the delivery opens the configured ones and runs one delivery
loop per sink.

Compass is configured with a ``compass`` section, and also without one while there is no ``jira``
section either: then its events go to stdout (a dry run, as before Jira was a destination). With
only a ``jira`` section, Compass is not a destination at all (nothing is printed for it).

The sinks are opened at start only: a reload that adds or removes the ``jira`` section changes
nothing until a restart (``as_opened``), so no update is queued for a sink that nothing sends from,
and the one that sends keeps getting them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from daemon.config import Settings
from daemon.events import Update
from daemon.sinks import Sink, Transport
from daemon.sinks.compass.sink import NAME as COMPASS
from daemon.sinks.compass.sink import open_compass
from daemon.sinks.jira.sink import NAME as JIRA
from daemon.sinks.jira.sink import open_jira
from daemon.sinks.jira.wants import jira_wants
from daemon.store import Store

__all__ = ["SINKS", "SinkEntry", "as_opened", "configured", "open_sinks", "queued_for"]

Opener = Callable[..., Sink]


@dataclass(frozen=True, slots=True)
class SinkEntry:
    configured: Callable[[Sections], bool]
    # (settings, the new update, the store, the keys a deployment carries) -> queue it for this sink
    wants: Callable[[Settings, Update, Store, tuple[str, ...]], bool]
    opener: Opener


class Sections(Protocol):
    """What says which sinks are configured: the settings, or ``buildtail state``'s light reading."""

    @property
    def compass(self) -> object | None: ...

    @property
    def jira(self) -> object | None: ...


def _compass_configured(settings: Sections) -> bool:
    return settings.compass is not None or settings.jira is None


def _jira_configured(settings: Sections) -> bool:
    return settings.jira is not None


SINKS: dict[str, SinkEntry] = {
    COMPASS: SinkEntry(_compass_configured, lambda settings, *_: _compass_configured(settings), open_compass),
    JIRA: SinkEntry(_jira_configured, jira_wants, open_jira),
}


def as_opened(new: Settings, current: Settings) -> Settings:
    """``new`` (a reload) with the ``jira`` section as ``current`` has it when the reload would add or
    remove it: the sinks open stay the sinks updates are queued for until a restart."""
    if (new.jira is None) == (current.jira is None):
        return new
    return new.model_copy(update={"jira": current.jira})


def configured(settings: Sections) -> tuple[str, ...]:
    """The sinks the settings send to (each gets a delivery loop)."""
    return tuple(name for name, entry in SINKS.items() if entry.configured(settings))


def queued_for(
    settings: Settings, update: Update, store: Store, carried: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The sinks ``update`` gets an outbox row for: each configured sink that wants it."""
    return tuple(
        name
        for name, entry in SINKS.items()
        if entry.configured(settings) and entry.wants(settings, update, store, carried)
    )


def open_sinks(
    settings: Settings, store: Store, *, dry_run: bool, transport: Transport | None = None
) -> list[Sink]:
    """The configured sinks, ready to send; ``transport`` replaces the first one's (tests, bench)."""
    sinks: list[Sink] = []
    for name in configured(settings):
        opener = SINKS[name].opener
        sinks.append(opener(settings, store, dry_run=dry_run, transport=transport if not sinks else None))
    return sinks
