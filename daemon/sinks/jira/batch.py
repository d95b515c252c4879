"""Which queued updates go to Jira in the next bulk request.

A request carries up to ``MAX_ITEMS`` (100) items of one kind: builds and deployments have separate
endpoints. Final states go first (``terminal``): when the budget is short, a run's result matters
more than its progress. Within that, the queue's order (the caller's, oldest first) holds.

One item per Jira identity per request: a build's (pipelineId, buildNumber), a deployment's
(pipeline, environment, deploymentSequenceNumber) - ``answers.item_key`` of the rendered item.
Jira's answer names items by that identity only, so two updates of one run in one request could not
be told apart in it; and Jira keeps only the update with the highest updateSequenceNumber anyway,
ignoring an older one that arrives later. So when several updates of one run are queued, only the
newest (highest ``seq``, which is its updateSequenceNumber) is sent, and the older ones are
``superseded``: they share the fate of the one sent (``superseded_fates``) - they leave the queue
when it is accepted, become dead letters when it is refused, and stay queued, untouched, while it is
retried or held (the next batch supersedes them again). Nothing older is ever sent after something
newer of the same run from one batch; across batches Jira's own ordering by updateSequenceNumber
keeps the newest.

Pure functions over plain records, so that the sink can plan inside its own store transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from daemon.sinks.jira.answers import ItemVerdict, Kind
from daemon.sinks.jira.render import MAX_ITEMS

__all__ = ["MAX_ITEMS", "Batch", "Kind", "Queued", "next_batch", "split", "superseded_fates"]


@dataclass(frozen=True, slots=True)
class Queued:
    """One queued update as batching sees it: its outbox row ``id``, the ``kind`` of item it renders
    to, that item's Jira identity ``key``, its ``seq`` (the updateSequenceNumber) and whether it is
    a run's final state."""

    id: int
    kind: Kind
    key: tuple[str, ...]
    seq: int
    terminal: bool


@dataclass(frozen=True, slots=True)
class Batch:
    """One request's worth: ``send`` (1 to ``MAX_ITEMS`` of one kind, one per key, in the order to
    put them in the body), and per item sent the older queued updates it supersedes."""

    kind: Kind
    send: tuple[Queued, ...]
    superseded: tuple[tuple[Queued, ...], ...]  # parallel to ``send``


def next_batch(queued: Sequence[Queued], limit: int = MAX_ITEMS) -> Batch | None:
    """The next request from ``queued`` (oldest first), or None when nothing is queued."""
    if not 1 <= limit <= MAX_ITEMS:
        raise ValueError(f"a request carries 1 to {MAX_ITEMS} items, not {limit}")
    runs: dict[tuple[str, tuple[str, ...]], list[Queued]] = {}
    for q in queued:
        runs.setdefault((q.kind, q.key), []).append(q)
    newest = {run: max(updates, key=lambda q: q.seq) for run, updates in runs.items()}
    position = {q.id: i for i, q in enumerate(queued)}
    heads = sorted(newest.values(), key=lambda q: (not q.terminal, position[q.id]))
    if not heads:
        return None
    kind = heads[0].kind
    send = tuple(q for q in heads if q.kind == kind)[:limit]
    older = tuple(tuple(o for o in runs[(kind, q.key)] if o.id != q.id) for q in send)
    return Batch(kind, send, older)


def split(batch: Batch) -> tuple[Batch, Batch]:
    """Two requests in place of one too large for Jira (a 413), each item with what it supersedes."""
    if len(batch.send) < 2:
        raise ValueError("a batch of one item cannot be split")
    half = len(batch.send) // 2
    return (
        replace(batch, send=batch.send[:half], superseded=batch.superseded[:half]),
        replace(batch, send=batch.send[half:], superseded=batch.superseded[half:]),
    )


def superseded_fates(batch: Batch, verdicts: Sequence[ItemVerdict]) -> list[tuple[Queued, ItemVerdict]]:
    """The fate of each superseded update, from the verdict on the item sent in its place
    (``verdicts`` parallel to ``batch.send``): accepted and dead carry over with the reason said;
    retry and hold leave it queued untouched (``hold``)."""
    if len(verdicts) != len(batch.send):
        raise ValueError(f"{len(verdicts)} verdicts for {len(batch.send)} items sent")
    fates: list[tuple[Queued, ItemVerdict]] = []
    for sent, verdict, older in zip(batch.send, verdicts, batch.superseded, strict=True):
        for q in older:
            if verdict.fate == "accepted":
                fate = ItemVerdict("accepted", f"superseded by seq {sent.seq}, which Jira accepted")
            elif verdict.fate == "dead":
                fate = ItemVerdict(
                    "dead", f"superseded by seq {sent.seq}, which Jira rejected: {verdict.detail}"
                )
            else:
                fate = ItemVerdict("hold", f"superseded by seq {sent.seq}, not yet delivered")
            fates.append((q, fate))
    return fates
