"""Which Jira issues a run names: the one place its issue keys are decided.

The evidence, in this order (Atlassian's plugin's order): the branch - a multibranch job's head
name, or for a pull request its source branch only (the plugin's ``CHANGE_BRANCH``; its head name
``PR-24`` would read as a key of a project ``PR``), else the branch the run recorded
(``facts.branch``) -; then the commit messages of the run's changelog (``facts.commits``); then the
values of the build parameters ``jira.issue_key_parameters`` names. For a deployment, the keys of
the deployments of the same job to the same environment that did not succeed since the last one that
did are added last (``carried``: the plugin's "consecutive previous non-successful builds" rule), so
a fix deployed after two failed attempts still reaches the issues of those attempts.

Only keys of ``jira.project_keys`` are kept when it is set (``ignored``: what it kept out, such as
``UTF-8``); each key once; at most ``MAX_ISSUE_KEYS`` (Jira's ``issueKeys`` limit), the rest
``cut`` - logged once per run by the sink and kept for ``buildtail explain``, never dropped unsaid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from daemon.config.jira import JiraSettings
from daemon.events import RunFacts
from parsers.issue_keys import MAX_ISSUE_KEYS, find_keys, project_of

__all__ = ["IssueKeys", "carry_forward", "evidence", "issue_keys_for", "with_carried"]


@dataclass(frozen=True, slots=True)
class IssueKeys:
    """``keys``: what is sent (at most the cap, in order of evidence); ``cut``: allowed keys over the
    cap; ``ignored``: keys of projects ``project_keys`` leaves out; ``origins``: for each key found
    (sent, cut or ignored), where it was first seen (``branch``, ``commit <id>``, ``parameter
    <name>``, ``earlier deployment``)."""

    keys: tuple[str, ...]
    cut: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    origins: tuple[tuple[str, str], ...] = ()

    def origin(self, key: str) -> str | None:
        return dict(self.origins).get(key)


def evidence(facts: RunFacts, jira: JiraSettings) -> list[tuple[str, str]]:
    """(where, text) pairs in order of evidence."""
    texts: list[tuple[str, str]] = []
    head = facts.head
    if head is not None and head.kind == "pull_request":  # its head name is PR-24: a key of "PR"
        if head.pr_source_branch:  # the plugin's CHANGE_BRANCH
            texts.append(("pull request branch", head.pr_source_branch))
    elif head is not None:
        texts.append(("branch", head.name))
    elif facts.branch:
        texts.append(("branch", facts.branch))
    for commit in facts.commits:
        texts.append((f"commit {commit.id[:12]}", commit.message or commit.title))
    wanted = set(jira.issue_key_parameters)
    for name, value in facts.parameters or ():
        if name in wanted:
            texts.append((f"parameter {name}", value))
    return texts


def _decide(found: Iterable[tuple[str, str]], jira: JiraSettings) -> IssueKeys:
    origins: dict[str, str] = {}
    for where, key in found:
        origins.setdefault(key, where)
    allowed = set(jira.project_keys)
    kept = [k for k in origins if not allowed or project_of(k) in allowed]
    ignored = tuple(k for k in origins if allowed and project_of(k) not in allowed)
    return IssueKeys(
        keys=tuple(kept[:MAX_ISSUE_KEYS]),
        cut=tuple(kept[MAX_ISSUE_KEYS:]),
        ignored=ignored,
        origins=tuple(origins.items()),
    )


def issue_keys_for(facts: RunFacts, jira: JiraSettings) -> IssueKeys:
    """The run's issue keys from its own evidence (a deployment's carried keys are added by
    ``with_carried``)."""
    return _decide(((where, key) for where, text in evidence(facts, jira) for key in find_keys(text)), jira)


def with_carried(facts: RunFacts, jira: JiraSettings, carried: Sequence[str]) -> IssueKeys:
    """A deployment's keys: its own, then those carried from the earlier deployments to the same
    environment that did not succeed."""
    own = [(where, key) for where, text in evidence(facts, jira) for key in find_keys(text)]
    return _decide([*own, *(("earlier deployment", k) for k in carried)], jira)


def carry_forward(carried: Sequence[str], keys: Sequence[str], *, succeeded: bool) -> tuple[str, ...]:
    """What the next deployment to the environment carries after one ended: nothing after a success,
    else what was carried plus this one's keys (each once, at most the cap)."""
    if succeeded:
        return ()
    return tuple(dict.fromkeys([*carried, *keys]))[:MAX_ISSUE_KEYS]
