"""A run's facts plus what was already queued for it -> the run's next update, or nothing.

The event rules live here and only here: which Compass state a result becomes (``result_state``),
the run's pipelineId and startedAt (fixed the first time and never changed), whether a run is a
build or a deployment. Sources only report facts (a result in their CI's words); the store only
persists; each sink renders the update as its destination wants it (``daemon.sinks``; Compass's
texts and their 255-character cap are ``daemon.sinks.compass.render``'s). The words themselves are
in ``parsers.vocabulary``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from daemon.clock import now_ms
from daemon.config import LogSourceSettings, ResultFileSourceSettings, Settings
from daemon.config.deployments import Environment
from daemon.config.values import job_matches
from daemon.store import RunRow
from parsers.branch_head import BranchHead
from parsers.changelog import Commit
from parsers.vocabulary import DEFAULT_STATE_MAP, RESULT_WORDS

__all__ = [
    "RunFacts",
    "Update",
    "environment",
    "format_duration",
    "iso_ms",
    "job_matches",
    "next_update",
    "result_state",
    "update_from_json",
    "update_to_json",
]


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What a source saw of one run just now, in CI-neutral terms."""

    source: str
    job: str
    number: int | str  # a Jenkins build number, or another CI's run id
    running: bool
    start_ms: int
    start_is_exact: bool
    result: str | None = None
    timed_out: bool = False
    end_ms: int | None = None
    dir_ino: int | None = None
    display_name: str | None = None
    causes: tuple[str, ...] = ()
    commit: str | None = None
    branch: str | None = None
    run_url: str = ""
    job_url: str | None = None
    written_ms: int = 0  # when the run's files were last written (its record's mtime)
    state: str | None = None  # a Compass state the run's record names itself (a result file's state:)
    # a build's parameters, a log line's named groups; None while not known yet (a freestyle run has
    # no build.xml until it ends)
    parameters: tuple[tuple[str, str], ...] | None = ()
    # a multibranch branch job's head (branch, pull request, tag; primary or not); None for others
    head: BranchHead | None = None
    # the commits the run checked out (its changelog), read only when a sink wants them (Jira's
    # issue keys); bounded by ``bounded_commits``
    commits: tuple[Commit, ...] = ()


MAX_COMMITS = 100  # commits kept per run: Jira takes 100 issue keys per item at most anyway
MAX_MESSAGE = 2000  # characters of each commit message kept


def bounded_commits(commits: tuple[Commit, ...]) -> tuple[Commit, ...]:
    """A run's commits as an update keeps them: the first ``MAX_COMMITS``, each message cut to
    ``MAX_MESSAGE`` characters (the update is stored, and re-read at every send)."""
    return tuple(
        replace(c, message=c.message[:MAX_MESSAGE], title=c.title[:MAX_MESSAGE])
        for c in commits[:MAX_COMMITS]
    )


@dataclass(frozen=True, slots=True)
class Update:
    """A run's update, the same for every destination: its new stored state, the facts it was
    decided from, and when (each sink renders its own request body from it, at send time)."""

    run: RunRow
    facts: RunFacts
    at_ms: int


MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def iso_ms(epoch_ms: int) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``: the form every Compass client accepts.

    A CI file can hold any number; a time outside years 1970..9999 is clamped rather than crash.
    """
    epoch_ms = min(max(int(epoch_ms), 0), MAX_EPOCH_MS)
    t = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    # strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], field by field: twice as fast, on every event sent
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 1000:03d}Z"
    )


def format_duration(ms: int) -> str:
    seconds = max(0, ms) // 1000
    if seconds < 60:
        return f"{seconds}s" if seconds else f"{max(0, ms)}ms"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def result_state(facts: RunFacts, settings: Settings) -> str:
    """A finished run's result -> its Compass state: where a result becomes a state, for every CI.

    A record that names a Compass state itself (a result file's ``state:``) is taken at its word. A
    log or result-file source's result, a word of its CI, goes through the source's ``result_map``,
    then the common words; a Jenkins result through ``state_map`` over the default map, and an
    ABORTED run that timed out is TIMED_OUT. Anything else is UNKNOWN.
    """
    if facts.state is not None:
        return facts.state
    result = facts.result or ""
    source = settings.source_named(facts.source)
    if isinstance(source, LogSourceSettings | ResultFileSourceSettings):
        result_map = source.rules.result_map if isinstance(source, LogSourceSettings) else source.result_map
        word = result.strip().lower()
        return result_map.get(word) or RESULT_WORDS.get(word) or "UNKNOWN"
    if result.upper() == "ABORTED" and facts.timed_out:
        return "TIMED_OUT"
    return {**DEFAULT_STATE_MAP, **settings.state_map}.get(result.upper(), "UNKNOWN")


def _state(facts: RunFacts, settings: Settings, kind: str) -> str:
    """The run's state in its kind's vocabulary: a build's, or a deployment's (which has no ERROR or
    TIMED_OUT, and has ROLLED_BACK)."""
    if facts.running:
        return "IN_PROGRESS"
    state = result_state(facts, settings)
    if kind == "deployment":
        return _DEPLOYMENT_STATE.get(state, state)
    return "FAILED" if state == "ROLLED_BACK" else state


_DEPLOYMENT_STATE = {"ERROR": "FAILED", "TIMED_OUT": "FAILED"}


def _is_new_run(prior: RunRow, facts: RunFacts) -> bool:
    """A recreated job reuses build numbers: the same number that started at another time.

    A CI never changes a run's recorded start, so two exact starts that differ mean two runs even
    when the file system handed the new directory the old one's inode. Without both starts, a
    different directory inode is the evidence.
    """
    if not prior.terminal:
        return False
    if prior.ci_start_ms is not None and facts.start_is_exact:
        return abs(prior.ci_start_ms - facts.start_ms) > 1000
    return prior.dir_ino is not None and facts.dir_ino is not None and prior.dir_ino != facts.dir_ino


def _pipeline_id(facts: RunFacts, generation: int) -> str:
    base = f"{facts.job}#{facts.number}"
    return base if generation == 1 else f"{base}.{generation}"


def next_update(
    facts: RunFacts, prior: RunRow | None, settings: Settings, *, taken: Callable[[str], bool]
) -> Update | None:
    """The event to queue for ``facts`` given the run's stored state, or None when Compass is current.

    ``taken(pipeline_id) -> bool`` tells whether a pipelineId already belongs to another run, so a
    reused build number gets a distinct id instead of overwriting the older run in Compass.
    """
    generation = 1
    if prior is not None and _is_new_run(prior, facts):
        generation = prior.generation + 1
        prior = None
    if prior is not None and (prior.terminal or (facts.running and prior.state == "IN_PROGRESS")):
        return None
    if prior is not None:
        kind = prior.kind  # what the run was first reported as, it stays
    elif facts.running and facts.parameters is None and settings.needs_parameters(facts.source, facts.job):
        return None  # a deployment or a build, its parameters will say: until then, nothing to tell
    else:
        kind = "deployment" if environment(facts, settings) is not None else "build"
    state = _state(facts, settings, kind)
    if prior is not None:
        pipeline_id, started_ms = prior.pipeline_id, prior.started_at_ms
        generation = prior.generation
    else:
        pipeline_id = _pipeline_id(facts, generation)
        while taken(pipeline_id):
            generation += 1
            pipeline_id = _pipeline_id(facts, generation)
        started_ms = min(max(facts.start_ms, 0), MAX_EPOCH_MS)
    run = RunRow(
        source=facts.source,
        job=facts.job,
        number=facts.number,
        generation=generation,
        pipeline_id=pipeline_id,
        started_at_ms=started_ms,
        ci_start_ms=min(max(facts.start_ms, 0), MAX_EPOCH_MS) if facts.start_is_exact else None,
        dir_ino=facts.dir_ino,
        state=state,
        terminal=not facts.running,
        kind=kind,
    )
    return Update(run, facts, now_ms())


def environment(facts: RunFacts, settings: Settings) -> Environment | None:
    """Where the run deployed to, when ``compass.deployments`` names it a deployment."""
    return settings.deployment_for(facts.source, facts.job, dict(facts.parameters or ()))


def update_to_json(update: Update) -> dict[str, Any]:
    """The update as the store keeps it: what every sink renders its request body from."""
    return {"run": asdict(update.run), "facts": asdict(update.facts), "at_ms": update.at_ms}


def update_from_json(data: dict[str, Any]) -> Update:
    facts = dict(data["facts"])
    facts["causes"] = tuple(facts["causes"])
    if facts["parameters"] is not None:
        facts["parameters"] = tuple((str(k), str(v)) for k, v in facts["parameters"])
    if facts.get("head") is not None:  # an update queued before heads were read has none
        facts["head"] = BranchHead(**facts["head"])
    facts["commits"] = tuple(Commit(**c) for c in facts.get("commits") or ())  # none before Jira
    return Update(RunRow(**data["run"]), RunFacts(**facts), int(data["at_ms"]))
