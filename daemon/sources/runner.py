"""What the service asks of every kind of source: the ``Runner`` protocol, and what each one is given.

A runner owns one configured source: its discovery, its catch-up after a restart, its watches, its
retries and its polling schedule. The service only runs the loop: it waits until the earliest
runner's ``deadline`` or a hint, hands each hint to the runner whose watches produced it, and lets
every runner do what is ``due``. Whatever a runner finds goes through the shared ``Recorder``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from daemon.config import SourceSettings
from daemon.ops.metrics import Metrics
from daemon.recorder import Recorder
from daemon.sources.watch import Accept, Hint, InotifyReader
from daemon.store import Store

__all__ = ["Runner", "RunnerContext", "Summary"]


@dataclass(frozen=True, slots=True)
class RunnerContext:
    """The shared parts a runner works with."""

    host: str
    store: Store
    recorder: Recorder
    reader: InotifyReader | None  # None when no source uses inotify
    metrics: Metrics | None = None
    changelog: bool = False  # a sink needs each run's commits (Jira's issue keys)


@dataclass(frozen=True, slots=True)
class Summary:
    """What a runner contributes to the ``ready:`` line and systemd's status."""

    jobs: int = 0
    in_progress: int = 0
    file_source: bool = False


class Runner(Protocol):
    name: str

    @property
    def cfg(self) -> SourceSettings:
        """The settings it was made from: a reload that changes them replaces the runner."""

    async def start(self, *, first_start: bool) -> None:
        """Discovers, catches up on what happened while the daemon was down and puts the watches in
        place: done before the daemon is ready. ``first_start``: the history policy meets this source
        for the first time (``HistoryPolicy.first_look``), so only what is in progress is worth reading."""

    def deadline(self) -> float:
        """The ``time.monotonic()`` at which ``due`` has work next."""

    async def due(self) -> None:
        """Does whatever is due now: claimed hints, retries, polls and scans."""

    def claim(self, hint: Hint) -> None:
        """A hint from this runner's own watches; the work it calls for is done by the next ``due``."""

    def overflow(self) -> None:
        """The kernel dropped hints: look at everything again soon."""

    def wanted(self) -> tuple[dict[Path, Accept | None], set[Path]]:
        """The directories to watch (each with its accept rule), and those whose file appends matter."""

    def summary(self) -> Summary: ...

    async def close(self) -> None:
        """Releases watches and open files; the runner is not used again."""
