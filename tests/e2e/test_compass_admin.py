"""End to end: ``buildtail compass setup``, ``buildtail doctor`` and the daemon's answer to a 404.

The real ``buildtail`` process against the local fake Compass and its GraphQL registry: event
sources of both types, their attachments, and the derived metrics of each component. A 404 from
the events endpoint means the BUILD event source is missing: with ``compass.auto_setup`` the daemon
creates it and re-sends the same event; without it, delivery pauses until ``buildtail compass setup``
and a SIGHUP. The fake executes each GraphQL request against Atlassian's published schema when it is
next to the checkout, so the commands meet Compass's real answer shapes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, TOKEN, Daemon, make_config, wait_until
from tools.fake_compass import EVENTS_PATH, FakeCompass, Fault, RecordedRequest, compass_graphql
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]

HOST = "build01.example.com"
COMPONENT = "ari:cloud:compass:cloud-123:component/api"
BUILD_METRICS = ["createMetricSource"] * 2  # Build Success Rate, Build Time
RATE = "ari:cloud:compass::metric-definition/builtin/build-success-rate"
NOT_FOUND = {"errors": [{"type": "CREATE_EVENT_SOURCE_NOT_FOUND", "message": "event source not found"}]}
LACKS_SCOPE = "The API token lacks the scope read:event:compass"


@pytest.fixture
def compass_options() -> dict[str, Any]:
    """As in conftest, with the schema built before the first request (the commands wait 3 s at most)."""
    compass_graphql.schema()
    return {"token": TOKEN}


def buildtail(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    """One ``buildtail`` command (not ``run``) with the token in the environment, as an operator runs it."""
    env = dict(os.environ, COMPASS_API_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
    env.pop("STATE_DIRECTORY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", *args, "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr, "the API token leaked into the output"
    return proc


def _state(body: Any) -> str:
    return str(body["event"]["build"]["buildProperties"]["state"])


def _usn(body: Any) -> int:
    return int(body["event"]["build"]["updateSequenceNumber"])


def _event_requests(compass: FakeCompass, status: int | None = None) -> list[RecordedRequest]:
    return [
        r
        for r in compass.requests
        if r.path == EVENTS_PATH and isinstance(r.body, dict) and (status is None or r.status == status)
    ]


def _not_found(compass: FakeCompass, state: str) -> list[RecordedRequest]:
    return [r for r in _event_requests(compass, 404) if _state(r.body) == state]


def _accepted(compass: FakeCompass, pipeline_id: str, state: str) -> list[dict[str, Any]]:
    return [e for e in compass.builds().get(pipeline_id, []) if _state(e) == state]


def _queue_depth(status_output: str) -> int:
    m = re.search(r"^queue\s+(\d+) event", status_output, re.MULTILINE)
    assert m, status_output
    return int(m.group(1))


def _mutations(compass: FakeCompass) -> list[str]:
    return [str(r.field) for r in compass.mutations()]


def _refused_requests(compass: FakeCompass) -> list[Any]:
    """GraphQL requests answered with top-level errors (a document the schema refuses shows here)."""
    return [r.answer for r in compass.graphql_requests if r.answer is None or "errors" in r.answer]


# --- buildtail compass setup / buildtail doctor --------------------------------------------------------


def test_setup_creates_and_attaches_once_then_doctor_is_happy(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    home.job("app")
    compass.add_component(COMPONENT)
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["components"] = [{"match": "**", "component_id": COMPONENT}]
    config = daemon_factory(cfg, start=False).config_path

    first = buildtail("compass", "setup", config=config)
    assert first.returncode == 0, first.stdout + first.stderr
    [source] = compass.event_sources()
    assert (source["externalEventSourceId"], source["eventType"]) == (HOST, "BUILD")
    assert compass.components() == {COMPONENT: [source["id"]]}
    assert _mutations(compass) == ["createEventSource", "attachEventSource", *BUILD_METRICS]
    assert "created event source" in first.stdout and "attached event source" in first.stdout
    assert f"connected metric Build Success Rate to {COMPONENT}" in first.stdout
    metrics = compass.metric_sources(COMPONENT)
    assert [m["metricDefinitionId"] for m in metrics] == [
        RATE,
        RATE.replace("success-rate", "time-avg-last-10"),
    ]
    assert all(m["derived"] for m in metrics)

    second = buildtail("compass", "setup", config=config)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _mutations(compass) == ["createEventSource", "attachEventSource", *BUILD_METRICS], (
        "the second run changed things"
    )
    assert compass.event_sources() == [source]
    assert compass.components() == {COMPONENT: [source["id"]]}
    assert compass.metric_sources(COMPONENT) == metrics
    assert "exists" in second.stdout and "is attached to" in second.stdout
    assert f"metric Build Time is connected to {COMPONENT}" in second.stdout

    doctor = buildtail("doctor", config=config)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "no problems found" in doctor.stdout
    assert "PROBLEM" not in doctor.stdout
    assert len(compass.mutations()) == 4, "doctor is read-only"
    assert _refused_requests(compass) == []


def test_doctor_names_the_jobs_that_ran_but_map_to_no_component(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    """Read from the state database while the daemon runs; a warning, not a problem."""
    api, app = home.job("payments/api"), home.job("app")
    compass.add_component(COMPONENT)
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["components"] = [{"match": "payments/**", "component_id": COMPONENT}]
    config = daemon_factory(cfg, start=False).config_path
    assert buildtail("compass", "setup", config=config).returncode == 0
    quiet = buildtail("doctor", config=config)
    assert quiet.returncode == 0 and "mapped to no component" not in quiet.stdout, "no state database yet"

    daemon_factory(cfg)
    app.start().finish("SUCCESS")
    api.start().finish("SUCCESS")
    compass.wait_for(lambda _: {"app#1", "payments/api#1"} <= set(compass.builds()))
    doctor = buildtail("doctor", config=config)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert (
        "warning  job 'app' (source 'jenkins'): 1 run(s) in the last 7 days, mapped to no component\n"
        in doctor.stdout
    )
    assert "payments/api" not in doctor.stdout
    assert "add a compass.components rule" in doctor.stdout and "no problems found" in doctor.stdout


def test_grey_icon_case_doctor_explains_setup_fixes_it_doctor_passes(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    """Only a CUSTOM source with the host's id (the copied example): Compass answers the BUILD lookup
    with a QueryError whose extensions are a list."""
    custom = compass.add_event_source(HOST, "CUSTOM")
    compass.attach(compass.add_component(COMPONENT), custom)
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["components"] = [{"match": "**", "component_id": COMPONENT}]
    config = daemon_factory(cfg, start=False).config_path

    doctor = buildtail("doctor", config=config)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "Traceback" not in doctor.stderr
    assert "exists only with type CUSTOM, not BUILD" in doctor.stdout
    assert "grey" in doctor.stdout and '"other"' in doctor.stdout
    assert f"{COMPONENT} receives build events but has no Build Success Rate or Build Time" in doctor.stdout
    assert "buildtail compass setup" in doctor.stdout and "2 problem(s) found" in doctor.stdout
    assert compass.mutations() == []

    setup = buildtail("compass", "setup", config=config)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    build = compass.find_event_source(HOST, "BUILD")
    assert build is not None and build["id"] != custom
    assert compass.components() == {COMPONENT: [custom, build["id"]]}
    assert _mutations(compass) == ["createEventSource", "attachEventSource", *BUILD_METRICS]
    assert "created event source" in setup.stdout and "attached event source" in setup.stdout

    again = buildtail("compass", "setup", config=config)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _mutations(compass) == ["createEventSource", "attachEventSource", *BUILD_METRICS], (
        "the second setup changed things"
    )
    assert "exists" in again.stdout and "is attached to" in again.stdout

    after = buildtail("doctor", config=config)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "no problems found" in after.stdout and "PROBLEM" not in after.stdout
    assert _refused_requests(compass) == []


def test_deployments_setup_adds_the_deployment_source_and_metrics_doctor_explains_first(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    """Builds were set up before ``compass.deployments`` got a rule: doctor explains the missing
    DEPLOYMENT source and metrics, setup adds exactly those, once."""
    home.job("deploy-api")
    home.job("api")
    build = compass.add_event_source(HOST, "BUILD")
    compass.attach(compass.add_component(COMPONENT), build)
    for short in ("build-success-rate", "build-time-avg-last-10"):
        compass.add_metric_source(COMPONENT, f"ari:cloud:compass::metric-definition/builtin/{short}")
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["components"] = [{"match": "**", "component_id": COMPONENT}]
    cfg["compass"]["deployments"] = [
        {"match": "deploy-*", "environment": {"category": "PRODUCTION", "name": "production"}}
    ]
    config = daemon_factory(cfg, start=False).config_path

    doctor = buildtail("doctor", config=config)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert f"event source {HOST!r} exists only with type BUILD, not DEPLOYMENT" in doctor.stdout
    assert "receives deployment events but has no Deployment Frequency or Deployment Time" in doctor.stdout
    assert "detach" not in doctor.stdout, "the BUILD source is still needed"
    assert "2 problem(s) found" in doctor.stdout and "Traceback" not in doctor.stderr
    assert compass.mutations() == []

    setup = buildtail("compass", "setup", config=config)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    deployment = compass.find_event_source(HOST, "DEPLOYMENT")
    assert deployment is not None
    assert compass.components() == {COMPONENT: [build, deployment["id"]]}
    assert _mutations(compass) == [
        "createEventSource",
        "attachEventSource",
        "createMetricSource",
        "createMetricSource",
    ]
    created = [r.variables["input"] for r in compass.mutations()]
    assert created[0]["eventType"] == "DEPLOYMENT"
    assert [i["metricDefinitionId"].rsplit("/", 1)[-1] for i in created[2:]] == [
        "weekly-deployment-frequency-28d",
        "deployment-time-avg-last-25",
    ]
    assert all(i["derived"] is True for i in created[2:])

    again = buildtail("compass", "setup", config=config)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(compass.mutations()) == 4, "the second setup changed things"

    after = buildtail("doctor", config=config)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "no problems found" in after.stdout
    assert _refused_requests(compass) == []


def test_a_permission_error_beside_partial_data_stops_setup(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    """``eventSource: null`` beside a top-level error is a failure, not "not found": setup must not
    create a second source it could not look for."""
    compass.add_component(COMPONENT)
    compass.fail_graphql("eventSource", LACKS_SCOPE)
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["components"] = [{"match": "**", "component_id": COMPONENT}]
    config = daemon_factory(cfg, start=False).config_path

    setup = buildtail("compass", "setup", config=config)
    assert setup.returncode == 1, setup.stdout + setup.stderr
    assert LACKS_SCOPE in setup.stderr and "Traceback" not in setup.stderr
    assert [r.field for r in compass.graphql_requests] == ["eventSource"], "it stopped at the error"
    assert compass.mutations() == [] and compass.event_sources() == []

    doctor = buildtail("doctor", config=config)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert LACKS_SCOPE in doctor.stdout and "Traceback" not in doctor.stderr
    assert "does not exist" not in doctor.stdout
    assert compass.mutations() == []


def test_setup_with_an_unknown_component_fails_clearly(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["components"] = [{"match": "**", "component_id": COMPONENT}]
    config = daemon_factory(cfg, start=False).config_path
    proc = buildtail("compass", "setup", config=config)
    assert proc.returncode == 1
    assert COMPONENT in proc.stderr and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_doctor_with_a_wrong_token_names_the_credentials(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    compass.expected_authorization = "Basic bm90LXRoZS1yaWdodC1vbmU="  # the daemon's token is now wrong
    config = daemon_factory(make_config(tmp_path, home, compass), start=False).config_path
    proc = buildtail("doctor", config=config)
    assert proc.returncode != 0
    assert "credentials" in proc.stdout and "API token" in proc.stdout
    assert all(r.status == 401 for r in compass.graphql_requests)


# --- the daemon meets a 404 ---------------------------------------------------------------------------


def test_auto_setup_creates_the_build_source_and_resends_the_same_event(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    compass.require_event_source = True
    compass.add_event_source(HOST, "CUSTOM")  # the copied example: does not route build events
    job = home.job("app")
    cfg = make_config(tmp_path, home, compass)  # no components: events carry no componentId
    cfg["compass"]["auto_setup"] = True
    daemon = daemon_factory(cfg)

    run = job.start()
    wait_until(lambda: bool(_accepted(compass, "app#1", "IN_PROGRESS")), what="IN_PROGRESS accepted")
    [refused] = _not_found(compass, "IN_PROGRESS")
    [accepted] = _accepted(compass, "app#1", "IN_PROGRESS")
    assert "componentId" not in accepted
    assert accepted == refused.body, "the re-sent event is not the one Compass refused"
    assert _usn(accepted) == _usn(refused.body)
    assert compass.find_event_source(HOST, "BUILD") is not None
    assert _mutations(compass) == ["createEventSource"], "no component to attach to"
    lookup = compass.graphql_requests[0]
    assert lookup.answer is not None and lookup.variables["eventType"] == "BUILD"
    assert lookup.answer["data"]["compass"]["eventSource"]["extensions"] == [
        {"statusCode": 404, "errorType": "NOT_FOUND"}
    ], "the daemon met the QueryError shape"

    run.finish("SUCCESS")
    wait_until(lambda: bool(_accepted(compass, "app#1", "SUCCESSFUL")), what="SUCCESSFUL accepted")
    assert len(_event_requests(compass, 404)) == 1, "only the first event met the 404"
    assert _usn(_accepted(compass, "app#1", "SUCCESSFUL")[0]) > _usn(accepted)
    assert "created event source" in daemon.stderr
    assert compass.invalid == []
    assert daemon.stop() == 0


def test_auto_setup_attaches_to_the_mapped_component(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    compass.add_component(COMPONENT)
    compass.script(Fault(status=404, body=NOT_FOUND))  # Compass does not know the source yet
    job = home.job("app")
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["components"] = [{"match": "**", "component_id": COMPONENT}]
    cfg["compass"]["auto_setup"] = True
    daemon = daemon_factory(cfg)
    run = job.start()
    wait_until(lambda: bool(_accepted(compass, "app#1", "IN_PROGRESS")), what="IN_PROGRESS accepted")
    [refused] = _event_requests(compass, 404)
    assert compass.events == [refused.body], "the refused event was not re-sent unchanged"
    assert refused.body["componentId"] == COMPONENT
    run.finish("SUCCESS")
    wait_until(lambda: bool(_accepted(compass, "app#1", "SUCCESSFUL")), what="SUCCESSFUL accepted")
    source = compass.find_event_source(HOST, "BUILD")
    assert source is not None
    assert compass.components() == {COMPONENT: [source["id"]]}
    assert _mutations(compass) == ["createEventSource", "attachEventSource"]
    assert "attached event source" in daemon.stderr
    assert daemon.stop() == 0


def test_without_auto_setup_delivery_pauses_until_setup_and_sighup(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    compass.require_event_source = True
    job = home.job("app")
    daemon = daemon_factory(make_config(tmp_path, home, compass))

    run = job.start()
    wait_until(lambda: bool(_not_found(compass, "IN_PROGRESS")), what="the IN_PROGRESS event's 404")
    wait_until(lambda: "buildtail compass setup" in daemon.stderr, what="the instruction in the log")
    assert "paused" in daemon.stderr
    run.finish("SUCCESS")
    wait_until(lambda: bool(_not_found(compass, "SUCCESSFUL")), what="the SUCCESSFUL event's 404")
    assert compass.events == []
    assert compass.graphql_requests == [], "no auto_setup: the daemon must not touch event sources"

    status = buildtail("status", config=daemon.config_path)
    assert status.returncode == 1, status.stdout + status.stderr  # needs attention
    assert _queue_depth(status.stdout) >= 1
    assert "PAUSED" in status.stdout and "buildtail compass setup" in status.stdout

    setup = buildtail("compass", "setup", config=daemon.config_path)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert compass.find_event_source(HOST, "BUILD") is not None
    time.sleep(0.5)
    assert compass.events == [], "the paused event waits for SIGHUP (or the next check in a minute)"

    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: bool(_accepted(compass, "app#1", "SUCCESSFUL")), what="SUCCESSFUL accepted")
    [accepted] = _accepted(compass, "app#1", "SUCCESSFUL")
    refused = _not_found(compass, "SUCCESSFUL")[-1]
    assert accepted == refused.body, "the re-sent event is not the one Compass refused"
    assert _usn(accepted) == _usn(refused.body)
    assert _accepted(compass, "app#1", "IN_PROGRESS") == [], "the terminal event replaced it"
    assert "configuration reloaded" in daemon.stderr

    wait_until(
        lambda: "\ndelivery         running\n" in buildtail("status", config=daemon.config_path).stdout,
        what="status to show delivery running again",
    )
    after = buildtail("status", config=daemon.config_path)
    assert _queue_depth(after.stdout) == 0 and "PAUSED" not in after.stdout
    assert daemon.stop() == 0


def test_auto_setup_does_not_hammer_when_the_404_persists(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    compass.add_event_source(HOST, "BUILD")  # nothing left for setup to create
    compass.script(*[Fault(status=404, body=NOT_FOUND)] * 40)
    job = home.job("app")
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["auto_setup"] = True
    daemon = daemon_factory(cfg)
    job.start()
    wait_until(lambda: bool(_event_requests(compass)), what="the first event request")
    time.sleep(3.0)
    sent = len(_event_requests(compass))
    assert sent <= 3, f"{sent} event requests in 3s against a persistent 404 (and no backoff)"
    assert "paused" in daemon.stderr


def test_auto_setup_stops_at_a_permission_error_and_pauses(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    compass.require_event_source = True
    compass.add_event_source(HOST, "CUSTOM")
    compass.fail_graphql("eventSource", LACKS_SCOPE)
    job = home.job("app")
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["auto_setup"] = True
    daemon = daemon_factory(cfg)
    job.start()
    wait_until(lambda: LACKS_SCOPE in daemon.stderr, what="the error in the log")
    wait_until(lambda: "paused" in daemon.stderr, what="delivery to pause")
    assert "could not create the event source" in daemon.stderr and "Traceback" not in daemon.stderr
    assert compass.mutations() == [] and compass.find_event_source(HOST, "BUILD") is None
    assert compass.events == []
    assert daemon.stop() == 0
