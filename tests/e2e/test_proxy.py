"""End to end behind a proxy: the real ``buildtail run`` process sends its builds through a real
tinyproxy (CONNECT) to the fake Compass over HTTPS, whose certificate comes from a company CA that
only ``compass.ca_file`` makes trusted; ``buildtail doctor`` names the issuer when that file is not
set. The delivery test reports how many builds arrived and their latency through the proxy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TOKEN, Daemon, make_config, wait_until
from tests.e2e.test_compass_admin import buildtail
from tests.proxy_net import CA_ORG, CompanyCA
from tools.fake_compass import EVENTS_PATH, FakeCompass
from tools.fake_jenkins import JenkinsHome
from tools.tinyproxy import Tinyproxy

pytestmark = pytest.mark.usefixtures("clean_proxy_env")

DaemonFactory = Callable[..., Daemon]
BUILDS = 20
USER, PASSWORD = "builder", "pr0xy-Pa55-never-shown"


def _arrived(compass: FakeCompass, pipeline_id: str) -> float | None:
    """When the terminal event of ``pipeline_id`` was accepted (the fake's monotonic clock)."""
    for request in compass.requests:
        if request.path != EVENTS_PATH or request.status != 202 or not isinstance(request.body, dict):
            continue
        props = request.body["event"]["build"]["buildProperties"]
        if props["pipeline"]["pipelineId"] == pipeline_id and props["state"] == "SUCCESSFUL":
            return request.at
    return None


def _delivered(compass: FakeCompass, pipeline_id: str) -> bool:
    return _arrived(compass, pipeline_id) is not None


@pytest.mark.parametrize("how", ["HTTPS_PROXY", "compass.proxy"])
def test_the_daemon_delivers_builds_through_tinyproxy_to_compass_over_https(
    how: str,
    tmp_path: Path,
    home: JenkinsHome,
    monkeypatch: pytest.MonkeyPatch,
    company_ca: CompanyCA,
    tls_compass_factory: Callable[..., FakeCompass],
    tinyproxy_factory: Callable[..., Tinyproxy],
    daemon_factory: DaemonFactory,
) -> None:
    compass = tls_compass_factory(token=TOKEN)
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["ca_file"] = str(company_ca.ca_file)
    if how == "HTTPS_PROXY":
        proxy = tinyproxy_factory([compass.port])
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)  # the daemon inherits it, as from a unit's Environment=
    else:
        proxy = tinyproxy_factory([compass.port], credentials=(USER, PASSWORD))
        secret = tmp_path / "proxy-credentials"
        secret.write_text(f"{USER}:{PASSWORD}\n")
        secret.chmod(0o600)
        cfg["compass"]["proxy"] = proxy.url
        cfg["compass"]["proxy_credentials_file"] = str(secret)
    job = home.job("app")
    daemon = daemon_factory(cfg)

    latencies: list[float] = []
    for number in range(1, BUILDS + 1):
        job.start().finish("SUCCESS")
        finished = time.monotonic()
        pipeline = f"app#{number}"
        wait_until(partial(_delivered, compass, pipeline), what=pipeline)
        arrived = _arrived(compass, pipeline)
        assert arrived is not None
        latencies.append((arrived - finished) * 1000)

    assert sorted(compass.stored) == sorted(f"app#{n}" for n in range(1, BUILDS + 1))
    assert compass.invalid == []
    assert proxy.connects(compass.port) >= 1, proxy.log()
    assert daemon.stop() == 0
    assert PASSWORD not in daemon.stderr and PASSWORD not in daemon.stdout
    print(
        f"\n{BUILDS} of {BUILDS} builds arrived through tinyproxy ({how}); latency from the build's "
        f"end to Compass: median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms"
    )


def test_doctor_names_the_proxy_and_the_issuer_it_was_shown_without_the_ca_file(
    tmp_path: Path,
    home: JenkinsHome,
    company_ca: CompanyCA,
    tls_compass_factory: Callable[..., FakeCompass],
    tinyproxy_factory: Callable[..., Tinyproxy],
    daemon_factory: DaemonFactory,
) -> None:
    compass = tls_compass_factory(token=TOKEN)
    proxy = tinyproxy_factory([compass.port])
    cfg: dict[str, Any] = make_config(tmp_path, home, compass)
    cfg["compass"]["proxy"] = proxy.url
    config = daemon_factory(cfg, start=False).config_path

    proc = buildtail("doctor", config=config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert (
        lines[0]
        == f"ok       connecting to {compass.site_url} through proxy {proxy.url} (from compass.proxy)"
    )
    [problem] = [line for line in lines if line.startswith("PROBLEM")]
    assert "the certificate shown was issued by" in problem and f"O={CA_ORG}" in problem, problem
    assert problem.endswith(
        "which is not trusted: set compass.ca_file to a PEM file with that CA "
        "(a TLS-inspecting firewall's company CA)"
    ), problem
    assert compass.tenant_info_requests == 0 and compass.graphql_requests == []

    cfg["compass"]["ca_file"] = str(company_ca.ca_file)
    config = daemon_factory(cfg, start=False).config_path
    proc = buildtail("doctor", config=config)
    assert "PROBLEM  connecting" not in proc.stdout and "TLS" not in proc.stdout, proc.stdout
    assert compass.tenant_info_requests == 1
    wait_until(lambda: proxy.connects(compass.port) >= 2, what="doctor's CONNECTs in tinyproxy's log")
