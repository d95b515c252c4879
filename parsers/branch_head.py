"""What a multibranch branch job builds: a branch, a pull request or a tag, and whether it is primary.

branch-api keeps it in the branch job's ``config.xml``: a branch property (workflow-multibranch's
``BranchJobProperty``, the branch in ``<branch>``) whose ``<head class="...">`` is the SCM head,
serialized by XStream with its fields as child elements, and whose ``<actions>`` hold scm-api's
metadata: ``PrimaryInstanceMetadataAction`` on the repository's default branch,
``ObjectMetadataAction`` (``objectDisplayName``: a pull request's title, ``objectUrl``) and others.

The head's class says its kind. A head without a class attribute is scm-api's plain ``SCMHead``,
which the git plugin used for branches before ``GitBranchSCMHead``; change requests and tags always
had classes of their own. A class not known here is of unknown kind (None), never guessed from
its fields, except by the names every branch source gives them (``...PullRequestSCMHead``,
``...MergeRequestSCMHead``, ``...TagSCMHead``, ``...BranchSCMHead``).

The pull request's fields differ by branch source: its number is ``<number>`` (GitHub, Bitbucket)
or ``<id>`` (Gitea, GitLab); the branch it comes from ``<sourceBranch>`` (GitHub), ``<branchName>``
(Bitbucket) or ``<originName>`` (Gitea, GitLab); the branch it targets ``<target><name>`` in all.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Literal

from parsers.xmlsafe import parse_xml

__all__ = ["BranchHead", "HeadKind", "branch_element", "head_kind", "parse_branch_head"]

HeadKind = Literal["branch", "pull_request", "tag"]

_BRANCH_JOB_PROPERTY = "org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty"
_PRIMARY = "jenkins.scm.api.metadata.PrimaryInstanceMetadataAction"
_OBJECT = "jenkins.scm.api.metadata.ObjectMetadataAction"
_MAX_TEXT = 1000

# heads of the branch sources buildtail knows by name; others by the suffix of their class name
_KNOWN: dict[str, HeadKind] = {
    "jenkins.scm.api.SCMHead": "branch",
    "jenkins.plugins.git.GitBranchSCMHead": "branch",
    "jenkins.plugins.git.GitTagSCMHead": "tag",
    "org.jenkinsci.plugins.github_branch_source.BranchSCMHead": "branch",
    "org.jenkinsci.plugins.github_branch_source.PullRequestSCMHead": "pull_request",
    "org.jenkinsci.plugins.github_branch_source.GitHubTagSCMHead": "tag",
    "com.cloudbees.jenkins.plugins.bitbucket.BranchSCMHead": "branch",
    "com.cloudbees.jenkins.plugins.bitbucket.PullRequestSCMHead": "pull_request",
    "com.cloudbees.jenkins.plugins.bitbucket.BitbucketTagSCMHead": "tag",
    "org.jenkinsci.plugin.gitea.BranchSCMHead": "branch",
    "org.jenkinsci.plugin.gitea.PullRequestSCMHead": "pull_request",
    "org.jenkinsci.plugin.gitea.TagSCMHead": "tag",
    "org.jenkinsci.plugin.gitea.ReleaseSCMHead": "tag",  # a Gitea release is built from its tag
    "io.jenkins.plugins.gitlabbranchsource.BranchSCMHead": "branch",
    "io.jenkins.plugins.gitlabbranchsource.MergeRequestSCMHead": "pull_request",
    "io.jenkins.plugins.gitlabbranchsource.GitLabTagSCMHead": "tag",
}
_SUFFIXES: tuple[tuple[str, HeadKind], ...] = (
    ("PullRequestSCMHead", "pull_request"),
    ("MergeRequestSCMHead", "pull_request"),
    ("ChangeRequestSCMHead", "pull_request"),
    ("TagSCMHead", "tag"),
    ("BranchSCMHead", "branch"),
)


@dataclass(frozen=True, slots=True)
class BranchHead:
    """A branch job's head. ``kind`` None: a head class buildtail does not know."""

    name: str
    kind: HeadKind | None
    primary: bool = False
    pr_id: str | None = None
    pr_title: str | None = None
    pr_target: str | None = None
    pr_source_branch: str | None = None
    url: str | None = None


def _text(el: ET.Element | None) -> str | None:
    if el is None:
        return None
    text = "".join(el.itertext()).strip()
    return text[:_MAX_TEXT] or None


def _first_text(el: ET.Element, children: tuple[str, ...]) -> str | None:
    return next((t for t in (_text(el.find(c)) for c in children) if t), None)


def head_kind(head_class: str | None) -> HeadKind | None:
    """The kind of a head by its XStream class (None: no class attribute, plain ``SCMHead``)."""
    if head_class is None:
        return "branch"
    known = _KNOWN.get(head_class)
    if known is not None:
        return known
    short = head_class.rsplit(".", 1)[-1].rsplit("$", 1)[-1]
    return next((kind for suffix, kind in _SUFFIXES if short.endswith(suffix)), None)


def branch_element(root: ET.Element) -> ET.Element | None:
    """The branch of a branch job's ``config.xml``: a ``<properties>`` child whose tag ends in
    ``BranchJobProperty`` (workflow-multibranch, preferred) or ``BranchProperty`` (another project
    type; branch-api's test harness keeps the branch in ``<b>``), whose child has ``<head><name>``."""
    properties = root.find("properties")
    if properties is None:
        return None
    candidates = sorted(
        (p for p in properties if p.tag.endswith(("BranchJobProperty", "BranchProperty"))),
        key=lambda p: p.tag != _BRANCH_JOB_PROPERTY,
    )
    for prop in candidates:
        for branch in prop:
            if _text(branch.find("head/name")) is not None:
                return branch
    return None


def parse_branch_head(job_config_xml: bytes) -> BranchHead | None:
    """A branch job's head with its metadata, or None for a job that is not a branch job."""
    branch = branch_element(parse_xml(job_config_xml))
    if branch is None:
        return None
    head = branch.find("head")
    assert head is not None  # branch_element found its name
    name = _text(head.find("name")) or ""
    kind = head_kind(head.get("class"))
    actions = branch.find("actions")
    primary = actions is not None and actions.find(_PRIMARY) is not None
    meta = actions.find(_OBJECT) if actions is not None else None
    title = _text(meta.find("objectDisplayName")) if meta is not None else None
    url = _text(meta.find("objectUrl")) if meta is not None else None
    if kind != "pull_request":
        return BranchHead(name=name, kind=kind, primary=primary, url=url)
    return BranchHead(
        name=name,
        kind=kind,
        primary=False,
        pr_id=_first_text(head, ("number", "id")),
        pr_title=title or _text(head.find("title")),
        pr_target=_text(head.find("target/name")),
        pr_source_branch=_first_text(head, ("sourceBranch", "branchName", "originName")),
        url=url,
    )
