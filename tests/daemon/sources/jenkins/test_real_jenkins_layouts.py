"""Odd Jenkins layouts from real homes, through the daemon's own Jenkins runner, recorder and store.

The samples are ``shared/fixtures/ci-real/jenkins`` next to the checkout (skipped when absent):
URL-encoded branch directories without ``name-utf8.txt`` (branch-api before its name mangler), and
two *different* builds with the same number in legacy date-named directories. Every row of the
oracle must arrive as what would be sent: ``<job>#<number>`` (a clashing number as ``#<n>.<k>``),
its state, and startedAt/completedAt within 2 s. ``backfill`` must find and queue the same runs.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.backfill import find_history
from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.history import HistoryPolicy
from daemon.recorder import Recorder
from daemon.sinks import StdoutTransport
from daemon.sinks.compass.sink import CompassSink
from daemon.sources.jenkins.runner import JenkinsRunner
from daemon.sources.runner import RunnerContext
from daemon.store import PRIORITY_BACKFILL, Store
from tools.daemon_process import REPO

FIXTURES = REPO.parent / "shared" / "fixtures" / "ci-real"
pytestmark = pytest.mark.skipif(
    not (FIXTURES / "EXPECTED.csv").is_file(),
    reason="real CI records (../shared next to the checkout) absent",
)


@dataclass(frozen=True)
class Row:
    sample: str
    job: str
    number: str
    state: str
    start_ms: int
    end_ms: int
    clash: bool


def _rows() -> list[Row]:
    if not (FIXTURES / "EXPECTED.csv").is_file():
        return []
    kinds = {}
    with (FIXTURES / "SAMPLES.tsv").open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            kind, sample, *_ = line.rstrip("\n").split("\t")
            kinds[sample] = kind
    out = []
    with (FIXTURES / "EXPECTED.csv").open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if kinds.get(r["sample"]) != "jenkins":
                continue
            start = int(r["start_ms"])
            out.append(
                Row(
                    r["sample"],
                    r["job"],
                    r["number"],
                    r["expected_state"],
                    start,
                    start + int(r["duration_ms"]),
                    "number-clash" in r["notes"],
                )
            )
    return out


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _settings(home: Path, state: Path) -> Settings:
    return Settings.model_validate(
        {
            "host": "ci.example.com",
            "state_dir": str(state),
            "sources": [{"type": "jenkins", "home": str(home), "watch": "polling"}],
        }
    )


def _drain(store: Store, settings: Settings) -> list[dict[str, Any]]:
    """What would be sent to Compass, in the order it would go."""
    sink = CompassSink(settings, transport=StdoutTransport(), bucket=TokenBucket(0, 1), cloud_id="c")
    out = []
    while (item := store.next_due()[0]) is not None:
        out.append(sink.event(item)["event"]["build"])
        store.ack(item)
    return out


def _through_the_runner(home: Path, state: Path) -> list[dict[str, Any]]:
    """What a daemon that was already running sends when these runs appear in its home."""
    settings = _settings(home, state)
    store = Store(state)
    recorder = Recorder(store, settings, history=HistoryPolicy({}))
    runner = JenkinsRunner(settings.jenkins_sources[0], RunnerContext(settings.host, store, recorder, None))
    asyncio.run(runner.start(first_start=False))
    events = _drain(store, settings)
    asyncio.run(runner.close())
    store.close()
    return events


def _through_backfill(home: Path, state: Path) -> list[dict[str, Any]]:
    """What ``buildtail backfill --since`` a long time queues for the same home."""
    settings = _settings(home, state)
    store = Store(state)
    recorder = Recorder(store, settings, history=HistoryPolicy.backfill(0))
    for facts in find_history(settings, store, since_ms=0):
        recorder.record(facts, priority=PRIORITY_BACKFILL)
    events = _drain(store, settings)
    store.close()
    return events


ROWS = _rows()
SAMPLES = sorted({r.sample for r in ROWS})


@pytest.fixture(params=["runner", "backfill"])
def sent(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """sample -> the events each way of finding runs queues for it."""
    how = _through_the_runner if request.param == "runner" else _through_backfill
    yield {
        sample: how(FIXTURES / "jenkins" / sample, tmp_path_factory.mktemp(f"{sample}-{request.param}"))
        for sample in SAMPLES
    }


def test_every_row_arrives_once_with_its_id_state_and_times(sent: dict[str, list[dict[str, Any]]]) -> None:
    assert ROWS
    for sample in SAMPLES:
        events = list(sent[sample])
        rows = [r for r in ROWS if r.sample == sample]
        assert len(events) == len(rows), (
            sample,
            [e["buildProperties"]["pipeline"]["pipelineId"] for e in events],
        )
        for row in rows:
            base = f"{row.job}#{row.number}"
            candidates = [
                e
                for e in events
                if (pid := e["buildProperties"]["pipeline"]["pipelineId"]) == base
                or (row.clash and pid.startswith(base + "."))
            ]
            match = [
                e for e in candidates if abs(_ms(e["buildProperties"]["startedAt"]) - row.start_ms) <= 2000
            ]
            assert match, (row, [e["buildProperties"] for e in candidates])
            event = match[0]
            props = event["buildProperties"]
            assert props["state"] == row.state, (row, props)
            assert abs(_ms(props["completedAt"]) - row.end_ms) <= 2000, (row, props)
            events.remove(event)


def test_clashing_numbers_get_distinct_pipeline_ids(sent: dict[str, list[dict[str, Any]]]) -> None:
    clashing = {(r.sample, r.job, r.number) for r in ROWS if r.clash}
    assert clashing
    for sample, job, number in clashing:
        ids = sorted(
            pid
            for e in sent[sample]
            if (pid := e["buildProperties"]["pipeline"]["pipelineId"]) == f"{job}#{number}"
            or pid.startswith(f"{job}#{number}.")
        )
        assert ids == [f"{job}#{number}", f"{job}#{number}.2"], ids
