"""Everything between the outbox and Compass, for the daemon and for ``buildtail backfill`` alike.

A ``Delivery`` owns the transport (Compass over HTTPS, or stdout for a dry run), the rate budget,
the sender that drains the outbox through them, and the auto-setup of a missing event source. A
reload hands it new settings and it swaps what they change; everything queued stays queued.
"""

from __future__ import annotations

import asyncio
import logging

from daemon.clock import now_ms
from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.delivery.lock import DeliveryLock
from daemon.delivery.sender import Sender
from daemon.ops.metrics import Metrics
from daemon.sinks import StdoutTransport, Transport
from daemon.sinks.compass.admin import Target, setup_sources
from daemon.sinks.compass.graphql import EVENT_TYPES, CompassGraphQL, GraphQLError
from daemon.sinks.compass.transport import CompassTransport
from daemon.store import OutboxItem, Store, event_payload

__all__ = ["Delivery"]

log = logging.getLogger("buildtail")


PACED_MEMORY_S = 600.0  # where an earlier process had paced itself to is worth this long


def _bucket(settings: Settings, store: Store, dry_run: bool) -> TokenBucket:
    """The rate budget, rebuilt from the requests of the last minute (whichever process made them)."""
    if settings.compass is None or dry_run or not settings.compass.rate_limit_per_minute:
        return TokenBucket(0, 1)  # nothing to pace
    limit, burst = settings.compass.rate_limit_per_minute, settings.compass.burst
    now = now_ms()
    last = store.get_meta_json("budget")
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
        sent_ms=store.recent_sends(now - 60_000),
        paced_per_minute=float(paced) if isinstance(paced, int | float) else None,
        on_take=store.record_send,
    )


def _cloud_id(settings: Settings) -> str:
    return settings.compass.cloud_id if settings.compass else "dry-run"


class Delivery:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        dry_run: bool = False,
        transport: Transport | None = None,
        metrics: Metrics | None = None,
        lock: DeliveryLock | None = None,
    ) -> None:
        """``lock``: the daemon's; taken here if it is free, else by the sender once a backfill lets
        it go, and held until the sender stops (``close`` lets it go if the sender never ran).
        None when the caller holds it already (a backfill delivering while the daemon is down)."""
        self.settings = settings
        self.dry_run = dry_run
        self._store = store
        self.bucket = _bucket(settings, store, dry_run)
        self.transport = transport or self._make_transport()
        self.sender = Sender(
            store,
            self.transport,
            cloud_id=_cloud_id(settings),
            bucket=self.bucket,
            on_missing_source=self._missing_source,
            lock=lock,
            metrics=metrics,
        )
        self.task: asyncio.Task[None] | None = None
        self._lock = lock
        if lock is not None:
            # taken now, before the daemon's catch-up, so that `buildtail status` sees the daemon
            # from its start; if a backfill holds it, the sender waits for it as before
            lock.dry_run = not self.for_real
            lock.try_acquire()

    @property
    def for_real(self) -> bool:
        """Whether events go to Compass (not to stdout)."""
        return not self.dry_run and self.settings.compass is not None

    def _make_transport(self) -> Transport:
        if not self.for_real:
            return StdoutTransport()
        assert self.settings.compass is not None
        return CompassTransport(self.settings.compass)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self.sender.run(), name="delivery")

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    def failure(self) -> BaseException | None:
        """Why the delivery task ended, if it ended by an error (it never ends otherwise before stop)."""
        if self.task is None or not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()

    async def stop(self, grace: float) -> None:
        """Requests already on the wire get up to ``grace`` seconds for their answer; the rest stays
        queued for the next start."""
        if self.task is None:
            return
        self.sender.stop()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), grace)
        except TimeoutError:
            log.warning("a request to Compass was still in flight after %.0fs; it stays queued", grace)
            self.task.cancel()
        except Exception:  # already reported by whoever watched the task
            pass
        await asyncio.gather(self.task, return_exceptions=True)

    async def close(self) -> None:
        await self.transport.close()
        if self._lock is not None:
            self._lock.release()  # the sender released it, unless it never ran

    # --- while running ---------------------------------------------------------------------------

    def wake(self) -> None:
        """New events are queued (by this process or, through SIGUSR2, by a backfill beside it)."""
        self.sender.wake()

    def resume(self) -> None:
        self.sender.resume()

    @property
    def paused(self) -> str | None:
        return self.sender.paused

    @property
    def pause_cause(self) -> str | None:
        return self.sender.pause_cause

    async def reconfigure(self, new: Settings) -> None:
        """A reload: new credentials, site or budget take effect for the next request."""
        old, self.settings = self.settings, new
        if new.compass == old.compass:
            return
        if (new.compass is None) != (old.compass is None):
            log.warning("compass section added or removed: restart buildtail to switch to or from a dry run")
            return
        old_transport, self.transport = self.transport, self._make_transport()
        fresh = _bucket(new, self._store, self.dry_run)
        if (fresh.limit, fresh.burst) != (self.bucket.limit, self.bucket.burst):
            self.bucket = fresh
        self.sender.reconfigure(transport=self.transport, cloud_id=_cloud_id(new), bucket=self.bucket)
        await old_transport.close()

    async def _missing_source(self, item: OutboxItem) -> bool:
        """404 from Compass: with auto_setup, create and attach the event source of the refused
        event's own type (a build's BUILD, a deployment's DEPLOYMENT), then resend. Only what the
        event needs: the derived metrics are ``compass setup``'s to connect (``doctor`` says so)."""
        compass = self.settings.compass
        if compass is None or not compass.auto_setup:
            return False
        external = event_payload(item.event)["externalEventSourceId"]
        event_type = next(iter(item.event["event"])).upper()  # {"event": {"deployment": {...}}}
        if event_type not in EVENT_TYPES:
            log.error("no event source to create for a %r event (%r)", event_type, external)
            return False
        component = item.event.get("componentId")
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
