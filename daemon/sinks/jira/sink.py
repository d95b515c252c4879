"""The Jira sink: builds and deployments to Jira Software Cloud, up to 100 a request.

Everything the delivery loop needs to send queued updates to Jira, and nothing of the loop: the
item for each update (``render``: its issue keys from ``keys``, a deployment's environment from
``compass.deployments``), the batch (``batch.next_batch``: one kind, final states first, one item
per Jira identity), the request (``transport``, with the OAuth token), and each item's fate from
the answer (``answers.judge``), handed back to the loop as one ``SendResult`` per update. A 413
splits the batch in two and sends both halves at once, each taking its own request of the budget.

Jira's budget (``jira.rate_limit_per_minute``, ``burst``) and its ``Retry-After`` are its own: the
loop runs one sender per sink, so a Jira that is down or slow never holds Compass's events back.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TextIO

from daemon.clock import now_ms
from daemon.config import Settings
from daemon.config.jira import JiraSettings
from daemon.delivery.budget import TokenBucket
from daemon.events import Update, environment, update_from_json
from daemon.ops.logs import about
from daemon.sinks import SendResult, Sent, Transport
from daemon.sinks.compass.graphql import GraphQLError
from daemon.sinks.jira.answers import UNNAMED, ItemVerdict, Kind, Verdict, item_key, judge
from daemon.sinks.jira.batch import Batch, Queued, next_batch, split, superseded_fates
from daemon.sinks.jira.keys import IssueKeys, with_carried
from daemon.sinks.jira.render import JiraRender, NoIssueKeys, build_item, bulk_body, deployment_item
from daemon.sinks.jira.reply import Reply
from daemon.sinks.jira.token import ClientCredentials
from daemon.sinks.jira.transport import JiraTransport
from daemon.sinks.jira.wants import CARRIED, KEYS, NAME
from daemon.store import OutboxItem, Store

__all__ = ["NAME", "JiraSink", "JiraStdout", "open_jira"]

log = logging.getLogger("buildtail")

_CUT_LOGGED_MAX = 10_000  # runs whose cut keys were logged, remembered so it is said once per run
# Jira's 202s in a row that name an update neither accepted nor rejected before it is a dead letter:
# retried for ever, it would come first in every batch and hold the others' places
UNNAMED_MAX = 5


def _bucket(jira: JiraSettings | None, store: Store, dry_run: bool) -> TokenBucket:
    """Jira's own budget, rebuilt from its requests of the last minute."""
    if jira is None or dry_run or not jira.rate_limit_per_minute:
        return TokenBucket(0, 1)
    return TokenBucket(
        jira.rate_limit_per_minute,
        jira.burst,
        sent_ms=store.recent_sends(now_ms() - 60_000, sink=NAME),
        on_take=lambda at_ms: store.record_send(at_ms, sink=NAME),
    )


def _accepted_key(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    if kind == "builds":
        return {"pipelineId": item["pipelineId"], "buildNumber": item["buildNumber"]}
    return {
        "pipelineId": item["pipeline"]["id"],
        "environmentId": item["environment"]["id"],
        "deploymentSequenceNumber": item["deploymentSequenceNumber"],
    }


class JiraStdout:
    """``--dry-run``: each bulk body as one JSON line on stdout, marked ``"sink": "jira"`` (Compass's
    lines are its bodies as they are); answered as Jira would accept it."""

    cloud_id = "dry-run"

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout

    async def resolve_cloud_id(self, site_url: str) -> str:
        return self.cloud_id

    async def send(self, kind: Kind, body: dict[str, Any]) -> Reply:
        self._out.write(json.dumps({"sink": NAME, **body}, separators=(",", ":"), ensure_ascii=False) + "\n")
        self._out.flush()
        accepted = [_accepted_key(kind, item) for item in body[kind]]
        return Reply("bulk", 202, "application/json", {f"accepted{kind.title()}": accepted})

    async def close(self) -> None:
        return None


Bulk = JiraTransport | JiraStdout


class BulkRequests:
    """The sink's ``transport`` as the delivery loop knows one: a whole bulk body sent as it is and
    its answer judged as a whole (the loop sends a batch sink's items through ``send_many``)."""

    def __init__(self, bulk: Bulk) -> None:
        self.bulk = bulk

    async def send(self, body: dict[str, Any]) -> SendResult:
        kind: Kind = "builds" if "builds" in body else "deployments"
        return judge(await self.bulk.send(kind, body), kind, body[kind]).result

    async def close(self) -> None:
        await self.bulk.close()


def _transport(jira: JiraSettings, for_real: bool) -> Bulk:
    if not for_real:
        return JiraStdout()
    return JiraTransport(jira, ClientCredentials(jira.client_id, jira.secret))


def open_jira(
    settings: Settings, store: Store, *, dry_run: bool, transport: Transport | None = None
) -> JiraSink:
    """The Jira sink as configured (``settings.jira`` is set), or printing to stdout for a dry run;
    ``transport`` is not taken (the registry's test hook replaces the first sink's, Compass's)."""
    assert settings.jira is not None
    return JiraSink(
        settings,
        transport=_transport(settings.jira, not dry_run),
        bucket=_bucket(settings.jira, store, dry_run),
        for_real=not dry_run,
    )


class JiraSink:
    name = NAME
    title = "Jira"
    batch_size = 100

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Bulk,
        bucket: TokenBucket,
        for_real: bool = True,
    ) -> None:
        assert settings.jira is not None
        self.settings = settings
        self.jira: JiraSettings = settings.jira
        self.bulk = transport
        self.transport: Transport = BulkRequests(transport)
        self.batch_window = float(self.jira.batch_window)
        self.bucket = bucket
        self.for_real = for_real
        self._cut_logged: dict[str, None] = {}
        self._unnamed: dict[int, int] = {}  # outbox id -> Jira's answers in a row that did not name it

    async def reconfigure(self, new: Settings, store: Store, *, dry_run: bool) -> None:
        """A reload: new credentials, site or budget for the next request (a secret file is read
        at each token request anyway); rendering follows the new settings at once."""
        if new.jira is None:  # the delivery keeps the section while the sink is open (as_opened)
            return
        self.settings = new
        old, self.jira = self.jira, new.jira
        self.batch_window = float(new.jira.batch_window)
        if new.jira == old:
            return
        old_transport, self.bulk = self.bulk, _transport(new.jira, self.for_real)
        self.transport = BulkRequests(self.bulk)
        fresh = _bucket(new.jira, store, dry_run)
        if (fresh.limit, fresh.burst) != (self.bucket.limit, self.bucket.burst):
            self.bucket = fresh
        await old_transport.close()

    # --- one update's item -----------------------------------------------------------------------

    def keys(self, update: Update, data: dict[str, Any]) -> IssueKeys:
        """The keys decided when the update was queued (``KEYS``: the run's first ones kept); an
        update queued before they were stored is decided now."""
        carried = tuple(str(k) for k in data.get(CARRIED) or ())
        found = with_carried(update.facts, self.jira, carried)
        kept = tuple(str(k) for k in data.get(KEYS) or ())
        if not kept:
            return found
        return replace(found, keys=kept, cut=tuple(k for k in found.cut if k not in kept))

    def _item(self, item: OutboxItem) -> tuple[Kind, dict[str, Any], IssueKeys]:
        if item.update is None:
            raise NoIssueKeys("an update without its facts")
        update = update_from_json(item.update)
        keys = self.keys(update, item.update)
        if keys.cut and item.pipeline_id not in self._cut_logged:
            if len(self._cut_logged) >= _CUT_LOGGED_MAX:
                self._cut_logged.pop(next(iter(self._cut_logged)))
            self._cut_logged[item.pipeline_id] = None
            log.warning(
                "%s names %d issue keys, Jira takes %d: %d left out (%s)",
                item.pipeline_id,
                len(keys.keys) + len(keys.cut),
                len(keys.keys),
                len(keys.cut),
                " ".join(keys.cut[:20]),
                extra=about(run=item.pipeline_id),
            )
        render = JiraRender(server_url=update.facts.job_url or f"http://{self.settings.host}/")
        if update.run.kind == "deployment":
            env = environment(update.facts, self.settings)
            return "deployments", deployment_item(update, keys.keys, item.seq, render, environment=env), keys
        return "builds", build_item(update, keys.keys, item.seq, render), keys

    def render(self, item: OutboxItem) -> dict[str, Any]:
        return self._item(item)[1]

    def describe(self, body: dict[str, Any], item: OutboxItem) -> str:
        return str(body.get("displayName") or item.pipeline_id)

    def route(self, body: dict[str, Any]) -> tuple[str | None, str | None]:
        """Jira has no event sources or components: the pipeline id the item went under."""
        pipeline = body.get("pipelineId") or (body.get("pipeline") or {}).get("id")
        return (None if pipeline is None else str(pipeline), None)

    def pause_reason(self, result: SendResult, body: dict[str, Any]) -> str:
        return f"Jira: {result.detail}; fix it, then send SIGHUP (systemctl reload buildtail)"

    async def create_missing(self, body: dict[str, Any]) -> bool:
        return False  # nothing Jira lacks can be created from here

    # --- a batch ---------------------------------------------------------------------------------

    async def send_many(self, items: list[OutboxItem]) -> list[Sent]:
        """The next request from ``items``: those of another kind stay queued for the next one."""
        sent: dict[int, Sent] = {}
        queued: list[Queued] = []
        bodies: dict[int, dict[str, Any]] = {}
        notes: dict[int, str] = {}
        by_id = {item.id: item for item in items}
        for item in items:
            try:
                kind, body, keys = self._item(item)
            except Exception as exc:  # a damaged or unforeseen update: a dead letter alone, not its batch
                why = f"no item for Jira: {type(exc).__name__}: {exc}"
                if not isinstance(exc, NoIssueKeys):
                    log.warning(
                        "%s (seq %d): %s",
                        item.pipeline_id,
                        item.seq,
                        why,
                        extra=about(run=item.pipeline_id),
                    )
                sent[item.id] = Sent(item, None, SendResult("rejected", None, why))
                continue
            bodies[item.id] = body
            if keys.cut:
                notes[item.id] = (
                    f"; {len(keys.cut)} issue keys over Jira's limit left out: {' '.join(keys.cut)}"
                )
            queued.append(Queued(item.id, kind, item_key(kind, body), item.seq, item.terminal))
        batch = next_batch(queued)
        if batch is not None:
            for q, judged in await self._request(batch, [bodies[q.id] for q in batch.send]):
                item = by_id[q.id]
                verdict = self._bound_unnamed(item, judged)
                sent[q.id] = Sent(item, bodies[q.id], _result(verdict, q, notes.get(q.id, "")))
        return [sent.get(item.id) or Sent(item, None, None) for item in items]

    def _bound_unnamed(
        self, item: OutboxItem, judged: tuple[ItemVerdict, SendResult]
    ) -> tuple[ItemVerdict, SendResult]:
        """An update Jira's answers leave unnamed ``UNNAMED_MAX`` times in a row: a dead letter."""
        verdict, request = judged
        if verdict.fate != "retry" or verdict.detail != UNNAMED:
            self._unnamed.pop(item.id, None)
            return judged
        count = self._unnamed.pop(item.id, 0) + 1
        if count < UNNAMED_MAX:
            if len(self._unnamed) >= _CUT_LOGGED_MAX:
                self._unnamed.pop(next(iter(self._unnamed)))
            self._unnamed[item.id] = count
            return judged
        why = f"Jira's answer never named it ({count} answers in a row accepted or rejected others)"
        log.warning("%s: %s", item.pipeline_id, why, extra=about(run=item.pipeline_id))
        return ItemVerdict("dead", why, verdict.unknown_keys), request

    async def _request(
        self, batch: Batch, bodies: Sequence[dict[str, Any]]
    ) -> list[tuple[Queued, tuple[ItemVerdict, SendResult]]]:
        """One bulk request (two, after a 413), each item sent and superseded with its verdict."""
        try:
            await self.bulk.resolve_cloud_id(self.jira.site_url)
        except GraphQLError as exc:
            why = f"cannot look up the cloud id of {self.jira.site} ({exc}); set jira.cloud_id"
            result = SendResult("retry", exc.status, why)
            return [(q, (ItemVerdict("retry", why), result)) for q in batch.send]
        body = bulk_body(batch.kind, bodies, JiraRender(server_url=self.jira.site_url))
        verdict: Verdict = judge(await self.bulk.send(batch.kind, body), batch.kind, bodies)
        if verdict.split:
            first, second = split(batch)
            half = len(first.send)
            out = await self._request(first, bodies[:half])
            await self.bucket.acquire()
            return out + await self._request(second, bodies[half:])
        if verdict.unknown_issue_keys:
            log.info("Jira does not know the issue keys %s", " ".join(verdict.unknown_issue_keys[:20]))
        pairs = [(q, (v, verdict.result)) for q, v in zip(batch.send, verdict.items, strict=True)]
        fates = superseded_fates(batch, verdict.items)
        return pairs + [(q, (v, verdict.result)) for q, v in fates]


def _result(judged: tuple[ItemVerdict, SendResult], q: Queued, note: str) -> SendResult | None:
    """One item's verdict in the delivery loop's words; None: left queued untouched."""
    verdict, request = judged
    unknown = f"; unknown issue keys: {' '.join(verdict.unknown_keys)}" if verdict.unknown_keys else ""
    if verdict.fate == "accepted":
        detail = (verdict.detail or "accepted") + unknown + note
        return SendResult("accepted", request.status, detail)
    if verdict.fate == "dead":
        return SendResult("rejected", request.status, verdict.detail + unknown)
    if verdict.fate == "retry":
        if request.outcome in ("retry", "not_compass"):
            return request  # shared by the batch: one answer, counted once
        return SendResult("retry", request.status, verdict.detail, request.retry_after)
    if request.outcome in ("unauthorized", "not_found"):
        return request  # delivery pauses, the items kept
    return None  # superseded by an update not yet settled, or held for a split
