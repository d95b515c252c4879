"""Plain value types shared by the parsers and the daemon.

The daemon never sees XML or raw log bytes: it only sees these frozen records, so the parsing rules
(what counts as "finished", which start time wins) live in one place and are tested in isolation.
"""

from __future__ import annotations

from dataclasses import dataclass


class ParseError(ValueError):
    """The bytes are not (yet) a readable record.

    Jenkins rewrites some files in place, so a reader can catch them half-written; the caller is
    expected to retry after the next write instead of treating this as fatal.
    """


class UnsafeXmlError(ParseError):
    """The XML declares a DTD, an entity or an external reference.

    Jenkins never writes those, so such a file is hostile or corrupt; it is refused, never expanded.
    """


@dataclass(frozen=True, slots=True)
class BuildXml:
    """Facts read from the direct children of a build.xml root (nested copies are never trusted)."""

    root_tag: str
    result: str | None
    completed: bool | None
    number: int | None
    legacy_id: str | None
    start_time_ms: int | None
    timestamp_ms: int | None
    duration_ms: int | None
    display_name: str | None
    description: str | None
    built_on: str | None
    causes: tuple[str, ...]
    commit: str | None
    branch: str | None
    parameters: tuple[tuple[str, str], ...] = ()  # the run's build parameters, (name, value)

    @property
    def finished(self) -> bool:
        # Pipeline writes build.xml while running; old workflow-job versions have no <completed>,
        # so only an explicit false vetoes a present result.
        return self.result is not None and self.completed is not False

    @property
    def started_ms(self) -> int | None:
        # <startTime> is when the build really began; <timestamp> (Run creation) is only a few ms
        # earlier but can be shifted by the legacy migration's time zone, so it is the fallback.
        return self.start_time_ms if self.start_time_ms is not None else self.timestamp_ms


@dataclass(frozen=True, slots=True)
class LogFacts:
    """What the console log tells before (or without) a final build.xml."""

    finished_result: str | None
    timed_out: bool
    causes: tuple[str, ...]
    commit: str | None
