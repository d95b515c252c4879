"""Conformance against real GoCD consoles and CruiseControl logs kept in ../shared next to the checkout.

Each sample goes through what the daemon runs: the preset's source (a first poll over an empty
home, then the sample's files arriving, as copies keep their old times), the file runner, the
event rules and a real state database. Every gocd and cruisecontrol row of EXPECTED.csv must come
out as Compass would be told: its pipelineId, state, startedAt and completedAt (within 2 s).
"""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import now_ms
from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.history import HistoryPolicy
from daemon.recorder import Recorder
from daemon.sinks import StdoutTransport
from daemon.sinks.compass.sink import CompassSink
from daemon.sources.files.runner import FileSourceRunner
from daemon.sources.runner import RunnerContext
from daemon.store import Store
from tools.daemon_process import REPO

FIXTURES = REPO.parent / "shared" / "fixtures" / "ci-real"
KINDS = {"gocd": "artifacts", "cruisecontrol": "logs"}  # the preset, and what the sample keeps of its home
TOLERANCE_MS = 2000

pytestmark = pytest.mark.skipif(
    not (FIXTURES / "EXPECTED.csv").is_file(),
    reason="real CI records (../shared next to the checkout) absent",
)


def _policy(store: Store, settings: Settings) -> HistoryPolicy:
    """The daemon's first start: every configured source is new."""
    return HistoryPolicy.for_daemon(store, [c.name for c in settings.sources], now_ms())


@dataclass(frozen=True)
class Row:
    sample: str
    kind: str
    zone: str
    ids: tuple[str, ...]  # the expected pipelineId first, then any alternative the notes allow
    running: bool
    state: str
    start_ms: int
    end_ms: int


def _samples() -> dict[str, tuple[str, str]]:
    """sample -> (kind, time zone), from SAMPLES.tsv."""
    found: dict[str, tuple[str, str]] = {}
    for line in (FIXTURES / "SAMPLES.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            kind, sample, zone, *_ = line.split("\t")
            found[sample] = (kind, zone)
    return found


def _rows() -> list[Row]:
    if not (FIXTURES / "EXPECTED.csv").is_file():
        return []
    samples = _samples()
    rows = []
    with (FIXTURES / "EXPECTED.csv").open(newline="", encoding="utf-8") as handle:
        for raw in csv.DictReader(handle):
            kind, zone = samples.get(raw["sample"], ("", "UTC"))
            if kind not in KINDS:
                continue
            notes = [n.strip() for n in raw["notes"].split(";")]
            alternatives = [n.split("=", 1)[1] for n in notes if n.startswith("alt_number=")]
            start = int(raw["start_ms"])
            rows.append(
                Row(
                    sample=raw["sample"],
                    kind=kind,
                    zone=zone,
                    ids=tuple(f"{raw['job']}#{n}" for n in [raw["number"], *alternatives]),
                    running=raw["running"] == "true",
                    state=raw["expected_state"],
                    start_ms=start,
                    end_ms=start + int(raw["duration_ms"]),
                )
            )
    return rows


@pytest.fixture
def zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """The process runs in the sample's zone, as the CI server did (and the source is told too)."""
    name: str = request.param
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    yield name
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


_results: dict[str, dict[str, dict[str, Any]]] = {}


def _run(sample: str, kind: str, zone: str, tmp: Path) -> dict[str, dict[str, Any]]:
    """pipelineId -> the last event queued for it, after the sample's files arrived."""
    home = tmp / "home"
    (home / KINDS[kind]).mkdir(parents=True)
    settings = Settings.model_validate(
        {
            "host": "ci.example.com",
            "state_dir": str(tmp / "state"),
            "sources": [{"preset": kind, "home": str(home), "timezone": zone, "watch": "polling"}],
        }
    )
    store = Store(settings.state_dir)
    recorder = Recorder(store, settings, history=_policy(store, settings))
    runner = FileSourceRunner(settings.file_sources[0], RunnerContext(settings.host, store, recorder, None))
    asyncio.run(runner.start(first_start=True))  # the first start: an empty home
    shutil.copytree(FIXTURES / kind / sample / KINDS[kind], home / KINDS[kind], dirs_exist_ok=True)
    runner.overflow()  # poll now
    asyncio.run(runner.due())
    events: dict[str, dict[str, Any]] = {}
    sink = CompassSink(settings, transport=StdoutTransport(), bucket=TokenBucket(0, 1), cloud_id="c")
    while (item := store.next_due()[0]) is not None:  # what would be sent, in the order it would go
        events[item.pipeline_id] = sink.event(item)["event"]["build"]
        store.ack(item)
    store.close()
    return events


def _events(sample: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    if sample not in _results:
        kind, zone = _samples()[sample]
        _results[sample] = _run(sample, kind, zone, tmp_path_factory.mktemp(sample))
    return _results[sample]


ROWS = _rows()


@pytest.mark.parametrize(
    ("row", "zone"),
    [pytest.param(row, row.zone, id=f"{row.sample}:{row.ids[0]}") for row in ROWS],
    indirect=["zone"],
)
def test_real_record_through_the_preset_source(
    row: Row, zone: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    events = _events(row.sample, tmp_path_factory)
    found = [pid for pid in row.ids if pid in events]
    assert found, f"none of {row.ids} reported; reported: {sorted(events)}"
    build = events[found[0]]["buildProperties"]
    assert build["state"] == ("IN_PROGRESS" if row.running else row.state)
    assert abs(_ms(build["startedAt"]) - row.start_ms) <= TOLERANCE_MS, build["startedAt"]
    if row.running:
        assert build["completedAt"] is None
    else:
        assert abs(_ms(build["completedAt"]) - row.end_ms) <= TOLERANCE_MS, build["completedAt"]


@pytest.mark.parametrize(
    ("sample", "zone"),
    [pytest.param(sample, _samples()[sample][1], id=sample) for sample in sorted({r.sample for r in ROWS})],
    indirect=["zone"],
)
def test_every_run_reported_is_a_real_one(
    sample: str, zone: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No run twice under another id (a failure must not take the label of the success after it)."""
    events = _events(sample, tmp_path_factory)
    expected = [row.ids for row in ROWS if row.sample == sample]
    assert len(events) == len(expected), sorted(events)
    assert all(any(pid in events for pid in ids) for ids in expected)


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
