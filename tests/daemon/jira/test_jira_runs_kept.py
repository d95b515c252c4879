"""A run Jira already has keeps getting its updates, with the issue keys it was first sent with:
whatever a backfill's ``--to``, ``jira.builds`` or ``jira.project_keys`` say since, its final update
is queued for Jira and renders to at least the keys Jira first saw."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.history import HistoryPolicy
from daemon.recorder import Recorder
from daemon.sinks.jira.sink import JiraSink, JiraStdout
from daemon.store import Store

from ..test_events import DEPLOYS, START, facts, finished, settings

JIRA = {
    "site": "example.atlassian.net",
    "cloud_id": "c",
    "client_id": "id",
    "client_secret": "s",
    "rate_limit_per_minute": 0,
}


def _settings(tmp_path: Path, **jira: Any) -> Settings:
    return settings(tmp_path, compass=DEPLOYS, jira={**JIRA, **jira})


def _rows(store: Store) -> list[tuple[str, str]]:
    return [(str(s), str(t)) for s, t in store.read_rows("SELECT sink, state FROM outbox ORDER BY id", ())]


def test_a_backfill_to_compass_leaves_jira_its_final_update(tmp_path: Path) -> None:
    cfg = _settings(tmp_path)
    store = Store(tmp_path / "state")
    try:
        Recorder(store, cfg, history=HistoryPolicy({})).record(facts(branch="ABC-1-login"), arrived=True)
        assert _rows(store) == [("compass", "IN_PROGRESS"), ("jira", "IN_PROGRESS")]
        backfill = Recorder(store, cfg, history=HistoryPolicy.backfill(START - 1), only=("compass",))
        backfill.record(finished(branch="ABC-1-login"), arrived=False)
        assert sorted(_rows(store)) == [("compass", "SUCCESSFUL"), ("jira", "SUCCESSFUL")]
    finally:
        store.close()


def test_a_backfill_to_compass_queues_history_for_compass_only(tmp_path: Path) -> None:
    cfg = _settings(tmp_path)
    store = Store(tmp_path / "state")
    try:
        backfill = Recorder(store, cfg, history=HistoryPolicy.backfill(START - 1), only=("compass",))
        backfill.record(finished(branch="ABC-1-login"), arrived=False)
        assert _rows(store) == [("compass", "SUCCESSFUL")]
    finally:
        store.close()


def test_builds_turned_off_by_reload_still_end_the_runs_jira_has(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    try:
        recorder = Recorder(store, _settings(tmp_path), history=HistoryPolicy({}))
        recorder.record(facts(branch="ABC-1-login"), arrived=True)
        recorder.settings = _settings(tmp_path, builds=False)  # a reload
        recorder.record(finished(branch="ABC-1-login"), arrived=True)
        assert sorted(_rows(store)) == [("compass", "SUCCESSFUL"), ("jira", "SUCCESSFUL")]
        recorder.record(finished(number=8, branch="ABC-2"), arrived=True)  # a new one: not for Jira
        assert [sink for sink, _ in _rows(store)].count("jira") == 1
    finally:
        store.close()


def test_the_final_update_keeps_the_keys_first_sent(tmp_path: Path) -> None:
    """``project_keys`` changed by a reload leaves out the run's key: its final update still goes to
    ABC-1, the key Jira has it under, and is not a dead letter."""
    store = Store(tmp_path / "state")
    try:
        recorder = Recorder(store, _settings(tmp_path), history=HistoryPolicy({}))
        recorder.record(facts(branch="ABC-1-login"), arrived=True)
        new = _settings(tmp_path, project_keys=["OPS"])
        recorder.settings = new
        recorder.record(finished(branch="ABC-1-login"), arrived=True)
        sink = JiraSink(new, transport=JiraStdout(io.StringIO()), bucket=TokenBucket(0, 1))
        (item,) = store.due_items(10, sink="jira")
        assert sink.render(item)["issueKeys"] == ["ABC-1"]
    finally:
        store.close()


def test_later_updates_add_keys_found_since(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    cfg = _settings(tmp_path)
    try:
        recorder = Recorder(store, cfg, history=HistoryPolicy({}))
        recorder.record(facts(branch="ABC-1-login"), arrived=True)
        recorder.record(finished(branch="OPS-2-fix"), arrived=True)
        sink = JiraSink(cfg, transport=JiraStdout(io.StringIO()), bucket=TokenBucket(0, 1))
        (item,) = store.due_items(10, sink="jira")
        assert sink.render(item)["issueKeys"] == ["ABC-1", "OPS-2"]
    finally:
        store.close()
