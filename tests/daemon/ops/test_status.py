"""``buildtail status`` per sink, on a real state database holding rows of Compass and of Jira: each
sink's queue, pause and its cause, last delivery, dead letters and budget, with the keys from before
there were sinks still Compass's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import now_ms
from daemon.config.light import StatusSettings, read_status_settings
from daemon.ops.status import EXIT_NOT_RUNNING, collect, render
from daemon.store import Store
from tests.daemon.test_store import event, run_row

COMPASS: dict[str, Any] = {"site": "example.atlassian.net", "api_token": "t"}
JIRA: dict[str, Any] = {"site": "example.atlassian.net", "client_id": "c", "client_secret": "s"}


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """Three runs queued for both sinks; Compass delivered one and is running, Jira is paused for
    its credentials with one dead letter and its own budget."""
    store = Store(tmp_path / "state")
    for number in (1, 2, 3):
        row = run_row("app", number)
        assert store.record(row, event(row.pipeline_id, row.state), prior=None, sinks=("compass", "jira"))
    jira_item, _ = store.next_due(sink="jira")
    compass_item, _ = store.next_due(sink="compass")
    assert jira_item is not None and compass_item is not None
    store.ack(compass_item)
    store.set_sink_fact("compass", "last_delivery_ms", now_ms() - 5_000)
    store.dead_letter(jira_item, {"builds": []}, 400, "rejected: issueKeys: 1 to 100 keys like ABC-123")
    store.set_delivery_state("HTTP 401 from the token endpoint", sink="jira", cause="credentials")
    budget = {"limit": 100, "burst": 10, "paced": 100, "tokens": 9.0, "sent_last_minute": 1}
    store.set_sink_fact("jira", "budget", {**budget, "at_ms": now_ms()})
    store.close()
    yield tmp_path / "state"


def test_each_sink_shows_its_own_share(state: Path) -> None:
    report = collect(StatusSettings(state, COMPASS, JIRA))
    compass, jira = report["sinks"]["compass"], report["sinks"]["jira"]
    assert (compass["queue"]["depth"], jira["queue"]["depth"]) == (2, 2)
    assert compass["delivery"]["state"] == "running" and compass["last_delivery"]["age_s"] >= 5
    assert compass["dead_letters"]["count"] == 0 and compass["budget"] is None
    assert jira["delivery"]["state"] == "paused" and jira["delivery"]["cause"] == "credentials"
    assert jira["delivery"]["reason"] == "HTTP 401 from the token endpoint"
    assert jira["last_delivery"] is None and jira["queue"]["oldest_at"] is not None
    assert [d["status"] for d in jira["dead_letters"]["items"]] == [400]
    assert jira["budget"]["limit_per_minute"] == 100 and jira["budget"]["tokens"] == 9.0
    # the keys from before: Compass's delivery, last delivery and budget; the queue and dead letters whole
    assert report["delivery"] == compass["delivery"] and report["last_delivery"] == compass["last_delivery"]
    assert report["queue"]["depth"] == 4 and report["dead_letters"]["count"] == 1
    assert report["attention"] == ["not_running", "paused", "dead_letters"]
    assert report["exit_code"] == EXIT_NOT_RUNNING


def test_the_text_has_a_block_per_sink(state: Path) -> None:
    lines = render(collect(StatusSettings(state, COMPASS, JIRA)))
    text = "\n".join(lines)
    start = lines.index(next(line for line in lines if line.startswith("sink jira")))
    assert "PAUSED since" in lines[start] and "HTTP 401 from the token endpoint" in lines[start], text
    assert "  queue          2 event(s), oldest" in lines[start + 1], text
    assert "  pause cause    credentials" in text and "  rate budget    100/min, burst 10" in text
    assert "  dead letters   1" in text and "    app#1 seq" in text
    assert any(line.startswith("sink compass") for line in lines), text


def test_without_jira_the_report_is_compass_alone(state: Path) -> None:
    report = collect(StatusSettings(state, COMPASS))
    assert list(report["sinks"]) == ["compass"]
    assert "paused" not in report["attention"]  # Jira's pause is not this configuration's concern
    assert not any(line.startswith("sink ") for line in render(report))


def test_the_jira_section_is_read_without_its_models(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path}\njira:\n  site: example.atlassian.net\n")
    assert read_status_settings(config).jira == {"site": "example.atlassian.net"}
