"""The Jira sink through the real delivery loop, against the local fake Jira over HTTP.

Which updates Jira gets (``wants``), several in one request, and each item settled on its own:
accepted ones acknowledged, a rejected one a dead letter of Jira's, an outage retried, and Compass
delivering beside it throughout.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.delivery.delivery import Delivery
from daemon.history import HistoryPolicy
from daemon.ops.health import Health
from daemon.ops.metrics import Metrics
from daemon.recorder import Recorder
from daemon.sinks import StdoutTransport
from daemon.sinks.jira.sink import JiraSink, JiraStdout
from daemon.store import Store
from parsers.branch_head import BranchHead
from tests.inprocess import until
from tools.fake_jira import FakeJira

from ..test_events import DEPLOYS, facts, finished, settings


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(known_projects=["ABC", "OPS"]) as fake:
        yield fake


def _settings(tmp_path: Path, fake: FakeJira, **jira: Any) -> Settings:
    return settings(
        tmp_path,
        compass=DEPLOYS,
        jira={
            "site": "example.atlassian.net",
            "cloud_id": fake.cloud_id,
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "api_url": fake.base_url,
            "batch_window": 0.3,
            "rate_limit_per_minute": 0,
            **jira,
        },
    )


def _rows(store: Store, sink: str) -> list[str]:
    return [str(r[0]) for r in store.read_rows("SELECT pipeline_id FROM outbox WHERE sink = ?", (sink,))]


def _branch(name: str) -> BranchHead:
    return BranchHead(name, "branch")


async def test_jira_gets_runs_with_issue_keys_several_to_a_request(tmp_path: Path, jira: FakeJira) -> None:
    cfg = _settings(tmp_path, jira)
    store = Store(tmp_path / "state")
    compass_out = io.StringIO()
    delivery = Delivery(cfg, store, transport=StdoutTransport(compass_out))
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    try:
        recorder.record(
            finished(job="app/feature%2FABC-12-login", number=1, head=_branch("feature/ABC-12-login"))
        )
        recorder.record(finished("FAILURE", job="lib", number=4, branch="origin/OPS-3-fix"))
        recorder.record(finished(job="docs", number=9))  # names no issue: Compass only
        recorder.record(finished(job="deploy-web", number=2, branch="ABC-12"))
        assert sorted(_rows(store, "jira")) == ["app/feature%2FABC-12-login#1", "deploy-web#2", "lib#4"]
        assert len(_rows(store, "compass")) == 4
        delivery.start()
        await until(
            'not _rows(store, "jira") and not _rows(store, "compass")',
            lambda: not _rows(store, "jira") and not _rows(store, "compass"),
            within=15.0,
        )
        await delivery.stop(5.0)
        builds = [s for s in jira.submissions if s.kind == "builds"]
        assert len(builds) == 1 and builds[0].status == 202
        sent = builds[0].body["builds"]
        assert {(b["pipelineId"], b["state"], tuple(b["issueKeys"])) for b in sent} == {
            ("jenkins/app/feature%2FABC-12-login", "successful", ("ABC-12",)),
            ("jenkins/lib", "failed", ("OPS-3",)),
        }
        (deploys,) = [s for s in jira.submissions if s.kind == "deployments"]
        (item,) = deploys.body["deployments"]
        assert item["environment"] == {"id": "prod", "displayName": "production", "type": "production"}
        assert (item["state"], item["issueKeys"]) == ("successful", ["ABC-12"])
        assert len(compass_out.getvalue().splitlines()) == 4
        answers = store.read_rows("SELECT sink, outcome FROM answers WHERE sink = 'jira'")
        assert answers == [("jira", "accepted")] * 3
    finally:
        await delivery.close()
        store.close()


async def test_a_run_queued_for_jira_keeps_its_later_updates(tmp_path: Path, jira: FakeJira) -> None:
    cfg = _settings(tmp_path, jira)
    store = Store(tmp_path / "state")
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    try:
        recorder.record(facts(job="lib", number=5, branch="ABC-1"))
        recorder.record(finished(job="lib", number=5))  # the final record names no branch
        assert _rows(store, "jira") == ["lib#5"]
        recorder.record(facts(job="lib", number=6))
        assert _rows(store, "jira") == ["lib#5"]
    finally:
        store.close()


async def test_builds_off_keeps_builds_from_jira(tmp_path: Path, jira: FakeJira) -> None:
    cfg = _settings(tmp_path, jira, builds=False)
    store = Store(tmp_path / "state")
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    try:
        recorder.record(finished(job="lib", number=5, branch="ABC-1"))
        recorder.record(finished(job="deploy-web", number=5, branch="ABC-1"))
        assert _rows(store, "jira") == ["deploy-web#5"]
    finally:
        store.close()


async def test_each_item_settled_on_its_own(tmp_path: Path, jira: FakeJira) -> None:
    """An outage is retried (nothing lost), then Jira accepts one item and rejects another (only
    unknown keys): the first acknowledged, the second a dead letter with Jira's words."""
    cfg = _settings(tmp_path, jira)
    store = Store(tmp_path / "state")
    delivery = Delivery(cfg, store, transport=StdoutTransport(io.StringIO()))
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    jira.interpose(503, "down for maintenance", headers={"Retry-After": "1"})
    try:
        recorder.record(finished(job="lib", number=1, branch="ABC-1"))
        recorder.record(finished(job="old", number=2, branch="ZZZ-9"))  # not a project of the site
        delivery.start()
        await until('not _rows(store, "jira")', lambda: not _rows(store, "jira"), within=15.0)
        await delivery.stop(5.0)
        statuses = [s.status for s in jira.submissions]
        assert statuses[-1] == 202 and len(jira.submissions[-1].body["builds"]) == 2
        dead = store.read_rows("SELECT sink, pipeline_id, error FROM dead_letters")
        assert [(s, p) for s, p, _ in dead] == [("jira", "old#2")]
        outcomes = store.read_rows("SELECT pipeline_id, outcome FROM answers WHERE sink = 'jira' ORDER BY id")
        assert ("lib#1", "retry") in outcomes and ("lib#1", "accepted") in outcomes
        assert ("old#2", "dead") in outcomes
        jira_sink = delivery.sinks[1]
        assert isinstance(jira_sink, JiraSink)
    finally:
        await delivery.close()
        store.close()


async def test_dry_run_prints_jira_bodies_marked_as_jira(tmp_path: Path, jira: FakeJira, capsys: Any) -> None:
    cfg = _settings(tmp_path, jira)
    store = Store(tmp_path / "state")
    delivery = Delivery(cfg, store, dry_run=True, transport=StdoutTransport(io.StringIO()))
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    try:
        recorder.record(finished(job="lib", number=1, branch="ABC-1"))
        delivery.start()
        await until('not _rows(store, "jira")', lambda: not _rows(store, "jira"), within=15.0)
        await delivery.stop(5.0)
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(line["sink"], line["builds"][0]["issueKeys"]) for line in lines] == [("jira", ["ABC-1"])]
        assert jira.submissions == []
    finally:
        await delivery.close()
        store.close()


async def test_jira_refusing_its_credentials_pauses_jira_only(tmp_path: Path, jira: FakeJira) -> None:
    """Wrong client secret: Jira's delivery pauses (its metric says so, /readyz reports it and stays
    ready even once Jira's events are old), while Compass delivers."""
    cfg = _settings(tmp_path, jira, client_secret="wrong")
    metrics_cfg = cfg.metrics.model_copy(update={"ready_max_queue_age": 0.0})
    cfg = cfg.model_copy(update={"metrics": metrics_cfg, "state_dir": tmp_path / "state"})
    store = Store(tmp_path / "state")
    metrics = Metrics()
    compass_out = io.StringIO()
    delivery = Delivery(cfg, store, transport=StdoutTransport(compass_out), metrics=metrics)
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    try:
        recorder.record(finished(job="lib", number=1, branch="ABC-1"))
        delivery.start()
        await until(
            'delivery.held_sinks() != [] and not _rows(store, "compass")',
            lambda: delivery.held_sinks() != [] and not _rows(store, "compass"),
            within=15.0,
        )
        ((name, title, why),) = delivery.held_sinks()
        assert (name, title) == ("jira", "Jira") and "client" in why
        assert _rows(store, "jira") == ["lib#1"]
        assert metrics.registry.get_sample_value("buildtail_sink_delivery_paused", {"sink": "jira"}) == 1
        service = SimpleNamespace(
            started=True, settings=cfg, store=store, recorder=recorder, delivery=delivery, reader=None
        )
        ok, reason = Health(service).ready()
        assert ok and reason.startswith("ok; Jira delivery paused: "), reason
        await delivery.stop(5.0)
    finally:
        await delivery.close()
        store.close()


async def test_a_reload_with_the_right_secret_resumes_jira(tmp_path: Path, jira: FakeJira) -> None:
    wrong = _settings(tmp_path, jira, client_secret="wrong")
    store = Store(tmp_path / "state")
    delivery = Delivery(wrong, store, transport=StdoutTransport(io.StringIO()))
    recorder = Recorder(store, wrong, history=HistoryPolicy({}))
    try:
        recorder.record(finished(job="lib", number=1, branch="ABC-1"))
        delivery.start()
        await until("delivery.held_sinks() != []", lambda: delivery.held_sinks() != [], within=15.0)
        await delivery.reconfigure(_settings(tmp_path, jira))
        delivery.resume()
        await until('not _rows(store, "jira")', lambda: not _rows(store, "jira"), within=15.0)
        assert delivery.held_sinks() == []
        assert [b["issueKeys"] for b in jira.stored("builds").values()] == [["ABC-1"]]
        await delivery.stop(5.0)
    finally:
        await delivery.close()
        store.close()


def test_a_deployment_carries_the_keys_of_the_failed_ones_before_it(tmp_path: Path, jira: FakeJira) -> None:
    """deploy-web #1 (ABC-1) fails, #2 (ABC-2) fails, #3 (ABC-3) succeeds: #3 names all three; #4
    (ABC-4) after the success names its own only. Builds carry nothing."""
    cfg = _settings(tmp_path, jira)
    store = Store(tmp_path / "state")
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    sink = JiraSink(cfg, transport=JiraStdout(io.StringIO()), bucket=TokenBucket(0, 1))
    try:
        for number, result in [(1, "FAILURE"), (2, "FAILURE"), (3, "SUCCESS"), (4, "SUCCESS")]:
            recorder.record(finished(result, job="deploy-web", number=number, branch=f"ABC-{number}"))
        recorder.record(finished("FAILURE", job="lib", number=1, branch="ABC-9"))
        recorder.record(finished(job="lib", number=2, branch="ABC-10"))
        rows = store.read_rows("SELECT id FROM outbox WHERE sink = 'jira'")
        items = store.due_items(10, sink="jira")
        assert len(items) == len(rows) == 6
        keys = {item.pipeline_id: sink.render(item)["issueKeys"] for item in items}
        assert keys == {
            "deploy-web#1": ["ABC-1"],
            "deploy-web#2": ["ABC-2", "ABC-1"],
            "deploy-web#3": ["ABC-3", "ABC-1", "ABC-2"],
            "deploy-web#4": ["ABC-4"],
            "lib#1": ["ABC-9"],
            "lib#2": ["ABC-10"],
        }
    finally:
        store.close()


async def test_jiras_budget_counts_an_accepted_request_once(tmp_path: Path, jira: FakeJira) -> None:
    """Ten builds accepted in one request are one request of Jira's minute, not ten."""
    cfg = _settings(tmp_path, jira, rate_limit_per_minute=600, batch_window=1.0)
    store = Store(tmp_path / "state")
    delivery = Delivery(cfg, store, transport=StdoutTransport(io.StringIO()))
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    try:
        for number in range(1, 11):
            recorder.record(finished(job="lib", number=number, branch=f"ABC-{number}"))
        delivery.start()
        await until('not _rows(store, "jira")', lambda: not _rows(store, "jira"), within=15.0)
        await delivery.stop(5.0)
        requests = [s for s in jira.submissions if s.kind == "builds" and s.status == 202]
        (sender,) = [s for s in delivery.senders if s.sink.name == "jira"]
        assert sum(len(s.body["builds"]) for s in requests) == 10
        assert len(sender.bucket._accepted) == len(requests)
    finally:
        await delivery.close()
        store.close()


async def test_a_jira_section_added_by_reload_waits_for_a_restart(
    tmp_path: Path, jira: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing is queued for a Jira nothing sends to; the reload says to restart, once."""
    cfg = settings(tmp_path, compass=DEPLOYS)
    store = Store(tmp_path / "state")
    delivery = Delivery(cfg, store, transport=StdoutTransport(io.StringIO()))
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    try:
        new = _settings(tmp_path, jira)
        with caplog.at_level("WARNING", logger="buildtail"):
            await delivery.reconfigure(new)
        recorder.settings = new
        assert [r.message for r in caplog.records if "restart" in r.message] == [
            "jira section added: restart buildtail to start sending to Jira"
        ]
        recorder.record(finished(job="lib", number=1, branch="ABC-1"))
        assert _rows(store, "jira") == [] and _rows(store, "compass") == ["lib#1"]
    finally:
        await delivery.close()
        store.close()


async def test_a_jira_section_removed_by_reload_keeps_sending_until_a_restart(
    tmp_path: Path, jira: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _settings(tmp_path, jira)
    store = Store(tmp_path / "state")
    delivery = Delivery(cfg, store, transport=StdoutTransport(io.StringIO()))
    recorder = Recorder(store, cfg, history=HistoryPolicy({}))
    try:
        new = settings(tmp_path, compass=DEPLOYS)
        with caplog.at_level("WARNING", logger="buildtail"):
            await delivery.reconfigure(new)
        recorder.settings = new
        assert [r.message for r in caplog.records if "restart" in r.message] == [
            "jira section removed: restart buildtail to stop sending to Jira"
        ]
        recorder.record(finished(job="lib", number=1, branch="ABC-1"))
        assert _rows(store, "jira") == ["lib#1"]
        delivery.start()
        await until('not _rows(store, "jira")', lambda: not _rows(store, "jira"), within=15.0)
        await delivery.stop(5.0)
        assert [s.body["builds"][0]["issueKeys"] for s in jira.submissions if s.kind == "builds"] == [
            ["ABC-1"]
        ]
    finally:
        await delivery.close()
        store.close()
