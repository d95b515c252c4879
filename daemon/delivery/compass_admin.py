"""Compass event sources: make sure each one this configuration sends to exists as BUILD and is attached.

An event source is identified by ``externalEventSourceId`` *and* ``eventType``. Build events need a
source of type BUILD; a CUSTOM source with the same id (as in widely copied examples) is what makes
builds show as grey "other" events. ``setup`` creates and attaches what is missing (idempotent);
``doctor`` only reads and explains.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from daemon.config import CompassSettings, Settings
from daemon.delivery.compass_graphql import EVENT_TYPES, CompassGraphQL, EventSource, GraphQLError
from daemon.events import job_matches

__all__ = ["Target", "doctor", "setup", "targets"]


@dataclass(frozen=True, slots=True)
class Target:
    """One (externalEventSourceId, component) pair this configuration sends to; component may be None."""

    external_id: str
    component_id: str | None


def targets(settings: Settings, job_names: Iterable[str]) -> list[Target]:
    """Every (event source, component) pair the configuration sends to.

    With a per-host template all jobs share one source, attached to every mapped component; with
    ``{job}`` in the template each job has its own source, attached to that job's component.
    """
    assert settings.compass is not None
    compass = settings.compass
    if "{job}" not in compass.event_source:
        external = compass.event_source.format(host=settings.host, job="")
        components: list[str | None] = [*dict.fromkeys(r.component_id for r in compass.components)]
        if not components:
            components.append(None)
        return [Target(external, c) for c in components]
    out: list[Target] = []
    for job in job_names:
        component = next((r.component_id for r in compass.components if job_matches(r.match, job)), None)
        target = Target(compass.event_source.format(host=settings.host, job=job), component)
        if target not in out:
            out.append(target)
    return out


async def setup(client: CompassGraphQL, cloud_id: str, wanted: list[Target]) -> list[str]:
    """Creates missing BUILD sources and attaches them; returns one line per action. Idempotent."""
    lines: list[str] = []
    sources: dict[str, EventSource] = {}
    for external in dict.fromkeys(t.external_id for t in wanted):
        found = await client.find(cloud_id, external)
        if found is None:
            found = await client.create(cloud_id, external)
            lines.append(f"created event source {external!r} (type BUILD)")
        else:
            lines.append(f"event source {external!r} (type BUILD) exists")
        sources[external] = found
    attached: dict[str, set[str]] = {}
    for target in wanted:
        if target.component_id is None:
            lines.append(
                f"event source {target.external_id!r} is not mapped to a component (compass.components); "
                "events without componentId only show once it is attached to one"
            )
            continue
        if target.component_id not in attached:
            attached[target.component_id] = {
                s.id for s in await client.component_sources(target.component_id)
            }
        source = sources[target.external_id]
        if source.id in attached[target.component_id]:
            lines.append(f"event source {target.external_id!r} is attached to {target.component_id}")
            continue
        await client.attach(target.component_id, source)
        attached[target.component_id].add(source.id)
        lines.append(f"attached event source {target.external_id!r} to {target.component_id}")
    return lines


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
        cloud_id = await client.tenant_cloud_id()
        if cloud_id == compass.cloud_id:
            ok(f"{compass.site_url} answers; its cloudId matches compass.cloud_id")
        else:
            bad(
                f"{compass.site_url} has cloudId {cloud_id!r} but compass.cloud_id is {compass.cloud_id!r}: "
                "set compass.cloud_id to the site's"
            )
    except GraphQLError as exc:
        bad(f"the site does not answer: {exc}")
    externals = list(dict.fromkeys(t.external_id for t in wanted))
    found: dict[str, EventSource] = {}
    try:
        for external in externals:
            source = await client.find(compass.cloud_id, external)
            if source is not None:
                found[external] = source
                ok(f"event source {external!r} exists with type BUILD")
                continue
            other = [
                t for t in EVENT_TYPES[1:] if await client.find(compass.cloud_id, external, t) is not None
            ]
            if other:
                bad(
                    f"event source {external!r} exists only with type {', '.join(other)}, not BUILD. "
                    'This is what makes builds show as grey "other" events and leaves the build '
                    "success rate wrong. Fix: run `buildtail compass setup --config PATH`, which "
                    "creates the BUILD source and attaches it; then detach the old source from the "
                    "component in Compass."
                )
            else:
                bad(
                    f"event source {external!r} of type BUILD does not exist: run "
                    "`buildtail compass setup --config PATH` (or set compass.auto_setup: true)"
                )
        ok("the credentials work (GraphQL answered)")
        for target in wanted:
            if target.component_id is None or target.external_id not in found:
                continue
            ids = {s.id for s in await client.component_sources(target.component_id)}
            if found[target.external_id].id in ids:
                ok(f"event source {target.external_id!r} is attached to {target.component_id}")
            else:
                bad(
                    f"event source {target.external_id!r} is not attached to {target.component_id}: run "
                    "`buildtail compass setup --config PATH`"
                )
    except GraphQLError as exc:
        if exc.status in (401, 403):
            bad(f"{exc}: check compass.email and the API token (it must belong to that account)")
        else:
            bad(str(exc))
    return lines, problems
