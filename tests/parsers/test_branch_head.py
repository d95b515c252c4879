"""A branch job's head from its config.xml: the shapes branch-api writes for each branch source
(tests/fixtures/branch_heads, each naming the source it follows), a real old file from ../shared,
and files that are not branch jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from parsers import BranchHead, ParseError, UnsafeXmlError, parse_branch_head, parse_branch_name
from parsers.branch_head import head_kind

HEADS = Path(__file__).resolve().parents[1] / "fixtures" / "branch_heads"
REAL = (
    Path(__file__).resolve().parents[2].parent
    / "shared/fixtures/jenkins-real/git-multibranch-migration/jobs/job/branches/master/config.xml"
)


def _head(name: str) -> BranchHead | None:
    return parse_branch_head((HEADS / name).read_bytes())


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "github-pr.xml",
            BranchHead(
                name="PR-12",
                kind="pull_request",
                pr_id="12",
                pr_title="Fix the login page",
                pr_target="main",
                pr_source_branch="fix-login",
                url="https://github.com/acme/shop/pull/12",
            ),
        ),
        (
            "github-branch-primary.xml",
            BranchHead(
                name="main", kind="branch", primary=True, url="https://github.com/acme/shop/tree/main"
            ),
        ),
        (
            "github-branch.xml",
            BranchHead(
                name="feature/search", kind="branch", url="https://github.com/acme/shop/tree/feature/search"
            ),
        ),
        ("github-tag.xml", BranchHead(name="v1.4.0", kind="tag")),
        (
            "bitbucket-pr.xml",  # no ObjectMetadataAction: the title is the head's own
            BranchHead(
                name="PR-3",
                kind="pull_request",
                pr_id="3",
                pr_title="Cart total rounds down",
                pr_target="develop",
                pr_source_branch="bugfix/cart",
            ),
        ),
        ("bitbucket-branch-primary.xml", BranchHead(name="develop", kind="branch", primary=True)),
        ("bitbucket-tag.xml", BranchHead(name="release-2.0", kind="tag")),
        (
            "gitea-pr.xml",
            BranchHead(
                name="PR-5",
                kind="pull_request",
                pr_id="5",
                pr_title="Document the API",
                pr_target="main",
                pr_source_branch="docs",
                url="https://gitea.example.com/acme/shop/pulls/5",
            ),
        ),
        ("git-tag.xml", BranchHead(name="v0.9", kind="tag")),
        ("unknown-head.xml", BranchHead(name="trunk", kind=None)),
        ("old-plain.xml", BranchHead(name="master", kind="branch")),  # plain SCMHead, no actions
        ("freestyle.xml", None),
    ],
)
def test_heads_of_each_branch_source(fixture: str, expected: BranchHead | None) -> None:
    assert _head(fixture) == expected
    assert parse_branch_name((HEADS / fixture).read_bytes()) == (expected.name if expected else None)


@pytest.mark.skipif(not REAL.is_file(), reason="real fixtures (../shared next to the checkout) absent")
def test_a_real_git_branch_marked_primary() -> None:
    """A config.xml Jenkins wrote (git branch source, branch-api 2.0.7): plain SCMHead, primary."""
    assert parse_branch_head(REAL.read_bytes()) == BranchHead(name="master", kind="branch", primary=True)


def test_the_harness_branch_property_of_other_project_types() -> None:
    data = (
        b"<project><properties><integration.harness.BasicBranchProperty><b>"
        b'<head class="jenkins.scm.impl.mock.MockChangeRequestSCMHead"><name>CR-4</name><number>4</number>'
        b"<target><name>master</name></target></head>"
        b"</b></integration.harness.BasicBranchProperty></properties></project>"
    )
    assert parse_branch_head(data) == BranchHead(
        name="CR-4", kind="pull_request", pr_id="4", pr_target="master"
    )


@pytest.mark.parametrize(
    ("cls", "kind"),
    [
        (None, "branch"),
        ("jenkins.scm.api.SCMHead", "branch"),
        ("io.jenkins.plugins.gitlabbranchsource.MergeRequestSCMHead", "pull_request"),
        ("org.jenkinsci.plugin.gitea.ReleaseSCMHead", "tag"),
        ("com.example.Outer$PullRequestSCMHead", "pull_request"),
        ("com.example.FancyHead", None),
    ],
)
def test_kinds_by_class(cls: str | None, kind: str | None) -> None:
    assert head_kind(cls) == kind


def test_hostile_and_broken_files() -> None:
    with pytest.raises(UnsafeXmlError):
        parse_branch_head(b'<!DOCTYPE x [<!ENTITY e "boom">]><flow-definition>&e;</flow-definition>')
    with pytest.raises(ParseError):
        parse_branch_head((HEADS / "github-pr.xml").read_bytes()[:400])  # cut short mid-write
    empty = b"<flow-definition><properties><x.BranchJobProperty><branch><head><name> </name></head>"
    assert (
        parse_branch_head(empty + b"</branch></x.BranchJobProperty></properties></flow-definition>") is None
    )
