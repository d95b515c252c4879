"""The fake Jira holds clients to the contract: tokens that expire, bodies checked item by item,
unknown issue keys named, and a rate limit that says when to come back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tools.fake_jira import FakeJira, check_answer, schemas_present

ITEM: dict[str, Any] = {
    "schemaVersion": "1.0",
    "pipelineId": "jenkins/team/app",
    "buildNumber": 3,
    "updateSequenceNumber": 10,
    "displayName": "team/app #3",
    "url": "https://jenkins.example.com/job/team/job/app/3/",
    "state": "successful",
    "lastUpdated": "2026-11-30T10:00:00.000Z",
    "issueKeys": ["OPS-7"],
}
DEPLOYMENT: dict[str, Any] = {
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


def builds(*items: dict[str, Any]) -> dict[str, Any]:
    return {"builds": list(items), "providerMetadata": {"product": "buildtail"}}


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(known_projects=["OPS"]) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


async def token(session: aiohttp.ClientSession, jira: FakeJira, **extra: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": "client-1", "client_secret": "secret-1", **extra}
    async with session.post(jira.base_url + "/oauth/token", data=form) as answer:
        assert answer.status == 200, await answer.text()
        body = await answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    return str(body["access_token"])


async def submit(
    session: aiohttp.ClientSession, jira: FakeJira, kind: str, body: Any, bearer: str
) -> tuple[int, Any, dict[str, str]]:
    async with session.post(
        jira.bulk_url(kind), json=body, headers={"Authorization": f"Bearer {bearer}"}
    ) as answer:
        data = await answer.json() if answer.content_type == "application/json" else None
        return answer.status, data, dict(answer.headers)


async def test_a_token_then_builds_accepted_and_stored(
    jira: FakeJira, session: aiohttp.ClientSession
) -> None:
    bearer = await token(session, jira)
    status, answer, _ = await submit(session, jira, "builds", builds(ITEM), bearer)
    assert status == 202
    assert answer == {
        "acceptedBuilds": [{"pipelineId": "jenkins/team/app", "buildNumber": 3}],
        "rejectedBuilds": [],
    }
    assert jira.stored("builds") == {("jenkins/team/app", 3): ITEM}
    assert jira.token_requests[0]["client_secret"] == "***"


async def test_the_json_token_request_with_audience(jira: FakeJira, session: aiohttp.ClientSession) -> None:
    grant = {
        "audience": "api.atlassian.com",
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": "secret-1",
    }
    async with session.post(jira.base_url + "/oauth/token", json=grant) as answer:
        assert answer.status == 200
    assert jira.token_requests[-1]["audience"] == "api.atlassian.com"
    async with session.post(
        jira.base_url + "/oauth/token", json={**grant, "client_secret": "wrong"}
    ) as answer:
        assert answer.status == 401
    async with session.post(
        jira.base_url + "/oauth/token", json={**grant, "grant_type": "password"}
    ) as answer:
        assert answer.status == 400


async def test_expired_and_unknown_tokens_are_refused(jira: FakeJira, session: aiohttp.ClientSession) -> None:
    bearer = await token(session, jira)
    assert (await submit(session, jira, "builds", builds(ITEM), "made-up"))[0] == 401
    assert (await submit(session, jira, "builds", builds(ITEM), bearer))[0] == 202
    jira.expire_tokens()
    assert (await submit(session, jira, "builds", builds(ITEM), bearer))[0] == 401
    assert (await submit(session, jira, "builds", builds(ITEM), await token(session, jira)))[0] == 202


async def test_a_token_expires_by_itself(session: aiohttp.ClientSession) -> None:
    with FakeJira(token_ttl_s=0.3) as jira:
        form = {"grant_type": "client_credentials", "client_id": "client-1", "client_secret": "secret-1"}
        async with session.post(jira.base_url + "/oauth/token", data=form) as answer:
            bearer = (await answer.json())["access_token"]
        assert (await submit(session, jira, "builds", builds(ITEM), bearer))[0] == 202
        deadline = time.monotonic() + 10
        while (await submit(session, jira, "builds", builds(ITEM), bearer))[0] != 401:
            assert time.monotonic() < deadline, "the token never expired"
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("use_schema", [True, False])
async def test_an_invalid_item_is_rejected_the_rest_accepted(
    session: aiohttp.ClientSession, use_schema: bool
) -> None:
    if use_schema and not schemas_present():
        pytest.skip("the Jira reference schemas (../shared) are absent")
    with FakeJira(use_schema=use_schema) as jira:
        bearer = await token(session, jira)
        bad = {**ITEM, "buildNumber": 4, "state": "SUCCESSFUL"}
        status, answer, _ = await submit(session, jira, "builds", builds(ITEM, bad), bearer)
        assert status == 202
        assert answer["acceptedBuilds"] == [{"pipelineId": "jenkins/team/app", "buildNumber": 3}]
        (rejected,) = answer["rejectedBuilds"]
        assert rejected["key"] == {"pipelineId": "jenkins/team/app", "buildNumber": 4}
        assert "state" in rejected["errors"][0]["message"]
        missing = {k: v for k, v in DEPLOYMENT.items() if k != "environment"}
        # without its environment the item has no key to be rejected by: the request as a whole is
        status, answer, _ = await submit(session, jira, "deployments", {"deployments": [missing]}, bearer)
        assert status == 400 and answer[0]["message"]
        status, answer, _ = await submit(
            session, jira, "deployments", {"deployments": [{**DEPLOYMENT, "state": "bad"}]}, bearer
        )
        assert (
            status == 202 and answer["acceptedDeployments"] == [] and len(answer["rejectedDeployments"]) == 1
        )
        status, answer, _ = await submit(session, jira, "builds", {"builds": []}, bearer)
        assert status == 400 and answer[0]["message"]
        status, answer, _ = await submit(session, jira, "builds", builds(*[ITEM] * 101), bearer)
        assert status == 400


async def test_unknown_issue_keys(jira: FakeJira, session: aiohttp.ClientSession) -> None:
    bearer = await token(session, jira)
    mixed = {**ITEM, "issueKeys": ["OPS-7", "UTF-8"]}
    only_unknown = {**ITEM, "buildNumber": 4, "issueKeys": ["SHA-256"]}
    status, answer, _ = await submit(session, jira, "builds", builds(mixed, only_unknown), bearer)
    assert status == 202
    assert answer["acceptedBuilds"] == [{"pipelineId": "jenkins/team/app", "buildNumber": 3}]
    assert answer["rejectedBuilds"][0]["key"]["buildNumber"] == 4
    assert answer["unknownIssueKeys"] == ["UTF-8", "SHA-256"]


async def test_deployments_and_their_ordering(jira: FakeJira, session: aiohttp.ClientSession) -> None:
    bearer = await token(session, jira)
    newer = {**DEPLOYMENT, "updateSequenceNumber": 5, "state": "rolled_back"}
    stale = {**DEPLOYMENT, "updateSequenceNumber": 4, "state": "failed"}
    status, answer, _ = await submit(session, jira, "deployments", {"deployments": [newer, stale]}, bearer)
    key = {"pipelineId": "jenkins/deploy-shop", "environmentId": "prod", "deploymentSequenceNumber": 12}
    assert status == 202 and answer["acceptedDeployments"] == [key, key]  # the stale one too, as Jira
    assert jira.stored("deployments")[("jenkins/deploy-shop", "prod", 12)]["state"] == "rolled_back"


async def test_over_the_limit_429_with_retry_after(session: aiohttp.ClientSession) -> None:
    with FakeJira(limit_per_minute=2) as jira:
        bearer = await token(session, jira)
        statuses = [(await submit(session, jira, "builds", builds(ITEM), bearer)) for _ in range(3)]
        assert [s for s, _, _ in statuses] == [202, 202, 429]
        assert 1 <= int(statuses[2][2]["Retry-After"]) <= 61


async def test_another_cloud_is_not_found(jira: FakeJira, session: aiohttp.ClientSession) -> None:
    bearer = await token(session, jira)
    url = jira.base_url + "/jira/builds/0.1/cloud/other/bulk"
    async with session.post(url, json=builds(ITEM), headers={"Authorization": f"Bearer {bearer}"}) as answer:
        assert answer.status == 404
    async with session.get(jira.base_url + "/_edge/tenant_info") as answer:
        assert await answer.json() == {"cloudId": "cloud-123"}


class _WrongAnswers(FakeJira):
    """A fake whose 202 answer names accepted builds by a bare id, not by their key object."""

    def _outcome(
        self, kind: str, items: list[dict[str, Any]], invalid: dict[int, list[str]]
    ) -> dict[str, Any]:
        return {f"accepted{kind.title()}": [item.get("pipelineId") for item in items]}


@pytest.mark.skipif(not schemas_present(), reason="shared reference schemas absent")
async def test_an_answer_of_a_shape_jira_never_gives_is_refused(session: aiohttp.ClientSession) -> None:
    assert check_answer("builds", 202, {"acceptedBuilds": [{"pipelineId": "p", "buildNumber": 1}]}) == []
    assert check_answer("builds", 400, [{"message": "bad"}]) == []
    assert check_answer("builds", 400, {"message": "bad"}) != []
    with _WrongAnswers(known_projects=["OPS"]) as wrong:
        status, _, _ = await submit(session, wrong, "builds", builds(ITEM), await token(session, wrong))
        assert status == 500
        assert wrong.submissions == []
