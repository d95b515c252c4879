"""Which runs count: the one answer to "is this run sent to Compass at all?".

Compass computes a component's build success rate from the builds it is told about. Atlassian's
own integrations send the default branch's builds only; a CI runs much more (pull requests, feature
branches, tags, housekeeping jobs). Each source says what counts:

- ``include`` / ``exclude``: globs over job full names (``*`` within a folder, ``**`` across); a job
  counts when an include matches it and no exclude does. Every source has them.
- ``branches`` / ``pull_requests`` / ``tags`` (Jenkins): a multibranch project's branch job builds
  a head, a branch, a pull request or a tag (``parsers.branch_head``). ``pull_requests: false`` and
  ``tags: false`` leave those out; ``branches`` selects among the branches: ``all``, ``primary``
  (the repository's default branch, as the branch source marked it), or globs over branch names.
  A head of a kind buildtail does not know is judged as a branch; under ``primary`` it does not
  count, since nothing says it is the primary one. A run without a head (any job that is not a
  multibranch branch job) is never left out by these three.

``exclusion`` is the answer with its reason, for the recorder and for anyone who asks why a run
was not sent. A run left out is not recorded at all. What a change of these settings makes of
the runs that finished before it is the history policy's (``daemon.history``), from the settings'
``fingerprint``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daemon.config import JenkinsSourceSettings, Settings, SourceSettings
from daemon.config.values import job_matches
from daemon.events import RunFacts
from daemon.store import RunRow
from parsers.branch_head import BranchHead

__all__ = ["Scope", "exclusion", "keeps_out"]


@dataclass(frozen=True, slots=True)
class Scope:
    """One source's rules of what counts (its defaults count everything)."""

    source: str
    include: tuple[str, ...] = ("**",)
    exclude: tuple[str, ...] = ()
    branches: str | tuple[str, ...] = "all"
    pull_requests: bool = True
    tags: bool = True

    @classmethod
    def of(cls, settings: SourceSettings) -> Scope:
        if isinstance(settings, JenkinsSourceSettings):
            return cls(
                settings.name,
                settings.include,
                settings.exclude,
                settings.branches,
                settings.pull_requests,
                settings.tags,
            )
        return cls(settings.name, settings.include, settings.exclude)

    def fingerprint(self) -> dict[str, Any]:
        """The rules as JSON, to tell a change of them across reloads and restarts."""
        return {
            "include": list(self.include),
            "exclude": list(self.exclude),
            "branches": self.branches if isinstance(self.branches, str) else list(self.branches),
            "pull_requests": self.pull_requests,
            "tags": self.tags,
        }

    @classmethod
    def from_fingerprint(cls, source: str, data: dict[str, Any]) -> Scope:
        branches = data.get("branches", "all")
        return cls(
            source,
            tuple(data.get("include", ("**",))),
            tuple(data.get("exclude", ())),
            branches if isinstance(branches, str) else tuple(branches),
            bool(data.get("pull_requests", True)),
            bool(data.get("tags", True)),
        )

    def exclusion(self, job: str, head: BranchHead | None) -> str | None:
        """None when a run of ``job`` building ``head`` counts, else the rule that leaves it out."""
        for glob in self.exclude:
            if job_matches(glob, job):
                return f"excluded by exclude {glob!r} (source {self.source})"
        if not any(job_matches(glob, job) for glob in self.include):
            return f"not included by include {list(self.include)} (source {self.source})"
        if head is None:
            return None
        if head.kind == "pull_request":
            return None if self.pull_requests else "pull request (pull_requests: false)"
        if head.kind == "tag":
            return None if self.tags else "tag (tags: false)"
        if self.branches == "all":
            return None
        if self.branches == "primary":
            return None if head.primary else "not the primary branch (branches: primary)"
        if any(job_matches(glob, head.name) for glob in self.branches):
            return None
        return f"branch {head.name!r} not matched by branches {list(self.branches)}"


def exclusion(settings: Settings, facts: RunFacts) -> str | None:
    """None when the run counts (it is sent), else a short reason naming the rule that leaves it
    out, such as ``excluded by exclude 'housekeeping/*' (source jenkins)``."""
    source = settings.source_named(facts.source)
    if source is None:
        return None  # a source no longer configured: its queued runs finish as they are
    return Scope.of(source).exclusion(facts.job, facts.head)


def keeps_out(settings: Settings, facts: RunFacts, prior: RunRow | None) -> str | None:
    """``exclusion``, except for a run Compass already shows in progress: it is told how that run
    ended even when the rules changed since, or it would show in progress for good."""
    if prior is not None and not prior.terminal:
        return None
    return exclusion(settings, facts)
