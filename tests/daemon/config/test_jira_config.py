"""The ``jira`` section: what it takes, and the mistakes it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from daemon.config import JiraSettings

BASE: dict[str, Any] = {"site": "example.atlassian.net", "client_id": "cid", "client_secret": "s3cret-value"}


def test_defaults_and_urls() -> None:
    jira = JiraSettings.model_validate(BASE)
    assert (jira.builds, jira.deployments, jira.project_keys, jira.cloud_id) == (True, True, (), None)
    assert jira.token_url == "https://api.atlassian.com/oauth/token"
    assert jira.bulk_url("builds", "c-1") == "https://api.atlassian.com/jira/builds/0.1/cloud/c-1/bulk"
    assert jira.site_url == "https://example.atlassian.net"
    assert jira.secret() == "s3cret-value"
    assert "s3cret-value" not in repr(jira) and "s3cret-value" not in str(jira.model_dump())


def test_the_secret_from_a_file_is_read_each_time(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("one\n")
    jira = JiraSettings.model_validate({**BASE, "client_secret": None, "client_secret_file": str(secret)})
    assert jira.secret() == "one"
    secret.write_text("two\n")
    assert jira.secret() == "two"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_secret": None}, "set exactly one of client_secret and client_secret_file"),
        ({"client_secret_file": "/nonexistent/secret"}, "file does not exist"),
        ({"site": "https://example.atlassian.net/"}, "expected the site's host name"),
        ({"project_keys": ["ABC", "utf"]}, "'utf' is not a Jira project key"),
        ({"builds": False, "deployments": False}, "nothing would be sent to Jira"),
        ({"burst": 100}, "burst must be smaller than rate_limit_per_minute"),
        ({"api_url": "api.atlassian.com"}, "expected an http(s) URL"),
        ({"proxy": "http://user:pw@proxy.example:3128"}, "must not hold credentials"),
    ],
)
def test_mistakes_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        JiraSettings.model_validate({**BASE, **change})
    assert message in str(exc.value)
    assert "s3cret-value" not in str(exc.value)
