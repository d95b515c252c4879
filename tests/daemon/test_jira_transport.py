"""The Jira transport against the local fake Jira over real HTTP on 127.0.0.1: the OAuth token
fetched once and kept, renewed once on a 401, the answers judged per item, and neither the secret
nor a token anywhere in a log record or a repr."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from daemon.config.jira import JiraSettings
from daemon.sinks.jira.answers import Kind, Verdict, judge
from daemon.sinks.jira.token import ASSUMED_LIFETIME_S, ClientCredentials, TokenSource
from daemon.sinks.jira.transport import JiraTransport
from tests.proxy_net import CompanyCA
from tools.fake_jira import FakeJira
from tools.tinyproxy import Tinyproxy

SECRET = "s3cr3t-never-shown-4711"
PAGE = "<html><head><title>Example Corp web filter: blocked</title></head><body>blocked</body></html>"


def jira_settings(api_url: str, cloud_id: str, **network: Any) -> JiraSettings:
    """The jira section pointed at ``api_url``; ``network``: its proxy and CA keys (``proxy`` is ""
    unless given: no proxy whatever the environment says)."""
    return JiraSettings.model_validate(
        {
            "site": "example.atlassian.net",
            "cloud_id": cloud_id,
            "client_id": "client-1",
            "client_secret": SECRET,
            "api_url": api_url,
            "timeout": 10,
            "proxy": "",
            **network,
        }
    )


def build(number: int, *keys: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": "1.0",
        "pipelineId": "jenkins/team/app",
        "buildNumber": number,
        "updateSequenceNumber": number * 10,
        "displayName": f"team/app #{number}",
        "url": f"https://jenkins.example.com/job/team/job/app/{number}/",
        "state": "successful",
        "lastUpdated": "2026-11-30T10:00:00.000Z",
        "issueKeys": list(keys or ["OPS-7"]),
        **extra,
    }


def body(*items: dict[str, Any], kind: Kind = "builds") -> dict[str, Any]:
    return {kind: list(items), "providerMetadata": {"product": "buildtail"}}


class Clock:
    """Monotonic seconds a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    jira: FakeJira,
    *,
    secret: str = SECRET,
    clock: Callable[[], float] | None = None,
    **network: Any,
) -> JiraTransport:
    settings = jira_settings(jira.base_url, jira.cloud_id, **network)
    credentials = ClientCredentials("client-1", lambda: secret)
    tokens = TokenSource(settings.token_url, credentials, clock=clock) if clock else None
    return JiraTransport(settings, credentials, tokens=tokens)


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(client_secret=SECRET, known_projects=["OPS"]) as fake:
        yield fake


@pytest.fixture
async def transport(jira: FakeJira) -> AsyncIterator[JiraTransport]:
    t = make(jira)
    yield t
    await t.close()


async def send(t: JiraTransport, *items: dict[str, Any], kind: Kind = "builds") -> Verdict:
    return judge(await t.send(kind, body(*items, kind=kind)), kind, list(items))


async def test_one_token_for_many_sends_even_concurrent_ones(
    jira: FakeJira, transport: JiraTransport
) -> None:
    verdicts = await asyncio.gather(*(send(transport, build(n)) for n in range(1, 21)))
    verdicts.append(await send(transport, build(21)))
    assert {v.result.outcome for v in verdicts} == {"accepted"}
    assert [v.items[0].fate for v in verdicts] == ["accepted"] * 21
    assert len(jira.token_requests) == 1 and transport.tokens.fetches == 1
    # the form Atlassian's 1.x plugin sent
    assert jira.token_requests[0] == {
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": "***",
    }
    assert len(jira.stored("builds")) == 21


async def test_a_token_is_fetched_again_shortly_before_it_expires() -> None:
    clock = Clock()
    with FakeJira(client_secret=SECRET, token_ttl_s=100) as jira:
        t = make(jira, clock=clock)
        try:
            assert (await send(t, build(1))).result.outcome == "accepted"
            clock.now += 89  # expires_in 100, renewed a tenth early
            assert (await send(t, build(2))).result.outcome == "accepted"
            assert len(jira.token_requests) == 1
            clock.now += 2
            assert (await send(t, build(3))).result.outcome == "accepted"
            assert len(jira.token_requests) == 2
        finally:
            await t.close()


async def test_without_expires_in_the_assumed_lifetime_holds() -> None:
    clock = Clock()
    with FakeJira(client_secret=SECRET, report_expiry=False) as jira:
        t = make(jira, clock=clock)
        try:
            await send(t, build(1))
            clock.now += ASSUMED_LIFETIME_S - 61
            await send(t, build(2))
            assert len(jira.token_requests) == 1
            clock.now += 2
            assert (await send(t, build(3))).result.outcome == "accepted"
            assert len(jira.token_requests) == 2
        finally:
            await t.close()


async def test_a_stale_token_is_renewed_once_then_the_send_succeeds(
    jira: FakeJira, transport: JiraTransport
) -> None:
    assert (await send(transport, build(1))).result.outcome == "accepted"
    jira.expire_tokens()  # Jira stopped taking it before its expires_in said
    verdict = await send(transport, build(2))
    assert verdict.result.outcome == "accepted" and verdict.items[0].fate == "accepted"
    assert len(jira.token_requests) == 2
    assert [s.status for s in jira.submissions] == [202, 202]  # the 401 is not a submission


async def test_a_401_with_a_new_token_too_pauses_for_the_credentials() -> None:
    with FakeJira(client_secret=SECRET, token_ttl_s=0) as jira:  # every token dead on arrival
        t = make(jira)
        try:
            reply = await t.send("builds", body(build(1)))
            verdict = judge(reply, "builds", [build(1)])
        finally:
            await t.close()
        assert reply.status == 401 and reply.renewed
        assert verdict.result.outcome == "unauthorized" and verdict.items[0].fate == "hold"
        assert verdict.result.detail.startswith("credentials rejected")
        assert "Builds permission" in verdict.result.detail
        assert len(jira.token_requests) == 2


async def test_a_wrong_secret_pauses_quoting_the_token_endpoint(jira: FakeJira) -> None:
    t = make(jira, secret="not-the-secret")
    try:
        verdict = await send(t, build(1))
    finally:
        await t.close()
    assert verdict.result.outcome == "unauthorized"
    assert "token endpoint refused the client credentials (HTTP 401: access_denied" in verdict.result.detail
    assert "not-the-secret" not in verdict.result.detail
    assert jira.submissions == []


async def test_429_carries_retry_after_in_the_verdict() -> None:
    with FakeJira(client_secret=SECRET, limit_per_minute=1) as jira:
        t = make(jira)
        try:
            assert (await send(t, build(1))).result.outcome == "accepted"
            verdict = await send(t, build(2), build(3))
        finally:
            await t.close()
    assert verdict.result.outcome == "retry" and verdict.result.status == 429
    assert verdict.result.retry_after is not None and 1 <= verdict.result.retry_after <= 61
    assert [v.fate for v in verdict.items] == ["retry", "retry"]


async def test_accepted_rejected_and_unknown_keys_judged_per_item(
    jira: FakeJira, transport: JiraTransport
) -> None:
    items = [
        build(1),
        build(2, "OPS-8", "UTF-8"),  # stored against OPS-8; UTF-8 reported
        build(3, "SHA-256"),  # only unknown keys: rejected
        build(4, state="SUCCESSFUL"),  # not one of Jira's states: rejected
    ]
    verdict = await send(transport, *items)
    assert verdict.result.outcome == "accepted"
    assert [v.fate for v in verdict.items] == ["accepted", "accepted", "dead", "dead"]
    assert verdict.items[1].unknown_keys == ("UTF-8",)
    assert "SHA-256" in verdict.items[2].detail
    assert "state" in verdict.items[3].detail
    assert verdict.unknown_issue_keys == ("UTF-8", "SHA-256")
    assert set(jira.stored("builds")) == {("jenkins/team/app", 1), ("jenkins/team/app", 2)}


async def test_deployments_go_to_their_own_endpoint(jira: FakeJira, transport: JiraTransport) -> None:
    deployment = {
        "deploymentSequenceNumber": 12,
        "updateSequenceNumber": 1,
        "issueKeys": ["OPS-7"],
        "displayName": "deploy-shop #12 to production",
        "url": "https://jenkins.example.com/job/deploy-shop/12/",
        "description": "deploy-shop #12 to production: successful",
        "lastUpdated": "2026-11-30T10:00:00.000Z",
        "state": "successful",
        "pipeline": {
            "id": "jenkins/deploy-shop",
            "displayName": "deploy-shop",
            "url": "https://jenkins.example.com/",
        },
        "environment": {"id": "prod", "displayName": "production", "type": "production"},
    }
    verdict = await send(transport, deployment, kind="deployments")
    assert [v.fate for v in verdict.items] == ["accepted"]
    assert set(jira.stored("deployments")) == {("jenkins/deploy-shop", "prod", 12)}


async def test_a_block_page_with_200_is_not_delivery(jira: FakeJira, transport: JiraTransport) -> None:
    jira.interpose(200, PAGE)
    verdict = await send(transport, build(1))
    assert verdict.result.outcome == "not_compass" and verdict.items[0].fate == "retry"
    assert "HTTP 200 text/html, page titled 'Example Corp web filter: blocked'" in verdict.result.detail
    assert jira.stored("builds") == {}
    assert (await send(transport, build(1))).items[0].fate == "accepted"  # the way is clear again


async def test_a_redirect_to_a_login_page_is_not_followed(jira: FakeJira, transport: JiraTransport) -> None:
    jira.interpose(302, "", headers={"Location": "https://sso.example.com/login"})
    verdict = await send(transport, build(1))
    assert verdict.result.outcome == "not_compass"
    assert "redirect to sso.example.com" in verdict.result.detail


async def test_403_pauses_naming_the_permission(jira: FakeJira, transport: JiraTransport) -> None:
    jira.interpose(403, "", content_type=None)
    verdict = await send(transport, build(1))
    assert verdict.result.outcome == "unauthorized" and "Builds permission" in verdict.result.detail


async def test_413_asks_for_a_split(jira: FakeJira, transport: JiraTransport) -> None:
    jira.interpose(413, '[{"message":"Payload too large"}]', content_type="application/json")
    verdict = await send(transport, build(1), build(2))
    assert verdict.split and "Payload too large" in verdict.result.detail


async def test_a_token_endpoint_outage_is_retried(jira: FakeJira, transport: JiraTransport) -> None:
    jira.interpose(503, "", content_type=None, headers={"Retry-After": "30"}, on="token")
    verdict = await send(transport, build(1))
    assert verdict.result.outcome == "retry" and verdict.result.retry_after == 30.0
    assert (await send(transport, build(1))).result.outcome == "accepted"


async def test_nothing_listening_is_a_retry() -> None:
    with FakeJira() as jira:
        url = jira.base_url
    t = JiraTransport(jira_settings(url, "c", timeout=5), ClientCredentials("client-1", lambda: SECRET))
    try:
        verdict = judge(await t.send("builds", body(build(1))), "builds", [build(1)])
    finally:
        await t.close()
    assert verdict.result.outcome == "retry" and verdict.result.status is None


async def test_neither_secret_nor_token_in_any_log_record_or_repr(
    jira: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    t = make(jira)
    seen: list[object] = [t, t.tokens]
    try:
        seen.append(await send(t, build(1)))
        jira.expire_tokens()
        seen.append(await send(t, build(2)))  # a 401, then a renewed token
        jira.interpose(401, '{"error":"invalid_client"}', content_type="application/json", on="token")
        t.tokens.forget()
        seen.append(await send(t, build(3)))  # the token endpoint refusing
        seen.append(await t.send("builds", body(build(4))))
    finally:
        await t.close()
    seen.append(ClientCredentials("client-1", lambda: SECRET))
    tokens = jira.issued_tokens
    assert len(tokens) == 3
    texts = [repr(x) for x in seen] + [str(x) for x in seen]
    texts += [r.getMessage() for r in caplog.records] + [repr(r.__dict__) for r in caplog.records]
    assert any("Jira access token fetched" in r.getMessage() for r in caplog.records)
    for text in texts:
        assert SECRET not in text
        for token in tokens:
            assert token not in text


async def test_through_a_real_proxy_with_the_company_ca(
    monkeypatch: pytest.MonkeyPatch,
    clean_proxy_env: None,
    company_ca: CompanyCA,
    tinyproxy_factory: Callable[..., Tinyproxy],
) -> None:
    with FakeJira(client_secret=SECRET, ssl_context=company_ca.server_context) as jira:
        proxy = tinyproxy_factory([jira.port])
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        t = make(jira, proxy=None, ca_file=company_ca.ca_file)
        try:
            verdict = await send(t, build(1))
        finally:
            await t.close()
        assert verdict.result.outcome == "accepted", verdict.result.detail
        assert proxy.connects(jira.port) >= 1, proxy.log()
        assert len(jira.token_requests) == 1
        # without the company CA the certificate is refused: verification is never off
        t = make(jira, proxy=None)
        try:
            refused = await send(t, build(2))
        finally:
            await t.close()
        assert refused.result.outcome == "retry" and "certificate" in refused.result.detail.lower()
        assert len(jira.token_requests) == 1


async def test_a_token_endpoint_wanting_another_body_is_named_not_guessed(
    jira: FakeJira, transport: JiraTransport
) -> None:
    # should Atlassian want the JSON body with an audience rather than the plugin's form
    jira.interpose(400, '{"error":"unsupported_grant_type"}', content_type="application/json", on="token")
    verdict = await send(transport, build(1))
    assert verdict.result.outcome == "unauthorized" and verdict.items[0].fate == "hold"
    assert "refused the token request (HTTP 400: unsupported_grant_type)" in verdict.result.detail
