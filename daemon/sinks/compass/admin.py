"""Compass event sources and derived metrics: ``compass setup`` makes them right, ``doctor`` explains.

An event source is identified by ``externalEventSourceId`` *and* ``eventType``. Build events need a
source of type BUILD and deployment events one of type DEPLOYMENT, with the same id; a CUSTOM source
with that id (as in widely copied examples) is what makes builds show as grey "other" events.
``setup`` creates and attaches what is missing and connects the derived metrics the events feed
(idempotent); ``doctor`` only reads and explains.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from daemon.config import CompassSettings, Settings
from daemon.sinks.compass.graphql import (
    EVENT_TYPES,
    CompassGraphQL,
    EventSource,
    GraphQLError,
    NotCompassError,
)
from daemon.sinks.compass.http import ProxySettingError, route
from daemon.sinks.compass.metrics import check_metrics, connect_metrics
from daemon.sinks.compass.reach import explain

__all__ = ["Target", "doctor", "receiving", "setup", "setup_sources", "targets"]


@dataclass(frozen=True, slots=True)
class Target:
    """One (externalEventSourceId, component) pair this configuration sends to, and the types of the
    events it sends there; component may be None."""

    external_id: str
    component_id: str | None
    event_types: tuple[str, ...] = ("BUILD",)


def _types(deployments: bool) -> tuple[str, ...]:
    """Every run can be a build: a deployment rule's job still reports a build when the run lacks
    the rule's parameter, so BUILD is always there."""
    return ("BUILD", "DEPLOYMENT") if deployments else ("BUILD",)


def targets(settings: Settings, jobs: Iterable[tuple[str, str]]) -> list[Target]:
    """Every (event source, component) pair the configuration sends to, with its event types.

    ``jobs`` are (source name, job full name) pairs. The event source id, the component and the
    kinds of event of a job come from the settings, which the daemon asks too, so setup attaches
    exactly what the daemon sends to. With a per-host template all jobs share one source, attached
    to every mapped component, and it carries deployments as soon as ``compass.deployments`` has a
    rule (the jobs of log and result-file sources are not known before their runs).
    """
    assert settings.compass is not None
    compass = settings.compass
    if "{job}" not in compass.event_source:
        external = settings.event_source_id("")
        components: list[str | None] = [*dict.fromkeys(r.component_id for r in compass.components)]
        if not components:
            components.append(None)
        return [Target(external, c, _types(bool(compass.deployments))) for c in components]
    merged: dict[tuple[str, str | None], set[str]] = {}
    for source, job in jobs:
        key = (settings.event_source_id(job), settings.component_for(job))
        merged.setdefault(key, set()).update(settings.event_types(source, job))
    return [Target(e, c, tuple(t for t in EVENT_TYPES if t in kinds)) for (e, c), kinds in merged.items()]


def _sources(wanted: list[Target]) -> list[tuple[str, str]]:
    """The (external id, event type) pairs of the targets, each once, in order."""
    return list(dict.fromkeys((t.external_id, kind) for t in wanted for kind in t.event_types))


def receiving(wanted: list[Target]) -> dict[str, list[str]]:
    """Each mapped component -> the event types it receives."""
    kinds: dict[str, set[str]] = {}
    for target in wanted:
        if target.component_id is not None:
            kinds.setdefault(target.component_id, set()).update(target.event_types)
    return {c: [t for t in EVENT_TYPES if t in k] for c, k in kinds.items()}


async def setup_sources(
    client: CompassGraphQL, cloud_id: str, wanted: list[Target]
) -> tuple[list[str], bool]:
    """Creates the missing event sources (of each target's types) and attaches them; returns one
    line per source and attachment, and whether anything changed. Idempotent."""
    lines: list[str] = []
    changed = False
    sources: dict[tuple[str, str], EventSource] = {}
    for external, kind in _sources(wanted):
        found = await client.find(cloud_id, external, kind)
        if found is None:
            found = await client.create(cloud_id, external, kind)
            lines.append(f"created event source {external!r} (type {kind})")
            changed = True
        else:
            lines.append(f"event source {external!r} (type {kind}) exists")
        sources[(external, kind)] = found
    attached: dict[str, set[str]] = {}
    for target in wanted:
        component = target.component_id
        if component is None:
            lines.append(
                f"event source {target.external_id!r} is not mapped to a component (compass.components); "
                "events without componentId only show once it is attached to one"
            )
            continue
        if component not in attached:
            attached[component] = {s.id for s in await client.component_sources(component)}
        for kind in target.event_types:
            source = sources[(target.external_id, kind)]
            label = f"event source {target.external_id!r} (type {kind})"
            if source.id in attached[component]:
                lines.append(f"{label} is attached to {component}")
                continue
            await client.attach(component, source)
            attached[component].add(source.id)
            lines.append(f"attached {label} to {component}")
            changed = True
    return lines, changed


async def setup(client: CompassGraphQL, cloud_id: str, wanted: list[Target]) -> list[str]:
    """Event sources, attachments, then the derived metrics of each mapped component; one line per
    thing found or done. Idempotent: a second run sends no mutation."""
    lines, _ = await setup_sources(client, cloud_id, wanted)
    return lines + await connect_metrics(client, receiving(wanted))


_CONSEQUENCE = {
    "BUILD": 'This is what makes builds show as grey "other" events and leaves the build success rate wrong.',
    "DEPLOYMENT": (
        "Deployment events need a source of their own, of type DEPLOYMENT, with this id: without it "
        "Compass does not count them as deployments, and Deployment Frequency and Deployment Time "
        "stay empty."
    ),
}


def _wrong_type(external: str, kind: str, other: list[str], sent: set[str]) -> str:
    text = (
        f"event source {external!r} exists only with type {', '.join(other)}, not {kind}. "
        f"{_CONSEQUENCE.get(kind, '')} Fix: run `buildtail compass setup --config PATH`, which "
        f"creates the {kind} source and attaches it"
    )
    obsolete = [t for t in other if t not in sent]  # a BUILD source beside a missing DEPLOYMENT one stays
    if obsolete:
        return f"{text}; then detach the {', '.join(obsolete)} source from the component in Compass."
    return f"{text}."


async def doctor(
    client: CompassGraphQL, compass: CompassSettings, wanted: list[Target]
) -> tuple[list[str], int]:
    """Read-only checks; returns (report lines, number of problems)."""
    lines: list[str] = []
    problems = 0

    def ok(text: str) -> None:
        lines.append(f"ok       {text}")

    def bad(text: str) -> None:
        nonlocal problems
        problems += 1
        lines.append(f"PROBLEM  {text}")

    try:
        ok(f"connecting to {compass.site_url} {route(compass, compass.site_url).describe()}")
    except ProxySettingError as exc:
        bad(f"the proxy setting cannot be used: {exc}")
        return lines, problems
    try:
        cloud_id = await client.tenant_cloud_id()
        if cloud_id == compass.cloud_id:
            ok(f"{compass.site_url} answers; its cloudId matches compass.cloud_id")
        else:
            bad(
                f"{compass.site_url} has cloudId {cloud_id!r} but compass.cloud_id is {compass.cloud_id!r}: "
                "set compass.cloud_id to the site's"
            )
    except NotCompassError as exc:
        bad(str(exc))
    except GraphQLError as exc:
        if exc.cause is not None:  # not reachable at all: the checks after this one would fail alike
            bad(await explain(exc.cause, compass, compass.site_url))
            return lines, problems
        bad(f"the site does not answer: {exc}")
    looked: dict[tuple[str, str], EventSource | None] = {}

    async def find(external: str, kind: str) -> EventSource | None:
        if (external, kind) not in looked:
            looked[(external, kind)] = await client.find(compass.cloud_id, external, kind)
        return looked[(external, kind)]

    try:
        for external, kind in _sources(wanted):
            if await find(external, kind) is not None:
                ok(f"event source {external!r} exists with type {kind}")
                continue
            other = [t for t in EVENT_TYPES if t != kind and await find(external, t) is not None]
            if other:
                sent = {t for target in wanted if target.external_id == external for t in target.event_types}
                bad(_wrong_type(external, kind, other, sent))
            else:
                bad(
                    f"event source {external!r} of type {kind} does not exist: run "
                    "`buildtail compass setup --config PATH` (or set compass.auto_setup: true)"
                )
        ok("the credentials work (GraphQL answered)")
        attached: dict[str, set[str]] = {}
        for target in wanted:
            component = target.component_id
            found = [(k, s) for k in target.event_types if (s := looked.get((target.external_id, k)))]
            if component is None or not found:
                continue
            if component not in attached:
                attached[component] = {s.id for s in await client.component_sources(component)}
            for kind, source in found:
                label = f"event source {target.external_id!r} (type {kind})"
                if source.id in attached[component]:
                    ok(f"{label} is attached to {component}")
                else:
                    bad(
                        f"{label} is not attached to {component}: run `buildtail compass setup --config PATH`"
                    )
        for healthy, text in await check_metrics(client, receiving(wanted)):
            (ok if healthy else bad)(text)
    except GraphQLError as exc:
        if exc.status in (401, 403) and not isinstance(exc, NotCompassError):
            bad(f"{exc}: check compass.email and the API token (it must belong to that account)")
        else:
            bad(str(exc))
    return lines, problems
