"""Batching for Jira: one kind per request, final states first, at most 100 items, one per run with
the older updates superseded and sharing the fate of the one sent."""

from __future__ import annotations

import pytest

from daemon.sinks.jira.answers import ItemVerdict, Kind
from daemon.sinks.jira.batch import MAX_ITEMS, Queued, next_batch, split, superseded_fates


def q(id: int, key: str, seq: int, *, terminal: bool = False, kind: Kind = "builds") -> Queued:
    return Queued(id, kind, (key, "1"), seq, terminal)


def test_nothing_queued_no_batch() -> None:
    assert next_batch([]) is None


def test_final_states_first_then_queue_order() -> None:
    queued = [q(1, "a", 1), q(2, "b", 2, terminal=True), q(3, "c", 3), q(4, "d", 4, terminal=True)]
    batch = next_batch(queued)
    assert batch is not None
    assert [x.id for x in batch.send] == [2, 4, 1, 3]


def test_builds_and_deployments_never_share_a_request() -> None:
    queued = [q(1, "a", 1, kind="deployments"), q(2, "b", 2), q(3, "c", 3, kind="deployments")]
    batch = next_batch(queued)
    assert batch is not None and batch.kind == "deployments"
    assert [x.id for x in batch.send] == [1, 3]
    rest = next_batch([x for x in queued if x.id not in {1, 3}])
    assert rest is not None and rest.kind == "builds" and [x.id for x in rest.send] == [2]


def test_a_terminal_deployment_goes_before_older_running_builds() -> None:
    batch = next_batch([q(1, "a", 1), q(2, "b", 2, terminal=True, kind="deployments")])
    assert batch is not None and batch.kind == "deployments"


def test_at_most_100_items_and_the_limit_checked() -> None:
    queued = [q(i, f"run{i}", i) for i in range(250)]
    batch = next_batch(queued)
    assert batch is not None and len(batch.send) == MAX_ITEMS
    assert [x.id for x in batch.send] == list(range(100))
    small = next_batch(queued, limit=7)
    assert small is not None and len(small.send) == 7
    with pytest.raises(ValueError):
        next_batch(queued, limit=101)
    with pytest.raises(ValueError):
        next_batch(queued, limit=0)


def test_only_the_newest_update_of_a_run_is_sent_the_older_superseded() -> None:
    # run "a": running (seq 1), running (seq 5), finished (seq 9); queued in that order
    queued = [q(1, "a", 1), q(2, "b", 2), q(3, "a", 5), q(4, "a", 9, terminal=True)]
    batch = next_batch(queued)
    assert batch is not None
    assert [(x.id, x.seq) for x in batch.send] == [(4, 9), (2, 2)]
    assert [[o.id for o in older] for older in batch.superseded] == [[1, 3], []]


def test_the_newest_is_chosen_by_seq_not_by_queue_position() -> None:
    batch = next_batch([q(7, "a", 20), q(3, "a", 10)])
    assert batch is not None
    assert [x.id for x in batch.send] == [7] and [o.id for o in batch.superseded[0]] == [3]


def test_same_key_in_builds_and_deployments_are_different_items() -> None:
    batch = next_batch([q(1, "a", 1), q(2, "a", 2, kind="deployments")])
    assert batch is not None and [x.id for x in batch.send] == [1] and batch.superseded == ((),)


def test_superseded_share_the_fate_of_what_was_sent() -> None:
    queued = [q(1, "a", 1), q(2, "a", 2), q(3, "b", 3), q(4, "b", 4), q(5, "c", 5), q(6, "c", 6)]
    batch = next_batch(queued)
    assert batch is not None
    verdicts = [ItemVerdict("accepted"), ItemVerdict("dead", "state: bad"), ItemVerdict("retry", "429")]
    fates = {x.id: v for x, v in superseded_fates(batch, verdicts)}
    assert fates[1].fate == "accepted" and "seq 2" in fates[1].detail
    assert fates[3].fate == "dead" and "state: bad" in fates[3].detail
    assert fates[5].fate == "hold"
    with pytest.raises(ValueError):
        superseded_fates(batch, verdicts[:2])


def test_split_halves_keep_what_each_item_supersedes() -> None:
    queued = [q(1, "a", 1), q(2, "a", 2), q(3, "b", 3), q(4, "c", 4), q(5, "c", 5)]
    batch = next_batch(queued)
    assert batch is not None
    first, second = split(batch)
    assert [x.id for x in first.send] == [2] and [o.id for o in first.superseded[0]] == [1]
    assert [x.id for x in second.send] == [3, 5] and [o.id for o in second.superseded[1]] == [4]
    one = next_batch([q(1, "a", 1)])
    assert one is not None
    with pytest.raises(ValueError):
        split(one)
