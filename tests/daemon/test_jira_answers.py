"""Judging Jira's answers to a bulk request: per item from a 202, for the whole request otherwise,
and anything not recognisably Jira's kept and named rather than dropped."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.sinks.jira.answers import item_key, judge
from daemon.sinks.jira.reply import Reply


def build(number: int, *keys: str) -> dict[str, Any]:
    return {"pipelineId": "jenkins/app", "buildNumber": number, "issueKeys": list(keys or ["OPS-1"])}


DEPLOYMENT = {
    "deploymentSequenceNumber": 12,
    "pipeline": {"id": "jenkins/deploy"},
    "environment": {"id": "prod"},
    "issueKeys": ["OPS-1"],
}
PAGE = "<!DOCTYPE html><html><head><title>Access denied by Example Proxy</title></head><body>no</body></html>"


def bulk(status: int, data: Any = None, **kw: Any) -> Reply:
    return Reply("bulk", status, "application/json" if data is not None else None, data, **kw)


def test_a_202_is_judged_item_by_item() -> None:
    items = [build(1, "OPS-1", "UTF-8"), build(2, "SHA-256"), build(3), build(4)]
    answer = {
        "acceptedBuilds": [
            {"pipelineId": "jenkins/app", "buildNumber": 1},
            {"pipelineId": "jenkins/app", "buildNumber": 3},
        ],
        "rejectedBuilds": [
            {
                "key": {"pipelineId": "jenkins/app", "buildNumber": 2},
                "errors": [{"message": "no known issue"}, {"message": "second", "errorTraceId": "t"}],
            }
        ],
        "unknownIssueKeys": ["UTF-8", "SHA-256"],
    }
    verdict = judge(bulk(202, answer), "builds", items)
    assert verdict.result.outcome == "accepted"
    assert [v.fate for v in verdict.items] == ["accepted", "dead", "accepted", "retry"]
    assert verdict.items[0].unknown_keys == ("UTF-8",) and verdict.items[0].detail == ""
    assert verdict.items[1].detail == "no known issue; second"
    assert verdict.items[1].unknown_keys == ("SHA-256",)
    assert "neither accepted nor rejected" in verdict.items[3].detail
    assert verdict.unknown_issue_keys == ("UTF-8", "SHA-256")
    assert (verdict.count("accepted"), verdict.count("dead")) == (2, 1)


def test_accepted_with_only_unknown_keys_leaves_and_says_so() -> None:
    answer = {
        "acceptedBuilds": [{"pipelineId": "jenkins/app", "buildNumber": 1}],
        "unknownIssueKeys": ["UTF-8"],
    }
    (item,) = judge(bulk(202, answer), "builds", [build(1, "UTF-8")]).items
    assert item.fate == "accepted" and "none of its issue keys" in item.detail


def test_deployments_are_matched_by_their_three_part_key_even_as_text() -> None:
    key = {"pipelineId": "jenkins/deploy", "environmentId": "prod", "deploymentSequenceNumber": "12"}
    verdict = judge(bulk(202, {"acceptedDeployments": [key]}), "deployments", [DEPLOYMENT])
    assert [v.fate for v in verdict.items] == ["accepted"]
    assert item_key("deployments", DEPLOYMENT) == ("jenkins/deploy", "prod", "12")


def test_a_202_naming_none_of_the_items_is_not_taken_for_delivery() -> None:
    for answer in ({}, {"acceptedBuilds": [{"pipelineId": "other", "buildNumber": 1}]}):
        verdict = judge(bulk(202, answer), "builds", [build(1), build(2)])
        assert verdict.result.outcome == "not_compass"
        assert "names none of the 2 builds" in verdict.result.detail
        assert {v.fate for v in verdict.items} == {"retry"}


def test_a_whole_request_400_dead_letters_every_item_with_jiras_message() -> None:
    verdict = judge(bulk(400, [{"message": "builds: must not be empty"}]), "builds", [build(1), build(2)])
    assert verdict.result.outcome == "rejected"
    assert [v.fate for v in verdict.items] == ["dead", "dead"]
    assert "builds: must not be empty" in verdict.items[0].detail


def test_a_400_page_is_not_a_reason_to_drop_builds() -> None:
    verdict = judge(Reply("bulk", 400, "text/html", text=PAGE), "builds", [build(1)])
    assert verdict.result.outcome == "not_compass" and verdict.items[0].fate == "retry"
    assert "Access denied by Example Proxy" in verdict.result.detail


def test_401_is_retried_with_a_new_token_before_it_means_the_credentials() -> None:
    first = judge(bulk(401), "builds", [build(1)])
    assert first.result.outcome == "retry"
    after = judge(bulk(401, renewed=True), "builds", [build(1)])
    assert after.result.outcome == "unauthorized" and after.items[0].fate == "hold"
    assert after.result.detail.startswith("credentials rejected")
    assert "client id and secret" in after.result.detail and "Builds permission" in after.result.detail


def test_403_names_the_permission_for_the_kind() -> None:
    verdict = judge(bulk(403), "deployments", [DEPLOYMENT])
    assert verdict.result.outcome == "unauthorized"
    assert "Deployments permission" in verdict.result.detail
    assert verdict.items[0].fate == "hold"


@pytest.mark.parametrize("status", [401, 403])
def test_a_401_or_403_page_is_a_proxy_not_jira(status: int) -> None:
    verdict = judge(Reply("bulk", status, "text/html", text=PAGE, renewed=True), "builds", [build(1)])
    assert verdict.result.outcome == "not_compass"
    assert verdict.result.answer is not None
    assert verdict.result.answer.fields()["title"] == "Access denied by Example Proxy"


def test_404_pauses_naming_the_cloud_id() -> None:
    verdict = judge(bulk(404, [{"message": "Not Found"}]), "builds", [build(1)])
    assert verdict.result.outcome == "not_found" and "cloud id" in verdict.result.detail


@pytest.mark.parametrize(
    ("status", "header", "delay"), [(429, "17", 17.0), (503, None, None), (500, "3", 3.0)]
)
def test_rate_limits_and_outages_are_retried_after_retry_after(
    status: int, header: str | None, delay: float | None
) -> None:
    verdict = judge(bulk(status, retry_after=header), "builds", [build(1), build(2)])
    assert verdict.result.outcome == "retry" and verdict.result.retry_after == delay
    assert {v.fate for v in verdict.items} == {"retry"}


def test_413_splits_a_batch_and_dead_letters_a_single_item() -> None:
    two = judge(bulk(413, [{"message": "too large"}]), "builds", [build(1), build(2)])
    assert two.split and {v.fate for v in two.items} == {"hold"} and "sent again in two" in two.result.detail
    one = judge(bulk(413, [{"message": "too large"}]), "builds", [build(1)])
    assert not one.split and one.items[0].fate == "dead" and "even alone" in one.items[0].detail


@pytest.mark.parametrize(
    "reply",
    [
        Reply("bulk", 200, "text/html; charset=utf-8", text=PAGE),
        Reply("bulk", 302, "text/html", text="", location="https://login.example.com/sso?x=1"),
        Reply("bulk", 202, "text/html", text=PAGE),
        Reply("bulk", 204, None),
        Reply("bulk", 407, "text/html", text=PAGE),
    ],
)
def test_answers_from_something_else_are_kept_and_named(reply: Reply) -> None:
    verdict = judge(reply, "builds", [build(1)])
    assert verdict.result.outcome == "not_compass" and verdict.items[0].fate == "retry"
    assert f"HTTP {reply.status}" in verdict.result.detail
    if reply.location:
        assert "login.example.com" in verdict.result.detail
    elif reply.text:
        assert "Access denied by Example Proxy" in verdict.result.detail


def test_no_answer_at_all_is_retried() -> None:
    verdict = judge(Reply.failed("bulk", "ClientConnectorError: refused"), "builds", [build(1)])
    assert verdict.result.outcome == "retry" and "refused" in verdict.items[0].detail


def test_the_token_endpoint_refusing_the_credentials_pauses() -> None:
    refused = Reply(
        "token", 401, "application/json", {"error": "access_denied", "error_description": "Unauthorized"}
    )
    verdict = judge(refused, "builds", [build(1)])
    assert verdict.result.outcome == "unauthorized" and verdict.items[0].fate == "hold"
    assert "access_denied: Unauthorized" in verdict.result.detail
    assert "token endpoint" in verdict.result.detail


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (Reply("token", 503, None), "retry"),
        (Reply("token", 200, "text/html", text=PAGE), "not_compass"),
        (Reply("token", 200, "application/json", {"token_type": "Bearer"}), "not_compass"),
        (Reply("token", 403, "text/html", text=PAGE), "not_compass"),
        (Reply.failed("token", "no answer from the token endpoint in time"), "retry"),
    ],
)
def test_other_token_endpoint_answers(reply: Reply, outcome: str) -> None:
    assert judge(reply, "builds", [build(1)]).result.outcome == outcome


def test_an_item_echoed_percent_encoded_or_as_a_float_is_still_named() -> None:
    items = [{"pipelineId": "jenkins/a b", "buildNumber": 1}, {"pipelineId": "jenkins/c", "buildNumber": 2}]
    answer = {
        "acceptedBuilds": [
            {"pipelineId": "jenkins/a%20b", "buildNumber": 1},
            {"pipelineId": "jenkins/c", "buildNumber": 2.0},
        ]
    }
    verdict = judge(bulk(202, answer), "builds", items)
    assert [v.fate for v in verdict.items] == ["accepted", "accepted"]


def test_an_answer_naming_as_many_items_as_sent_in_other_words_is_read_in_order() -> None:
    items = [build(1), build(2)]
    rejected = [
        {"key": {"pipelineId": "x", "buildNumber": n}, "errors": [{"message": f"bad {n}"}]} for n in (1, 2)
    ]
    verdict = judge(bulk(202, {"rejectedBuilds": rejected}), "builds", items)
    assert [(v.fate, v.detail) for v in verdict.items] == [("dead", "bad 1"), ("dead", "bad 2")]
    accepted = [{"pipelineId": "x", "buildNumber": n} for n in (1, 2)]
    assert {v.fate for v in judge(bulk(202, {"acceptedBuilds": accepted}), "builds", items).items} == {
        "accepted"
    }
