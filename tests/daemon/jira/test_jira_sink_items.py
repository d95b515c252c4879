"""One item's trouble stays that item's: an update Jira's answers never name becomes a dead letter
after a few answers, and an update that cannot be rendered is a dead letter alone, while the others
of its batch are sent."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from daemon.delivery.budget import TokenBucket
from daemon.history import HistoryPolicy
from daemon.recorder import Recorder
from daemon.sinks.jira.answers import Kind
from daemon.sinks.jira.reply import Reply
from daemon.sinks.jira.sink import UNNAMED_MAX, JiraSink, JiraStdout
from daemon.store import Store

from ..test_events import DEPLOYS, finished, settings

JIRA = {"site": "example.atlassian.net", "cloud_id": "c", "client_id": "id", "client_secret": "s"}


class NamesOnlyTheFirst(JiraStdout):
    """Answers as Jira would if it echoed only the first build of each request."""

    async def send(self, kind: Kind, body: dict[str, Any]) -> Reply:
        first = body[kind][0]
        accepted = [{"pipelineId": first["pipelineId"], "buildNumber": first["buildNumber"]}]
        return Reply("bulk", 202, "application/json", {"acceptedBuilds": accepted})


async def test_an_update_jiras_answers_never_name_is_a_dead_letter_after_a_few(tmp_path: Path) -> None:
    cfg = settings(tmp_path, compass=DEPLOYS, jira=JIRA)
    store = Store(tmp_path / "state")
    try:
        recorder = Recorder(store, cfg, history=HistoryPolicy({}))
        recorder.record(finished(job="a", number=1, branch="ABC-1"))
        recorder.record(finished(job="b", number=1, branch="ABC-2"))
        items = store.due_items(10, sink="jira")
        sink = JiraSink(cfg, transport=NamesOnlyTheFirst(io.StringIO()), bucket=TokenBucket(0, 1))
        outcomes: list[str] = []
        for _ in range(UNNAMED_MAX):
            results = {s.item.pipeline_id: s.result for s in await sink.send_many(items)}
            result, first = results["b#1"], results["a#1"]
            assert result is not None and first is not None and first.outcome == "accepted"
            outcomes.append(result.outcome)
        assert outcomes == ["retry"] * (UNNAMED_MAX - 1) + ["rejected"]
        assert result is not None and "never named it" in (result.detail or "")
    finally:
        store.close()


async def test_an_update_that_cannot_be_rendered_is_a_dead_letter_alone(tmp_path: Path) -> None:
    cfg = settings(tmp_path, compass=DEPLOYS, jira=JIRA)
    store = Store(tmp_path / "state")
    try:
        recorder = Recorder(store, cfg, history=HistoryPolicy({}))
        recorder.record(finished(job="a", number=1, branch="ABC-1"))
        recorder.record(finished(job="b", number=1, branch="ABC-2"))
        (row,) = store.read_rows("SELECT data FROM updates WHERE pipeline_id = 'a#1'")
        data = json.loads(row[0])
        data["at_ms"] = float("inf")  # JSON's Infinity: int() of it overflows
        with store.batch():
            store._db.execute("UPDATE updates SET data = ? WHERE pipeline_id = 'a#1'", (json.dumps(data),))
        sink = JiraSink(cfg, transport=JiraStdout(io.StringIO()), bucket=TokenBucket(0, 1))
        results = {
            s.item.pipeline_id: s.result for s in await sink.send_many(store.due_items(10, sink="jira"))
        }
        assert results["a#1"] is not None and results["a#1"].outcome == "rejected"
        assert "no item for Jira" in (results["a#1"].detail or "")
        assert results["b#1"] is not None and results["b#1"].outcome == "accepted"
    finally:
        store.close()
