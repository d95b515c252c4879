"""The Compass sink: its request body, its credentials and site, its budget, its words, and the
auto-setup of an event source Compass does not know.

Everything the delivery loop needs to send a queued update to Compass, and nothing of the loop.
"""

from __future__ import annotations

import logging
from typing import Any

from daemon.clock import now_ms
from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.events import update_from_json
from daemon.sinks import SendResult, Sent, StdoutTransport, Transport
from daemon.sinks.compass.admin import Target, setup_sources
from daemon.sinks.compass.graphql import EVENT_TYPES, CompassGraphQL, GraphQLError
from daemon.sinks.compass.render import build_event, event_payload
from daemon.sinks.compass.transport import CompassTransport
from daemon.store import OutboxItem, Store

__all__ = ["NAME", "CompassSink", "open_compass"]

log = logging.getLogger("buildtail")

NAME = "compass"
PACED_MEMORY_S = 600.0  # where an earlier process had paced itself to is worth this long


def _bucket(settings: Settings, store: Store, dry_run: bool) -> TokenBucket:
    """The rate budget, rebuilt from the requests of the last minute (whichever process made them)."""
    if settings.compass is None or dry_run or not settings.compass.rate_limit_per_minute:
        return TokenBucket(0, 1)  # nothing to pace
    limit, burst = settings.compass.rate_limit_per_minute, settings.compass.burst
    now = now_ms()
    last = store.sink_fact(NAME, "budget")
    paced = None
    if (
        isinstance(last, dict)
        and last.get("limit") == limit
        and now - int(last.get("at_ms", 0)) < PACED_MEMORY_S * 1000
    ):
        paced = last.get("paced")
    return TokenBucket(
        limit,
        burst,
        sent_ms=store.recent_sends(now - 60_000, sink=NAME),
        paced_per_minute=float(paced) if isinstance(paced, int | float) else None,
        on_take=lambda at_ms: store.record_send(at_ms, sink=NAME),
    )


def _transport(settings: Settings, for_real: bool) -> Transport:
    if not for_real or settings.compass is None:
        return StdoutTransport()
    return CompassTransport(settings.compass)


def _cloud_id(settings: Settings) -> str:
    return settings.compass.cloud_id if settings.compass else "dry-run"


def open_compass(
    settings: Settings, store: Store, *, dry_run: bool, transport: Transport | None = None
) -> CompassSink:
    """The Compass sink as configured: over HTTPS, or to stdout for a dry run (or no ``compass``)."""
    for_real = not dry_run and settings.compass is not None
    return CompassSink(
        settings,
        transport=transport or _transport(settings, for_real),
        bucket=_bucket(settings, store, dry_run),
        cloud_id=_cloud_id(settings),
        for_real=for_real,
    )


class CompassSink:
    name = NAME
    title = "Compass"
    batch_size = 1  # Compass's events endpoint takes one event a request
    batch_window = 0.0

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Transport,
        bucket: TokenBucket,
        cloud_id: str,
        for_real: bool = True,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.bucket = bucket
        self.cloud_id = cloud_id
        self.for_real = for_real  # False: a dry run, events go to stdout

    async def reconfigure(self, new: Settings, store: Store, *, dry_run: bool) -> None:
        """A reload: new credentials, site or budget take effect for the next request; those in
        flight finish. The rendering follows the new settings at once."""
        old, self.settings = self.settings, new
        if new.compass == old.compass:
            return
        if (new.compass is None) != (old.compass is None):
            log.warning("compass section added or removed: restart buildtail to switch to or from a dry run")
            return
        old_transport, self.transport = self.transport, _transport(new, self.for_real)
        fresh = _bucket(new, store, dry_run)
        if (fresh.limit, fresh.burst) != (self.bucket.limit, self.bucket.burst):
            self.bucket = fresh
        self.cloud_id = _cloud_id(new)
        await old_transport.close()

    def event(self, item: OutboxItem) -> dict[str, Any]:
        """The request body without ``cloudId``: rendered from the update, or as an earlier release
        rendered it (it already carries its updateSequenceNumber)."""
        if item.update is None:
            if item.body is None:
                raise ValueError(f"outbox row {item.id} has neither an update nor a body")
            return item.body
        return build_event(update_from_json(item.update), item.seq, self.settings)

    def render(self, item: OutboxItem) -> dict[str, Any]:
        return {"cloudId": self.cloud_id, **self.event(item)}

    async def send_many(self, items: list[OutboxItem]) -> list[Sent]:
        """One request per event (the loop uses ``render`` and ``transport.send`` directly)."""
        sent: list[Sent] = []
        for item in items:
            body = self.render(item)
            sent.append(Sent(item, body, await self.transport.send(body)))
        return sent

    def describe(self, body: dict[str, Any], item: OutboxItem) -> str:
        name = event_payload(body).get("displayName")
        return str(name) if name else item.pipeline_id

    def route(self, body: dict[str, Any]) -> tuple[str | None, str | None]:
        """The event source and the component the event was sent to (the component only when
        ``compass.components`` names one: without it the event reaches no component's metrics)."""
        source = event_payload(body).get("externalEventSourceId") if body.get("event") else None
        component = body.get("componentId")
        return (
            None if source is None else str(source),
            None if component is None else str(component),
        )

    def pause_reason(self, result: SendResult, body: dict[str, Any]) -> str:
        if result.outcome == "unauthorized":
            return (
                f"Compass refused the credentials (HTTP {result.status}); check compass.email and the "
                "API token, then send SIGHUP (systemctl reload buildtail) or wait for the next check"
            )
        source = event_payload(body).get("externalEventSourceId")
        return (
            f"Compass does not know the event source {source!r} (HTTP 404: {result.detail[:200]}); "
            "run `buildtail compass setup --config PATH` or set compass.auto_setup: true"
        )

    async def create_missing(self, body: dict[str, Any]) -> bool:
        """404 from Compass: with auto_setup, create and attach the event source of the refused
        event's own type (a build's BUILD, a deployment's DEPLOYMENT), then resend. Only what the
        event needs: the derived metrics are ``compass setup``'s to connect (``doctor`` says so)."""
        compass = self.settings.compass
        if compass is None or not compass.auto_setup:
            return False
        external = event_payload(body)["externalEventSourceId"]
        event_type = next(iter(body["event"])).upper()  # {"event": {"deployment": {...}}}
        if event_type not in EVENT_TYPES:
            log.error("no event source to create for a %r event (%r)", event_type, external)
            return False
        component = body.get("componentId")
        client = CompassGraphQL(compass, self.bucket)
        try:
            lines, changed = await setup_sources(
                client, compass.cloud_id, [Target(external, component, (event_type,))]
            )
            for line in lines:
                log.info("compass setup: %s", line)
            # only a change is a reason to resend at once; if everything was already in place the
            # 404 has another cause, and delivery pauses instead of spending the budget on 404s
            return changed
        except GraphQLError as exc:
            log.error("could not create the event source %r (type %s): %s", external, event_type, exc)
            return False
        finally:
            await client.close()
