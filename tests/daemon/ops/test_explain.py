"""``buildtail explain``: the real service delivers Jenkins runs written by ``tools/fake_jenkins`` to a
scripted Compass (accepting, refusing with 400, refusing the credentials), and explain reads the
same state database read-only and the same files, and says why each run shows or not."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main
from daemon.config import Settings
from daemon.ops.explain import JobNotFound, explain, summary
from daemon.ops.explain_render import render, render_summary
from daemon.sinks import SendResult
from tests.conftest import StartService
from tests.inprocess import settings_from, until
from tests.scripted import ScriptedTransport
from tools.fake_jenkins import Head, JenkinsHome

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")

JOB = "team/app"


@pytest.fixture
def home(tmp_path: Path) -> JenkinsHome:
    return JenkinsHome(tmp_path / "jenkins")


def _raw(tmp_path: Path, home: JenkinsHome) -> dict[str, Any]:
    return {
        "host": "build01.example.com",
        "state_dir": str(tmp_path / "state"),
        "sources": [
            {
                "type": "jenkins",
                "home": str(home.root),
                "url": "https://jenkins.example.com/",
                "reconcile_interval": "500ms",
            }
        ],
        "compass": {
            "components": [{"match": "team/**", "component_id": "ari:cloud:compass:c/app"}],
            "deployments": [
                {
                    "match": "deploy",
                    "environment_parameter": "TARGET",
                    "environments": {"prod": {"category": "PRODUCTION", "name": "production"}},
                }
            ],
        },
    }


def _settings(tmp_path: Path, home: JenkinsHome) -> Settings:
    return settings_from(_raw(tmp_path, home))


def _finish(home: JenkinsHome, job: str, result: str = "SUCCESS", **start: Any) -> int:
    run = home.job(job).start(start_ms=int(time.time() * 1000) - 2000, **start)
    run.finish(result, duration_ms=500)
    return run.number


def _answered(settings: Settings, target: str, outcome: str) -> dict[str, Any]:
    report = explain(settings, target)
    runs: list[dict[str, Any]] = report["runs"]
    [run] = runs
    assert any(a["outcome"] == outcome for a in run["events"]["answers"]), run["events"]
    return run


async def _wait_answer(settings: Settings, target: str, outcome: str) -> dict[str, Any]:
    def seen() -> bool:
        runs = explain(settings, target)["runs"]
        return bool(runs) and any(a["outcome"] == outcome for a in runs[0]["events"]["answers"])

    await until(f"{target} answered {outcome}", seen)
    return _answered(settings, target, outcome)


async def test_a_delivered_run_counts_and_says_where_it_went(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    settings = _settings(tmp_path, home)
    home.job(JOB)
    await in_process(settings)
    number = _finish(home, JOB)
    run = await _wait_answer(settings, f"{JOB}#{number}", "accepted")

    assert run["disk"]["state"] == "SUCCESSFUL" and run["disk"]["result"] == "SUCCESS"
    assert run["disk"]["path"].endswith(f"builds/{number}")
    assert [r["pipeline_id"] for r in run["recorded"]] == [f"{JOB}#{number}"]
    [answer] = [a for a in run["events"]["answers"] if a["state"] == "SUCCESSFUL"]
    assert (answer["status"], answer["component_id"], answer["event_source_id"], answer["kind"]) == (
        202,
        "ari:cloud:compass:c/app",
        "build01.example.com",
        "build",
    )
    assert [m["metric"] for m in run["metrics"]] == ["build success rate", "build time"]
    assert all(m["counts"] and not m["why_not"] for m in run["metrics"])
    text = "\n".join(render(explain(settings, f"app#{number}")))  # a unique suffix of the name
    assert "build success rate: yes" in text and "buildtail doctor" in text

    # delivered before answers were recorded (schema 4): what Compass accepted is still known
    with closing(sqlite3.connect(settings.state_dir / "buildtail.sqlite3")) as db, db:
        db.execute("DELETE FROM answers")
    [run] = explain(settings, f"{JOB}#{number}")["runs"]
    assert run["events"]["answers"] == [] and run["recorded"][0]["accepted"] == {"compass": "SUCCESSFUL"}
    assert all(m["counts"] for m in run["metrics"])


async def test_a_dead_letter_and_its_answer(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    settings = _settings(tmp_path, home)
    home.job(JOB)
    error = '{"errors":[{"type":"FORMAT_INVALID","message":"bad"}]}'
    await in_process(settings, ScriptedTransport(lambda body: SendResult("rejected", 400, error)))
    number = _finish(home, JOB, "FAILURE")
    run = await _wait_answer(settings, f"{JOB}#{number}", "dead")

    [dead] = run["events"]["dead_letters"]
    assert dead["status"] == 400 and "FORMAT_INVALID" in dead["error"]
    [answer] = run["events"]["answers"]
    assert answer["body"] == error and answer["status"] == 400
    assert not run["metrics"][0]["counts"]
    assert any("dead letter (HTTP 400)" in why for why in run["metrics"][0]["why_not"])


async def test_queued_behind_a_pause(tmp_path: Path, home: JenkinsHome, in_process: StartService) -> None:
    settings = _settings(tmp_path, home)
    home.job(JOB)
    await in_process(
        settings, ScriptedTransport(lambda body: SendResult("unauthorized", 401, "Unauthorized"))
    )
    number = _finish(home, JOB)
    run = await _wait_answer(settings, f"{JOB}#{number}", "paused")

    [queued] = run["events"]["queued"]
    assert queued["state"] == "SUCCESSFUL" and "refused the credentials" in (queued["paused"] or "")
    assert queued["attempts"] == 0  # a pause is not an attempt
    why = run["metrics"][0]["why_not"]
    assert any(w.startswith("not yet accepted: the final event is queued (delivery paused") for w in why), why
    assert "PAUSED" in "\n".join(render(explain(settings, f"{JOB}#{number}")))


async def test_in_progress_unmapped_deployment_and_no_component(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    settings = _settings(tmp_path, home)
    home.job(JOB, "pipeline")
    home.job("deploy", "pipeline")
    await in_process(settings)
    running = home.job(JOB).start()
    deploy = home.job("deploy").start(parameters={"TARGET": "moon"})
    deploy.finish("SUCCESS", duration_ms=10)
    run = await _wait_answer(settings, f"{JOB}#{running.number}", "accepted")
    assert run["disk"]["running"] is True
    assert any(w.startswith("still in progress") for w in run["metrics"][0]["why_not"])

    run = await _wait_answer(settings, f"deploy#{deploy.number}", "accepted")
    assert run["kind"] == "deployment"
    assert [m["metric"] for m in run["metrics"]] == ["deployment frequency", "deployment time"]
    why = run["metrics"][0]["why_not"]
    assert any(w.startswith("no component mapped") for w in why), why
    assert any("UNMAPPED environment ('moon')" in w for w in why), why


async def test_history_never_seen_and_unknown_jobs(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    settings = _settings(tmp_path, home)
    old = home.job(JOB).start(start_ms=int(time.time() * 1000) - 3_600_000)
    old.finish("SUCCESS", duration_ms=1000)
    hour_ago = time.time() - 3500
    for path in (old.log_path, old.build_xml, old.dir):
        os.utime(path, (hour_ago, hour_ago))
    service = await in_process(settings)
    await service.settled()

    [run] = explain(settings, f"{JOB}#{old.number}")["runs"]
    assert run["recorded"] == [] and run["history"] is not None
    assert run["history"].startswith("history: finished before buildtail started watching this source")
    assert "buildtail backfill" in run["history"]
    assert any(w.startswith("history:") for w in run["metrics"][0]["why_not"])

    missing = explain(settings, f"{JOB}#99")
    assert missing["runs"] == [] and "builds" in missing["not_found"] and "#99" in missing["not_found"]
    assert missing["looked_in"] == [str(home.root / "jobs/team/jobs/app/builds")]
    with pytest.raises(JobNotFound) as exc:
        explain(settings, "team/apq")
    assert exc.value.near == [JOB]


async def test_json_shape_and_the_summary(
    tmp_path: Path, home: JenkinsHome, in_process: StartService, capfd: pytest.CaptureFixture[str]
) -> None:
    raw = _raw(tmp_path, home)
    settings = _settings(tmp_path, home)
    home.job(JOB)
    home.job("other")
    await in_process(settings)
    numbers = [_finish(home, JOB, result) for result in ("SUCCESS", "FAILURE", "SUCCESS", "ABORTED")]
    _finish(home, "other")
    await until(
        "five final events accepted",
        lambda: (
            sum(
                c["windows"]["7d"]["build"].get(s, 0)
                for c in summary(settings, now_ms=int(time.time() * 1000))["components"]
                for s in ("SUCCESSFUL", "FAILED", "CANCELLED")
            )
            == 5
        ),
    )
    report = summary(settings, now_ms=int(time.time() * 1000))
    app, none = report["components"]
    assert app["component_id"] == "ari:cloud:compass:c/app" and none["component_id"] is None
    for window in ("7d", "28d"):
        assert app["windows"][window]["build"] == {"SUCCESSFUL": 2, "FAILED": 1, "CANCELLED": 1}
        assert app["windows"][window]["build_success_rate"] == pytest.approx(2 / 3)
    assert none["windows"]["7d"]["build"] == {"SUCCESSFUL": 1}
    assert "66.7%" in "\n".join(render_summary(report))

    config = tmp_path / "config.json"  # YAML is a superset of JSON
    config.write_text(json.dumps({**raw, "compass": {**raw["compass"], **_compass()}}))
    assert main(["explain", JOB, "--config", str(config), "--json", "--limit", "3"]) == 0
    out = json.loads(capfd.readouterr().out)
    assert set(out) == {"format", "target", "jobs", "looked_in", "runs", "more", "not_found"}
    assert [r["number"] for r in out["runs"]] == [str(n) for n in sorted(numbers, reverse=True)[:3]]
    assert out["more"] == 1
    assert set(out["runs"][0]) == {
        "source",
        "job",
        "number",
        "disk",
        "recorded",
        "excluded",
        "history",
        "kind",
        "component_id",
        "event_source_id",
        "events",
        "metrics",
        "hint",
    }
    assert set(out["runs"][0]["events"]) == {"queued", "answers", "dead_letters"}
    assert main(["explain", "--summary", "--config", str(config), "--json"]) == 0
    assert json.loads(capfd.readouterr().out)["counted_states"] == ["SUCCESSFUL", "FAILED"]
    assert main(["explain", "nope", "--config", str(config)]) == 1


def _compass() -> dict[str, Any]:
    return {
        "base_url": "https://compass.invalid/gateway/api",
        "cloud_id": "cloud",
        "email": "ci@example.com",
        "api_token": "not-used",
        "rate_limit_per_minute": 0,
    }


async def test_filtered_runs_name_the_rule_and_what_the_branch_job_builds(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    raw = _raw(tmp_path, home)
    raw["sources"][0] |= {"exclude": ["housekeeping/**"], "pull_requests": False}
    settings = settings_from(raw)
    jobs = home.multibranch(
        "team/shop",
        ["main", "PR-1"],
        heads={"main": Head(primary=True), "PR-1": Head(kind="pull_request", number=1, title="Fix login")},
    )
    await in_process(settings)
    backup = _finish(home, "housekeeping/backup")
    pr = jobs["PR-1"].start(start_ms=int(time.time() * 1000) - 2000)
    pr.finish("SUCCESS", duration_ms=500)
    main_run = jobs["main"].start(start_ms=int(time.time() * 1000) - 2000)
    main_run.finish("SUCCESS", duration_ms=500)
    await until(
        "the main branch's run accepted",
        lambda: _accepted_in(settings, f"team/shop/main#{main_run.number}"),
        10.0,
    )

    [kept_out] = explain(settings, f"housekeeping/backup#{backup}")["runs"]
    assert kept_out["excluded"] == "excluded by exclude 'housekeeping/**' (source jenkins)"
    assert kept_out["recorded"] == [] and kept_out["events"]["answers"] == []
    why = kept_out["metrics"][0]["why_not"]
    assert "filtered: excluded by exclude 'housekeeping/**' (source jenkins)" in why, why

    [pull] = explain(settings, f"team/shop/PR-1#{pr.number}")["runs"]
    assert pull["excluded"] == "pull request (pull_requests: false)"
    assert pull["disk"]["head"] == {
        "name": "PR-1",
        "kind": "pull_request",
        "primary": False,
        "pull_request": "1",
        "title": "Fix login",
    }
    text = "\n".join(render(explain(settings, f"team/shop/PR-1#{pr.number}")))
    assert "pull request PR-1 'Fix login'" in text and "pull_requests: false" in text

    [sent] = explain(settings, f"team/shop/main#{main_run.number}")["runs"]
    assert sent["excluded"] is None and sent["disk"]["head"]["primary"] is True
    assert sent["metrics"][0]["counts"] is True


def _accepted_in(settings: Settings, target: str) -> bool:
    runs = explain(settings, target)["runs"]
    return bool(runs) and any(a["outcome"] == "accepted" for a in runs[0]["events"]["answers"])
