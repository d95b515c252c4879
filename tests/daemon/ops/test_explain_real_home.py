"""``buildtail explain`` on a copy of a real Jenkins home (``shared/fixtures/jenkins-real`` next to the
checkout, skipped when absent): a multibranch project migrated by branch-api, with ``branches:
primary``, and the history rule explain reports being the daemon's own (``HistoryPolicy``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from daemon.events import RunFacts
from daemon.history import HistoryPolicy
from daemon.ops.explain import explain
from daemon.sources.jenkins.source import JenkinsSource
from daemon.store import Store
from tests.inprocess import settings_from

REPO = Path(__file__).resolve().parents[3]
REAL = REPO.parent / "shared" / "fixtures" / "jenkins-real" / "git-multibranch-migration"

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="real Jenkins homes (../shared) absent")


def _settings(tmp_path: Path, branches: str) -> Settings:
    raw: dict[str, Any] = {
        "host": "h",
        "state_dir": str(tmp_path / "state"),
        "sources": [{"type": "jenkins", "home": str(tmp_path / "home"), "branches": branches}],
    }
    return settings_from(raw)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    shutil.copytree(REAL, tmp_path / "home")
    (tmp_path / "state").mkdir()
    return tmp_path / "home"


def _start(settings: Settings, now_ms: int) -> None:
    """What a daemon's start records: the sources' cutoffs and their rules of what counts."""
    store = Store(settings.state_dir)
    try:
        policy = HistoryPolicy.for_daemon(store, [s.name for s in settings.jenkins_sources], now_ms)
        policy.note_scopes(store, settings.jenkins_sources, now_ms)
    finally:
        store.close()


def _only_run(settings: Settings, target: str) -> dict[str, Any]:
    runs: list[dict[str, Any]] = explain(settings, target)["runs"]
    assert len(runs) == 1
    return runs[0]


def test_primary_branch_counts_and_another_branch_is_filtered(tmp_path: Path, home: Path) -> None:
    settings = _settings(tmp_path, "primary")
    _start(settings, 1)  # watching since long before the home's runs: none of them is history
    master = _only_run(settings, "job/master#1")
    assert master["disk"]["head"]["name"] == "master"
    assert master["disk"]["head"]["kind"] == "branch"
    assert master["disk"]["head"]["primary"] is True
    assert master["excluded"] is None and master["history"] is None
    dev = _only_run(settings, "job/dev#1")
    assert dev["disk"]["head"]["primary"] is False
    assert "filtered: not the primary branch (branches: primary)" in dev["metrics"][0]["why_not"]


def test_a_run_left_out_before_the_rules_widened_is_history_as_the_daemon_says(
    tmp_path: Path, home: Path
) -> None:
    _start(_settings(tmp_path, "primary"), 1)
    wide = _settings(tmp_path, "all")
    _start(wide, int(time.time() * 1000))  # branches: primary -> all, now
    source = JenkinsSource(wide.jenkins_sources[0], host="h")
    source.discover()
    run_dir = source.run_dir("job/dev", 1)
    assert run_dir is not None
    facts = source.observe(run_dir)
    assert isinstance(facts, RunFacts)
    store = Store(wide.state_dir, readonly=True)
    try:
        daemon_says = HistoryPolicy.stored(store, [wide.jenkins_sources[0].name]).why_history(
            facts, None, arrived=False
        )
    finally:
        store.close()
    assert daemon_says is not None and "not the primary branch" in daemon_says
    dev = _only_run(wide, "job/dev#1")
    assert dev["excluded"] is None
    assert dev["history"] == daemon_says
    assert not any("never recorded" in r for r in dev["metrics"][0]["why_not"])
    assert _only_run(wide, "job/master#1")["history"] is None  # counted under both rules: news
