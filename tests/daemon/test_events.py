"""The event rules (``next_update``) and Compass's body for each update (``build_event``) over
RunFacts, checked against the Compass contract."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from daemon import events
from daemon.config import Settings
from daemon.events import RunFacts, iso_ms, job_matches
from daemon.sinks.compass.render import build_event
from daemon.store import RunRow
from parsers import BranchHead
from tools.fake_compass import validate_body

START = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z
END = START + 95_250


def settings(tmp_path: Path, **extra: Any) -> Settings:
    compass = {
        "cloud_id": "cloud-1",
        "email": "bot@example.com",
        "site": "example.atlassian.net",
        "api_token": "x",
        **extra.pop("compass", {}),
    }
    return Settings.model_validate(
        {
            "host": "ci.example.com",
            "compass": compass,
            "sources": [{"type": "jenkins", "home": str(tmp_path)}],
            **extra,
        }
    )


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return settings(tmp_path)


def facts(**kw: Any) -> RunFacts:
    base = RunFacts(
        source="jenkins",
        job="team/app",
        number=3,
        running=True,
        start_ms=START,
        start_is_exact=True,
        dir_ino=1000,
        causes=("Started by user admin",),
        run_url="https://jenkins.example.com/job/team/job/app/3/",
        job_url="https://jenkins.example.com/job/team/job/app/",
    )
    return replace(base, **kw)


def finished(result: str = "SUCCESS", **kw: Any) -> RunFacts:
    return facts(**{"running": False, "result": result, "end_ms": END, **kw})


def never(_: str) -> bool:
    return False


@dataclass(frozen=True)
class Update:
    """A run's update with the Compass body rendered from it (sequence number 0), as sent."""

    update: events.Update
    event: dict[str, Any]

    @property
    def run(self) -> RunRow:
        return self.update.run


def next_update(
    facts: RunFacts, prior: RunRow | None, settings: Settings, *, taken: Callable[[str], bool]
) -> Update | None:
    """The real event rules, then the Compass sink's rendering of their update."""
    update = events.next_update(facts, prior, settings, taken=taken)
    return None if update is None else Update(update, build_event(update, 0, settings))


def checked(update: Update | None, seq: int = 17) -> dict[str, Any]:
    """The wire body: valid for Compass, returned for further assertions."""
    assert update is not None
    body = {"cloudId": "cloud-1", **update.event}
    body["event"]["build"]["updateSequenceNumber"] = seq
    problem = validate_body(body)
    assert problem is None, problem
    return body


def props(update: Update | None) -> dict[str, Any]:
    return checked(update)["event"]["build"]["buildProperties"]  # type: ignore[no-any-return]


def prior_from(update: Update | None, **kw: Any) -> RunRow:
    assert update is not None
    return replace(update.run, **kw)


# --- basic lifecycle --------------------------------------------------------------------------------


def test_new_running_run_is_in_progress(cfg: Settings) -> None:
    u = next_update(facts(), None, cfg, taken=never)
    assert u is not None
    p = props(u)
    assert p["state"] == "IN_PROGRESS"
    assert p["completedAt"] is None
    assert p["startedAt"] == "2023-11-14T22:13:20.000Z"
    assert p["pipeline"] == {
        "pipelineId": "team/app#3",
        "url": "https://jenkins.example.com/job/team/job/app/",
        "displayName": "team/app",
    }
    assert u.run.terminal is False
    assert u.run.generation == 1
    assert u.run.ci_start_ms == START
    b = checked(u)["event"]["build"]
    assert b["displayName"] == "team/app #3"
    assert b["url"] == "https://jenkins.example.com/job/team/job/app/3/"
    assert b["externalEventSourceId"] == "ci.example.com"
    assert b["description"] == "Running \u00b7 Started by user admin"
    assert "componentId" not in u.event


def test_finished_run_is_terminal_with_completed_at(cfg: Settings) -> None:
    u = next_update(finished("FAILURE"), None, cfg, taken=never)
    assert u is not None
    p = props(u)
    assert p["state"] == "FAILED"
    assert p["startedAt"] == iso_ms(START)
    assert p["completedAt"] == iso_ms(END) == "2023-11-14T22:14:55.250Z"
    assert u.run.terminal is True
    assert u.event["event"]["build"]["description"].startswith("FAILURE in 1m 35s")


def test_prior_in_progress_and_still_running_sends_nothing(cfg: Settings) -> None:
    prior = prior_from(next_update(facts(), None, cfg, taken=never))
    assert next_update(facts(), prior, cfg, taken=never) is None


def test_prior_in_progress_then_finished_keeps_identity(cfg: Settings) -> None:
    prior = prior_from(next_update(facts(start_ms=START, start_is_exact=False), None, cfg, taken=never))
    later = finished("SUCCESS", start_ms=START + 3_000)
    u = next_update(later, prior, cfg, taken=lambda pid: True)  # the id is taken by this very run
    assert u is not None
    assert u.run.pipeline_id == "team/app#3"
    assert u.run.started_at_ms == START
    assert u.run.generation == 1
    p = props(u)
    assert p["state"] == "SUCCESSFUL"
    assert p["pipeline"]["pipelineId"] == "team/app#3"
    assert p["startedAt"] == iso_ms(START)
    assert p["completedAt"] == iso_ms(END)


def test_prior_terminal_sends_nothing(cfg: Settings) -> None:
    prior = prior_from(next_update(finished(), None, cfg, taken=never))
    assert next_update(finished(), prior, cfg, taken=never) is None
    assert next_update(finished("FAILURE"), prior, cfg, taken=never) is None


# --- reused build numbers ---------------------------------------------------------------------------


def test_reused_number_with_a_different_exact_start_is_a_new_run(cfg: Settings) -> None:
    prior = prior_from(next_update(finished(), None, cfg, taken=never))
    within = finished(start_ms=START + 1_000, end_ms=END + 1_000)
    assert next_update(within, prior, cfg, taken=never) is None
    again = facts(start_ms=START + 86_400_000)
    u = next_update(again, prior, cfg, taken=lambda pid: pid == "team/app#3")
    assert u is not None
    assert u.run.pipeline_id == "team/app#3.2"
    assert u.run.generation == 2
    assert u.run.started_at_ms == START + 86_400_000
    assert props(u)["state"] == "IN_PROGRESS"


def test_reused_number_without_exact_starts_uses_the_inode(cfg: Settings) -> None:
    prior = prior_from(next_update(finished(start_is_exact=False), None, cfg, taken=never))
    assert prior.ci_start_ms is None
    assert next_update(finished(start_is_exact=False), prior, cfg, taken=never) is None
    u = next_update(facts(start_is_exact=False, dir_ino=2000), prior, cfg, taken=never)
    assert u is not None
    assert u.run.pipeline_id == "team/app#3.2"
    assert u.run.dir_ino == 2000


def test_taken_callback_forces_a_distinct_id(cfg: Settings) -> None:
    taken = {"team/app#3", "team/app#3.2"}
    u = next_update(facts(), None, cfg, taken=taken.__contains__)
    assert u is not None
    assert u.run.pipeline_id == "team/app#3.3"
    assert u.run.generation == 3
    assert props(u)["pipeline"]["pipelineId"] == "team/app#3.3"


# --- states -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "state"),
    [
        ("SUCCESS", "SUCCESSFUL"),
        ("UNSTABLE", "FAILED"),
        ("FAILURE", "FAILED"),
        ("ABORTED", "CANCELLED"),
        ("NOT_BUILT", "CANCELLED"),
        ("EXPLODED", "UNKNOWN"),
        ("UNKNOWN", "UNKNOWN"),
    ],
)
def test_result_to_state(cfg: Settings, result: str, state: str) -> None:
    assert props(next_update(finished(result), None, cfg, taken=never))["state"] == state


def test_aborted_by_timeout_is_timed_out(cfg: Settings) -> None:
    u = next_update(finished("ABORTED", timed_out=True), None, cfg, taken=never)
    assert props(u)["state"] == "TIMED_OUT"
    assert u is not None
    assert "(timed out)" in u.event["event"]["build"]["description"]


def test_state_map_override(tmp_path: Path) -> None:
    s = settings(tmp_path, state_map={"UNSTABLE": "SUCCESSFUL", "ABORTED": "ERROR"})
    assert props(next_update(finished("UNSTABLE"), None, s, taken=never))["state"] == "SUCCESSFUL"
    assert props(next_update(finished("ABORTED"), None, s, taken=never))["state"] == "ERROR"
    assert props(next_update(finished("FAILURE"), None, s, taken=never))["state"] == "FAILED"


# --- texts and templates ----------------------------------------------------------------------------


def test_display_name_and_description_capped_at_255(cfg: Settings) -> None:
    huge_job = "/".join(["folder" * 20] * 10)
    f = finished(
        "FAILURE",
        job=huge_job,
        causes=("Started by upstream project " + "x" * 600, "Started by user " + "y" * 600),
        commit="a" * 40,
        branch="main",
    )
    u = next_update(f, None, cfg, taken=never)
    b = checked(u)["event"]["build"]
    assert len(b["displayName"]) == 255
    assert b["displayName"].endswith("\u2026")
    assert len(b["description"]) == 255
    assert b["description"].endswith("\u2026")


def test_display_name_uses_jenkins_display_name(cfg: Settings) -> None:
    u = next_update(finished(display_name="release-1.2"), None, cfg, taken=never)
    assert checked(u)["event"]["build"]["displayName"] == "team/app release-1.2"


def test_commit_in_description(cfg: Settings) -> None:
    u = next_update(finished(commit="0123456789abcdef0123", branch="main"), None, cfg, taken=never)
    assert checked(u)["event"]["build"]["description"] == (
        "SUCCESS in 1m 35s \u00b7 Started by user admin \u00b7 commit 0123456789ab on main"
    )


def test_a_pull_requests_run_says_so(cfg: Settings) -> None:
    head = BranchHead(
        name="PR-12", kind="pull_request", pr_id="12", pr_title="Fix the login page", pr_target="main"
    )
    f = finished(job="shop/PR-12", head=head, commit="0123456789abcdef0123", branch="fix-login")
    u = next_update(f, None, cfg, taken=never)
    assert checked(u)["event"]["build"]["description"] == (
        "SUCCESS in 1m 35s \u00b7 PR-12: Fix the login page (into main) \u00b7 Started by user admin"
        " \u00b7 commit 0123456789ab on fix-login"
    )
    untitled = replace(head, pr_title=None, pr_target=None)
    u = next_update(finished(job="shop/PR-12", head=untitled), None, cfg, taken=never)
    assert "\u00b7 PR-12 \u00b7" in checked(u)["event"]["build"]["description"]
    for branch in (BranchHead(name="main", kind="branch", primary=True), BranchHead(name="v1", kind="tag")):
        u = next_update(finished(head=branch), None, cfg, taken=never)
        assert checked(u)["event"]["build"]["description"] == "SUCCESS in 1m 35s \u00b7 Started by user admin"


def test_a_queued_update_keeps_its_head_and_older_ones_have_none(cfg: Settings) -> None:
    head = BranchHead(name="PR-1", kind="pull_request", pr_id="1", pr_title="Fix")
    update = events.next_update(finished(head=head), None, cfg, taken=never)
    assert update is not None
    stored = json.loads(json.dumps(events.update_to_json(update)))
    assert events.update_from_json(stored) == update
    del stored["facts"]["head"]  # queued by a release that read no heads
    assert events.update_from_json(stored).facts.head is None


def test_event_source_template_with_job(tmp_path: Path) -> None:
    s = settings(tmp_path, compass={"event_source": "{host}:{job}"})
    u = next_update(facts(), None, s, taken=never)
    assert checked(u)["event"]["build"]["externalEventSourceId"] == "ci.example.com:team/app"


def test_components_glob_mapping(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        compass={
            "components": [
                {"match": "payments/*", "component_id": "ari:one-level"},
                {"match": "payments/**", "component_id": "ari:payments"},
                {"match": "*", "component_id": "ari:top"},
            ]
        },
    )
    deep = next_update(facts(job="payments/a/b"), None, s, taken=never)
    assert checked(deep)["componentId"] == "ari:payments"
    shallow = next_update(facts(job="payments/a"), None, s, taken=never)
    assert checked(shallow)["componentId"] == "ari:one-level"
    top = next_update(facts(job="standalone"), None, s, taken=never)
    assert checked(top)["componentId"] == "ari:top"
    nested_other = next_update(facts(job="shop/main"), None, s, taken=never)
    assert "componentId" not in checked(nested_other)


def test_job_matches() -> None:
    assert job_matches("payments/**", "payments/a/b")
    assert job_matches("payments/*", "payments/a")
    assert not job_matches("payments/*", "payments/a/b")
    assert not job_matches("*", "a/b")
    assert job_matches("*", "a")
    assert job_matches("app-?", "app-1")
    assert not job_matches("app-?", "app-12")
    assert not job_matches("pay", "payments")
    assert not job_matches("a.b", "axb")
    # **/ at the start of a part: zero or more folders
    assert job_matches("**/seed-job", "seed-job") and job_matches("**/seed-job", "ops/infra/seed-job")
    assert not job_matches("**/seed-job", "my-seed-job")
    assert job_matches("a/**/b", "a/b") and job_matches("a/**/b", "a/x/y/b")
    assert not job_matches("a/**/b", "ab") and not job_matches("x**/b", "b")


def test_iso_ms_format() -> None:
    pattern = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(START + 7) == "2023-11-14T22:13:20.007Z"
    assert iso_ms(1_359_531_807_999) == "2013-01-30T07:43:27.999Z"
    for ms in (1, 999, 1_000, 1_700_000_000_123, 4_102_444_800_000):
        assert pattern.match(iso_ms(ms)), iso_ms(ms)


def test_completed_never_before_started(cfg: Settings) -> None:
    u = next_update(finished(end_ms=START - 5_000), None, cfg, taken=never)
    p = props(u)
    assert p["completedAt"] == p["startedAt"] == iso_ms(START)


def test_every_body_validates(cfg: Settings) -> None:
    cases = [
        facts(),
        finished(),
        finished("ABORTED", timed_out=True),
        finished("NOT_BUILT", causes=()),
        finished("SUCCESS", job_url=None, display_name="#3 \u00fcber \U0001f680"),
        facts(causes=("\t tabs  and\nnewlines ",)),
    ]
    for f in cases:
        checked(next_update(f, None, cfg, taken=never))


# --- deployments ------------------------------------------------------------------------------------

DEPLOYS = {
    "deployments": [
        {"match": "deploy-*", "environment": {"category": "PRODUCTION", "name": "production", "id": "prod"}},
        {
            "match": "release",
            "environment_parameter": "TARGET_ENV",
            "environments": {"stage": {"category": "STAGING", "name": "staging"}},
        },
    ]
}


def deployed(update: Update | None, seq: int = 17) -> dict[str, Any]:
    """The deployment event's wire body, valid for Compass."""
    assert update is not None and update.run.kind == "deployment"
    body = {"cloudId": "cloud-1", **update.event}
    body["event"]["deployment"]["updateSequenceNumber"] = seq
    problem = validate_body(body)
    assert problem is None, problem
    return body["event"]["deployment"]  # type: ignore[no-any-return]


def test_a_deploy_job_sends_deployment_events(tmp_path: Path) -> None:
    cfg = settings(tmp_path, compass=DEPLOYS)
    first = next_update(facts(job="deploy-shop", number=12), None, cfg, taken=never)
    event = deployed(first)
    assert event["displayName"] == "deploy-shop #12 to production"
    props = event["deploymentProperties"]
    assert props["state"] == "IN_PROGRESS" and props["sequenceNumber"] == 12
    assert props["environment"] == {
        "category": "PRODUCTION",
        "displayName": "production",
        "environmentId": "prod",
    }
    assert props["pipeline"]["pipelineId"] == "deploy-shop#12" and props["pipeline"]["url"]
    assert props["completedAt"] is None
    assert first is not None
    final = deployed(next_update(finished(job="deploy-shop", number=12), first.run, cfg, taken=never))
    assert final["deploymentProperties"]["state"] == "SUCCESSFUL"
    assert final["deploymentProperties"]["startedAt"] == props["startedAt"]
    assert final["deploymentProperties"]["completedAt"] == iso_ms(END)


def test_a_build_parameter_says_where_it_deployed(tmp_path: Path) -> None:
    cfg = settings(tmp_path, compass=DEPLOYS)
    staged = deployed(
        next_update(finished(job="release", parameters=(("TARGET_ENV", "stage"),)), None, cfg, taken=never)
    )
    assert staged["deploymentProperties"]["environment"]["category"] == "STAGING"
    other = deployed(
        next_update(finished(job="release", parameters=(("TARGET_ENV", "qa"),)), None, cfg, taken=never)
    )
    assert other["deploymentProperties"]["environment"] == {
        "category": "UNMAPPED",
        "displayName": "qa",
        "environmentId": "qa",
    }
    plain = next_update(finished(job="release"), None, cfg, taken=never)
    assert plain is not None and plain.run.kind == "build", "no parameter: reported as a build"
    checked(plain)


@pytest.mark.parametrize(
    ("result", "timed_out", "state_map", "state"),
    [
        ("UNSTABLE", False, {}, "FAILED"),
        ("ABORTED", True, {}, "FAILED"),  # a deployment has no TIMED_OUT
        ("ABORTED", False, {}, "CANCELLED"),
        ("ABORTED", False, {"ABORTED": "ROLLED_BACK"}, "ROLLED_BACK"),
        ("BOGUS", False, {}, "UNKNOWN"),
    ],
)
def test_deployment_states(
    tmp_path: Path, result: str, timed_out: bool, state_map: dict[str, str], state: str
) -> None:
    cfg = settings(tmp_path, compass=DEPLOYS, state_map=state_map)
    update = next_update(finished(result, job="deploy-x", timed_out=timed_out), None, cfg, taken=never)
    assert deployed(update)["deploymentProperties"]["state"] == state


def test_a_build_mapped_to_rolled_back_is_failed(tmp_path: Path) -> None:
    cfg = settings(tmp_path, state_map={"ABORTED": "ROLLED_BACK"})
    assert props(next_update(finished("ABORTED"), None, cfg, taken=never))["state"] == "FAILED"


def test_a_run_keeps_what_it_was_first_reported_as(tmp_path: Path) -> None:
    """A rule added while a run is going does not turn its final event into another kind."""
    started = next_update(facts(job="deploy-shop"), None, settings(tmp_path), taken=never)
    assert started is not None and started.run.kind == "build"
    final = next_update(
        finished(job="deploy-shop"), started.run, settings(tmp_path, compass=DEPLOYS), taken=never
    )
    assert final is not None and final.run.kind == "build"
    checked(final)


@pytest.mark.parametrize(
    ("number", "expected"),
    [(7, 7), ("13.1", 13), ("20020507010355", 20020507010355), ("1.1a", 1), ("rc", START // 1000)],
)
def test_a_deployment_number_from_any_run_id(tmp_path: Path, number: int | str, expected: int) -> None:
    cfg = settings(tmp_path, compass=DEPLOYS)
    event = deployed(next_update(finished(job="deploy-x", number=number), None, cfg, taken=never))
    assert event["deploymentProperties"]["sequenceNumber"] == expected


def test_a_run_whose_parameters_are_not_known_yet_waits_for_them(tmp_path: Path) -> None:
    """A freestyle run has no build.xml (its parameters) until it ends: whether it is a deployment is
    not known, so nothing is sent for it until then, and then only its final event."""
    cfg = settings(tmp_path, compass=DEPLOYS)
    assert next_update(facts(job="release", parameters=None), None, cfg, taken=never) is None
    plain_job = next_update(facts(job="app", parameters=None), None, cfg, taken=never)
    assert plain_job is not None and plain_job.run.kind == "build", "no rule reads its parameters: go"
    final = finished(job="release", parameters=(("TARGET_ENV", "stage"),))
    assert (
        deployed(next_update(final, None, cfg, taken=never))["deploymentProperties"]["state"] == "SUCCESSFUL"
    )
