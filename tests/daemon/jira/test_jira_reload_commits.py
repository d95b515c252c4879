"""A reload that removes the ``jira`` section leaves the Jira sink open until a restart
(``registry.as_opened``): the Jenkins sources keep reading each run's commits meanwhile, or runs
that name their issue only in a commit message would stop reaching the Jira still sent to."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import StartService
from tests.inprocess import settings_from, until
from tools.fake_jenkins import JenkinsHome
from tools.fake_jira import FakeJira

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")

COMPASS = {
    "base_url": "https://compass.invalid/gateway/api",
    "cloud_id": "cloud",
    "email": "ci@example.com",
    "api_token": "not-used",
    "rate_limit_per_minute": 0,
}


def _raw(tmp_path: Path, home: JenkinsHome) -> dict[str, Any]:
    return {
        "host": "build01.example.com",
        "state_dir": str(tmp_path / "state"),
        "compass": COMPASS,
        "sources": [
            {
                "type": "jenkins",
                "home": str(home.root),
                "url": "https://jenkins.example.com/",
                "reconcile_interval": "500ms",
            }
        ],
    }


async def test_a_reload_removing_jira_keeps_commits_read_while_jira_is_sent_to(
    tmp_path: Path, in_process: StartService
) -> None:
    home = JenkinsHome(tmp_path / "jenkins")
    with FakeJira(known_projects=["ABC"]) as jira:
        raw = _raw(tmp_path, home)
        with_jira = {
            **raw,
            "jira": {
                "site": "example.atlassian.net",
                "cloud_id": jira.cloud_id,
                "client_id": jira.client_id,
                "client_secret": jira.client_secret,
                "api_url": jira.base_url,
                "batch_window": 0.1,
                "rate_limit_per_minute": 0,
            },
        }
        daemon = await in_process(settings_from(with_jira))
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(raw))
        config.chmod(0o600)
        daemon.service.config_path = config
        await daemon.service.reload()
        assert daemon.service.settings.jira is None  # the reload went through

        run = home.job("lib").start(start_ms=1_700_000_000_000)
        run.changelog(["ABC-1 fix the login page"])  # the only place the run names its issue
        run.finish("SUCCESS", duration_ms=500)

        def sent() -> list[list[str]]:
            return [b["issueKeys"] for b in jira.stored("builds").values()]

        await until("the run sent to Jira", lambda: sent() == [["ABC-1"]], within=10.0)
