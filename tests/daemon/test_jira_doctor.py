"""``buildtail doctor`` for Jira against the local fake Jira over real HTTP(S) on 127.0.0.1: the
network path, the cloud id, the credentials and each permission, one line each, and neither the
secret nor a token in any of it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from daemon.config import JiraSettings
from daemon.sinks.jira.doctor import doctor
from tests.proxy_net import CA_ORG, CompanyCA
from tools.fake_jira import FakeJira
from tools.tinyproxy import Tinyproxy, free_port

pytestmark = pytest.mark.usefixtures("clean_proxy_env")

SECRET = "s3cr3t-never-shown-4711"
REPO = Path(__file__).resolve().parents[2]


def settings(jira: FakeJira | None, **kw: Any) -> JiraSettings:
    data: dict[str, Any] = {
        "site": "example.atlassian.net",
        "cloud_id": jira.cloud_id if jira else "cloud-123",
        "client_id": "client-1",
        "client_secret": SECRET,
        "api_url": jira.base_url if jira else f"http://127.0.0.1:{free_port()}",
        "timeout": 5.0,
        "proxy": "",
        **kw,
    }
    return JiraSettings.model_validate(data)


def problems(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("PROBLEM")]


async def test_everything_in_order_and_no_secret_or_token_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeJira(client_secret=SECRET) as jira:
        lines, count = await doctor(settings(jira), site_url=jira.base_url)
        tokens = jira.issued_tokens
        kinds = [s.kind for s in jira.submissions]
        stored = jira.stored("builds") | jira.stored("deployments")
    assert (count, problems(lines)) == (0, []), lines
    assert "jira.cloud_id matches the cloud id of" in lines[2], lines
    assert "the credentials work" in lines[3], lines
    assert "HTTP 400 to an empty submission: the credentials may send builds" in lines[4], lines
    assert "HTTP 400 to an empty submission: the credentials may send deployments" in lines[5], lines
    assert kinds == ["builds", "deployments"] and stored == {}  # nothing can be stored by the probe
    assert len(tokens) == 1
    texts = lines + [r.getMessage() for r in caplog.records] + [repr(r.__dict__) for r in caplog.records]
    for text in texts:
        assert SECRET not in text and tokens[0] not in text


async def test_without_a_cloud_id_the_sites_is_looked_up_and_used() -> None:
    with FakeJira(client_secret=SECRET, cloud_id="c-from-site") as jira:
        lines, count = await doctor(settings(jira, cloud_id=None), site_url=jira.base_url)
    assert count == 0, lines
    assert f"{jira.base_url} has cloud id 'c-from-site' (looked up" in lines[2], lines


async def test_a_cloud_id_other_than_the_sites_is_a_problem() -> None:
    with FakeJira(client_secret=SECRET, cloud_id="c-site") as jira:
        lines, _ = await doctor(settings(jira, cloud_id="c-typo"), site_url=jira.base_url)
    assert "has cloud id 'c-site' but jira.cloud_id is 'c-typo'" in problems(lines)[0], lines
    assert all("no site with cloud id 'c-typo'" in p for p in problems(lines)[1:]), lines


async def test_a_cloud_id_not_comparable_is_a_note_not_a_problem() -> None:
    with FakeJira(client_secret=SECRET) as jira:
        unreachable = f"http://127.0.0.1:{free_port()}"
        lines, count = await doctor(settings(jira), site_url=unreachable)
    assert count == 0, lines
    assert lines[2].startswith("note") and "not compared with the site's" in lines[2], lines


async def test_a_wrong_secret_is_named_and_permissions_are_not_probed() -> None:
    with FakeJira(client_secret="the-right-one") as jira:
        lines, count = await doctor(settings(jira), site_url=jira.base_url)
        assert jira.submissions == []
    [problem] = problems(lines)
    assert count == 1 and "HTTP 401" in problem and "the client id or secret is wrong" in problem, lines
    assert SECRET not in "\n".join(lines)


async def test_a_missing_deployments_permission_is_named_as_an_assumption() -> None:
    with FakeJira(client_secret=SECRET, permissions=["builds"]) as jira:
        lines, count = await doctor(settings(jira), site_url=jira.base_url)
    [problem] = problems(lines)
    assert count == 1, lines
    assert "HTTP 403 to an empty submission of deployments" in problem, problem
    assert "probably lack the Deployments permission (assumed meaning, unverified)" in problem, problem
    assert any("may send builds" in line for line in lines), lines


async def test_a_disabled_kind_is_not_probed() -> None:
    with FakeJira(client_secret=SECRET, permissions=["builds"]) as jira:
        lines, count = await doctor(settings(jira, deployments=False), site_url=jira.base_url)
        assert [s.kind for s in jira.submissions] == ["builds"]
    assert count == 0, lines
    assert any(line.startswith("note") and "jira.deployments is false" in line for line in lines), lines


async def test_nothing_listening_is_named_with_jira_keys() -> None:
    jira = settings(None)
    lines, count = await doctor(jira)
    [problem] = problems(lines)
    assert count == 1 and f"connection to 127.0.0.1:{jira.api_url.rsplit(':', 1)[1]} refused" in problem
    assert "jira.proxy" in problem and "compass." not in problem, problem


async def test_tls_through_an_inspecting_firewall_names_the_issuer_and_jira_ca_file(
    company_ca: CompanyCA,
) -> None:
    with FakeJira(client_secret=SECRET, ssl_context=company_ca.server_context) as jira:
        lines, _ = await doctor(settings(jira), site_url=jira.base_url)
        [problem] = problems(lines)
        assert f"O={CA_ORG}" in problem and "set jira.ca_file" in problem, problem
        assert jira.token_requests == []
        lines, count = await doctor(settings(jira, ca_file=str(company_ca.ca_file)), site_url=jira.base_url)
    assert count == 0, lines


async def test_through_a_proxy_its_credentials_are_named_with_jira_keys(
    tmp_path: Path, company_ca: CompanyCA, tinyproxy_factory: Callable[..., Tinyproxy]
) -> None:
    credentials = tmp_path / "proxy-credentials"
    credentials.write_text("builder:wrong")
    credentials.chmod(0o600)
    with FakeJira(client_secret=SECRET, ssl_context=company_ca.server_context) as jira:
        proxy = tinyproxy_factory([jira.port], credentials=("builder", "pr0xy-Pa55"))
        network = {"proxy": proxy.url, "ca_file": str(company_ca.ca_file)}
        wrong = settings(jira, **network, proxy_credentials_file=str(credentials))
        [problem] = problems((await doctor(wrong, site_url=jira.base_url))[0])
        assert f"the proxy {proxy.url} refused: 401" in problem, problem
        assert "(jira.proxy_credentials_file)" in problem and "pr0xy" not in problem, problem
        credentials.write_text("builder:pr0xy-Pa55")
        lines, count = await doctor(wrong, site_url=jira.base_url)
        assert count == 0, lines
        assert f"through proxy {proxy.url} (from jira.proxy)" in lines[0], lines
        assert proxy.connects(jira.port) >= 1, proxy.log()
        assert "pr0xy" not in "\n".join(lines)


def test_the_command_checks_jira_alone_and_exits_non_zero_on_a_problem(tmp_path: Path) -> None:
    (tmp_path / "jenkins").mkdir()
    with FakeJira(client_secret=SECRET, permissions=["builds"]) as jira:
        config = tmp_path / "config.yaml"
        config.write_text(
            f"state_dir: {tmp_path / 'state'}\n"
            f"sources:\n  - {{type: jenkins, home: {tmp_path / 'jenkins'}}}\n"
            "jira:\n  site: example.atlassian.net\n  client_id: client-1\n"
            f"  client_secret: {SECRET}\n  cloud_id: {jira.cloud_id}\n  api_url: {jira.base_url}\n"
            "  proxy: ''\n  timeout: 5s\n"
        )
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        proc = subprocess.run(
            [sys.executable, "-m", "daemon", "doctor", "--config", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=60,
        )
        tokens = jira.issued_tokens
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Deployments permission" in proc.stdout and proc.stdout.endswith("1 problem(s) found\n")
    assert SECRET not in proc.stdout + proc.stderr
    assert tokens and all(t not in proc.stdout + proc.stderr for t in tokens)


async def test_a_block_page_where_the_site_should_be_is_named_for_what_it_is() -> None:
    """The cloud id is looked up as the sink looks it up: a web filter's page answering for the site
    is named with its title, not taken for a site that answered badly."""
    page = "<html><head><title>Example Corp web filter: blocked</title></head><body>no</body></html>"

    async def blocked(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", blocked)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with FakeJira(client_secret=SECRET) as jira:
            lines, count = await doctor(settings(jira, cloud_id=None), site_url=f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
    assert count >= 1, lines
    [line] = [line for line in lines if "cloud id" in line]
    assert line.startswith("PROBLEM") and "Example Corp web filter: blocked" in line, line
