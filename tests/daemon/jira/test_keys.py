"""Issue keys: the order of evidence, the allow-list, the cap, and what a deployment carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.config.jira import JiraSettings
from daemon.sinks.jira.keys import carry_forward, issue_keys_for, with_carried
from parsers.branch_head import BranchHead
from parsers.changelog import Commit

from ..test_events import facts


def jira(**kw: Any) -> JiraSettings:
    return JiraSettings.model_validate(
        {"site": "example.atlassian.net", "client_id": "c", "client_secret": "s", **kw}
    )


def commit(i: int, message: str) -> Commit:
    return Commit(id=f"{i:040x}", author="dev", title=message.split("\n")[0], message=message)


def test_the_branch_comes_first_then_commits_then_parameters(tmp_path: Path) -> None:
    f = facts(
        head=BranchHead("feature/ABC-12-login", "branch"),
        branch="ignored/ABC-99",
        commits=(commit(1, "ABC-7 fix\n\nalso ABC-12"), commit(2, "OPS-3 deploy")),
        parameters=(("TICKET", "ABC-40"), ("OTHER", "ABC-41")),
    )
    keys = issue_keys_for(f, jira(issue_key_parameters=["TICKET"]))
    assert keys.keys == ("ABC-12", "ABC-7", "OPS-3", "ABC-40")
    assert keys.origin("ABC-12") == "branch"
    assert keys.origin("ABC-7") == f"commit {1:040x}"[:19]
    assert keys.origin("ABC-40") == "parameter TICKET"
    assert "ABC-41" not in keys.keys and "ABC-99" not in keys.keys


def test_a_pull_request_names_its_source_branch_never_its_head_name() -> None:
    pr = BranchHead("PR-24", "pull_request", pr_id="24", pr_title="ABC-77 fix", pr_source_branch="fix/ABC-13")
    keys = issue_keys_for(facts(head=pr, branch="PR-24"), jira())
    assert keys.keys == ("ABC-13",) and keys.origin("ABC-13") == "pull request branch"
    bare = BranchHead("PR-25", "pull_request", pr_id="25")
    assert issue_keys_for(facts(head=bare, branch="PR-25"), jira()).keys == ()


def test_without_a_head_the_recorded_branch_is_the_evidence() -> None:
    assert issue_keys_for(facts(branch="origin/ABC-5-x"), jira()).keys == ("ABC-5",)
    assert issue_keys_for(facts(), jira()).keys == ()


def test_only_allowed_projects_count_and_the_rest_is_named() -> None:
    f = facts(commits=(commit(1, "Fix UTF-8 handling for ABC-1, see SHA-256"),))
    keys = issue_keys_for(f, jira(project_keys=["ABC"]))
    assert keys.keys == ("ABC-1",)
    assert keys.ignored == ("UTF-8", "SHA-256")


def test_at_most_100_keys_and_the_rest_is_cut_not_lost() -> None:
    f = facts(commits=tuple(commit(i, f"ABC-{i} and ABC-{i}") for i in range(1, 131)))
    keys = issue_keys_for(f, jira())
    assert len(keys.keys) == 100 and keys.keys[0] == "ABC-1" and keys.keys[-1] == "ABC-100"
    assert keys.cut == tuple(f"ABC-{i}" for i in range(101, 131))


def test_a_deployment_carries_keys_of_failed_ones_until_one_succeeds() -> None:
    carried = carry_forward((), ("ABC-1",), succeeded=False)
    carried = carry_forward(carried, ("ABC-2", "ABC-1"), succeeded=False)
    assert carried == ("ABC-1", "ABC-2")
    keys = with_carried(facts(commits=(commit(1, "ABC-3 fix"),)), jira(), carried)
    assert keys.keys == ("ABC-3", "ABC-1", "ABC-2")
    assert keys.origin("ABC-1") == "earlier deployment"
    assert carry_forward(carried, keys.keys, succeeded=True) == ()
