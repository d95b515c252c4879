"""``buildtail explain`` with a ``jira`` section: a real state database holding a run queued for
Compass and for Jira, the run on disk as ``tools/fake_jenkins`` writes it, and explain saying per
sink what was answered and, for Jira, whether the run goes there and why not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from daemon.events import RunFacts
from daemon.history import HistoryPolicy
from daemon.ops.explain import explain
from daemon.ops.explain_jira import jira_report
from daemon.ops.explain_render import render
from daemon.recorder import Recorder
from daemon.sinks.jira.keys import IssueKeys
from daemon.sources.jenkins.source import JenkinsSource
from daemon.store import Answered, RunRow, Store
from tests.daemon.test_events import facts
from tests.inprocess import settings_from
from tools.fake_jenkins import JenkinsHome

JOB = "team/app"
COMPONENT = "ari:cloud:compass:c/app"


def _settings(tmp_path: Path, home: JenkinsHome, **jira: Any) -> Settings:
    return settings_from(
        {
            "host": "build01.example.com",
            "state_dir": str(tmp_path / "state"),
            "sources": [{"type": "jenkins", "home": str(home.root), "url": "https://jenkins.example.com/"}],
            "compass": {"components": [{"match": "team/**", "component_id": COMPONENT}]},
            "jira": {
                "site": "example.atlassian.net",
                "client_id": "c",
                "client_secret": "s",
                "project_keys": ["OPS"],
                **jira,
            },
        }
    )


@pytest.fixture
def finished(tmp_path: Path) -> tuple[JenkinsHome, int]:
    """A finished run on disk, recorded for both sinks: Compass accepted it, Jira dead-lettered it."""
    home = JenkinsHome(tmp_path / "jenkins")
    run = home.job(JOB).start(start_ms=1_700_000_000_000)
    run.changelog(["OPS-1 the login page"])
    run.finish("SUCCESS", duration_ms=500)
    store = Store(tmp_path / "state")
    row = RunRow("jenkins", JOB, run.number, 1, f"{JOB}#{run.number}", 1_700_000_000_000, None, None,
                 "SUCCESSFUL", True)  # fmt: skip
    assert store.record(row, {"event": {}}, prior=None, sinks=("compass", "jira"))
    compass, _ = store.next_due(sink="compass")
    jira, _ = store.next_due(sink="jira")
    assert compass is not None and jira is not None
    store.ack_many([compass], [Answered(202, "", "build01.example.com", COMPONENT)])
    refused = '{"rejectedBuilds":[{"errors":[{"message":"the issue keys given are not on this site"}]}]}'
    store.dead_letter(jira, {"builds": []}, 202, refused, answer=Answered(202, refused))
    store.close()
    return home, run.number


def test_answers_and_the_verdict_per_sink(tmp_path: Path, finished: tuple[JenkinsHome, int]) -> None:
    home, number = finished
    [run] = explain(_settings(tmp_path, home), f"{JOB}#{number}")["runs"]
    assert sorted(a["sink"] for a in run["events"]["answers"]) == ["compass", "jira"]
    assert [d["sink"] for d in run["events"]["dead_letters"]] == ["jira"]
    compass = [m for m in run["metrics"] if m["sink"] == "compass"]
    assert [m["counts"] for m in compass] == [True, True], compass  # Jira's dead letter is not Compass's
    jira = [m for m in run["metrics"] if m["sink"] == "jira"]
    assert [m["metric"] for m in jira] == ["Jira: builds in the development panel of each issue"]
    assert run["jira"]["goes"] is False and jira[0]["counts"] is False
    assert run["jira"]["why_not"][0].startswith("not accepted: dead letter (HTTP 202)"), run["jira"]
    assert run["jira"]["issue_keys"]["keys"] == ["OPS-1"] and run["jira"]["notes"] == [], run["jira"]
    text = "\n".join(render(explain(_settings(tmp_path, home), f"{JOB}#{number}")))
    assert "(jira)" in text and "to Jira      NO" in text, text
    assert "shows        Jira: builds in the development panel of each issue: NO" in text, text
    assert "build success rate: yes" in text


def test_no_keys_cut_keys_and_other_projects(tmp_path: Path, finished: tuple[JenkinsHome, int]) -> None:
    home, number = finished
    settings = _settings(tmp_path, home)
    [run] = explain(settings, f"{JOB}#{number}")["runs"]
    none = jira_report(settings, run, None, IssueKeys((), ignored=("UTF-8",)))
    assert none["goes"] is False
    assert none["why_not"][0].startswith("no issue keys: Jira stores nothing without one"), none
    assert "left out: UTF-8" in none["why_not"][0]
    cut = jira_report(settings, run, None, IssueKeys(("OPS-1",), cut=("OPS-101",), ignored=("SHA-256",)))
    assert cut["issue_keys"]["keys"] == ["OPS-1"] and all(
        w.startswith("not accepted") for w in cut["why_not"]
    )
    assert any("cut at Jira's 100 per build: OPS-101" in n for n in cut["notes"]), cut
    assert any("outside jira.project_keys left out: SHA-256" in n for n in cut["notes"]), cut


def test_a_kind_not_sent_to_jira_says_so(tmp_path: Path, finished: tuple[JenkinsHome, int]) -> None:
    home, number = finished
    settings = _settings(tmp_path, home, builds=False)
    [run] = explain(settings, f"{JOB}#{number}")["runs"]
    assert run["jira"]["why_not"] == ["jira.builds is false: builds are not sent to Jira"]


def test_without_jira_nothing_about_it(tmp_path: Path, finished: tuple[JenkinsHome, int]) -> None:
    home, number = finished
    raw = _settings(tmp_path, home).model_dump(mode="json", exclude={"jira"}, exclude_none=True)
    [run] = explain(settings_from(raw), f"{JOB}#{number}")["runs"]
    assert "jira" not in run and all(m["sink"] == "compass" for m in run["metrics"])


def test_the_keys_come_from_the_runs_own_changelog(tmp_path: Path) -> None:
    """The issue keys explain shows are the Jira sink's own decision on the run's files: its
    changelog's messages, each with where it was found; a key outside project_keys is left out."""
    home = JenkinsHome(tmp_path / "jenkins")
    run = home.job(JOB).start(start_ms=1_700_000_000_000)
    run.changelog(["OPS-7 fix the login\n\nand UTF-8 in names"])
    run.finish("SUCCESS", duration_ms=500)
    Store(tmp_path / "state").close()  # a daemon ran once, and recorded nothing of this run
    settings = _settings(tmp_path, home)
    [report] = explain(settings, f"{JOB}#{run.number}")["runs"]
    keys = report["jira"]["issue_keys"]
    assert keys["keys"] == ["OPS-7"] and keys["ignored"] == ["UTF-8"], keys
    assert keys["evidence"]["OPS-7"].startswith("commit "), keys
    text = "\n".join(render(explain(settings, f"{JOB}#{run.number}")))
    assert "issue keys   OPS-7 (commit " in text, text


def test_a_run_in_progress_shows_the_keys_kept_for_it(tmp_path: Path) -> None:
    """A run queued for Jira under OPS-5 (its branch then) keeps going there with OPS-5, whatever
    its files and jira.builds say now: explain shows those keys and no reason it would not go."""
    home = JenkinsHome(tmp_path / "jenkins")
    run = home.job(JOB).start(start_ms=1_700_000_000_000)
    run.changelog(["OPS-7 fix the login"])
    store = Store(tmp_path / "state")
    settings = _settings(tmp_path, home)
    recorder = Recorder(store, settings, history=HistoryPolicy({}))
    assert recorder.record(replace(facts(), job=JOB, number=run.number, branch="OPS-5-login")) is not None
    store.close()
    [report] = explain(_settings(tmp_path, home, builds=False), f"{JOB}#{run.number}")["runs"]
    assert report["jira"]["why_not"] == [] or all(
        "builds is false" not in w for w in report["jira"]["why_not"]
    )
    assert any(n.endswith("first queued for Jira: OPS-5") for n in report["jira"]["notes"]), report["jira"]


def test_a_build_jira_accepted_still_goes_after_builds_are_switched_off(
    tmp_path: Path, finished: tuple[JenkinsHome, int]
) -> None:
    """Jira accepted the run's final update; ``jira.builds`` reloaded to false since: the daemon
    sends Jira the later updates of a run it has (``jira_wants``), so nothing keeps this one out."""
    home, number = finished
    store = Store(tmp_path / "state")
    row = RunRow("jenkins", JOB, number, 1, f"{JOB}#{number}", 1_700_000_000_000, None, None,
                 "SUCCESSFUL", True)  # fmt: skip
    assert store.record(row, {"event": {}}, prior=row, sinks=("jira",)) is not None
    item, _ = store.next_due(sink="jira")
    assert item is not None
    store.ack_many([item], [Answered(202, "")])
    store.close()
    [run] = explain(_settings(tmp_path, home, builds=False), f"{JOB}#{number}")["runs"]
    assert run["jira"]["goes"] is True, run["jira"]
    assert run["jira"]["why_not"] == [], run["jira"]


def test_a_deployment_counts_the_keys_it_carries(tmp_path: Path) -> None:
    """A deployment that names no issue itself carries the keys of the earlier one to the same
    environment that failed (the sink's facts, written by the recorder): explain counts them, as
    ``jira_wants`` does, instead of saying it names no issue key."""
    home = JenkinsHome(tmp_path / "jenkins")
    job = home.job("team/deploy", "pipeline")
    failed = job.start(start_ms=1_700_000_000_000, parameters={"TARGET": "prod"})
    failed.changelog(["OPS-3 the new login"])
    failed.finish("FAILURE", duration_ms=500)
    again = job.start(start_ms=1_700_000_100_000, parameters={"TARGET": "prod"})
    again.finish("SUCCESS", duration_ms=500)
    raw = _settings(tmp_path, home).model_dump(mode="json", exclude_none=True)
    raw["compass"]["deployments"] = [
        {
            "match": "team/deploy",
            "environment_parameter": "TARGET",
            "environments": {"prod": {"category": "PRODUCTION", "name": "production"}},
        }
    ]
    settings = settings_from(raw)
    source = JenkinsSource(settings.jenkins_sources[0], host=settings.host, changelog=True)
    source.discover()
    first_dir = source.run_dir("team/deploy", failed.number)
    assert first_dir is not None
    first = source.observe(first_dir)
    assert isinstance(first, RunFacts)
    store = Store(tmp_path / "state")
    assert Recorder(store, settings, history=HistoryPolicy({})).record(first) is not None
    store.close()
    [run] = explain(settings, f"team/deploy#{again.number}")["runs"]
    assert run["kind"] == "deployment"
    keys = run["jira"]["issue_keys"]
    assert keys["keys"] == ["OPS-3"] and keys["evidence"]["OPS-3"] == "earlier deployment", run["jira"]
    assert not any(w.startswith("no issue keys") for w in run["jira"]["why_not"]), run["jira"]
