"""``buildtail explain JOB[#N]``: why a run shows in Compass, or why not; ``--summary``: what
Compass accepted for each component, to compare with the number Compass shows.

"The API said OK and nothing shows" has many causes that look alike from Compass's side: a run
kept out as history, a job with no component, a deployment to an unmapped environment, an event
still queued behind a pause, a dead letter. This command puts what is on disk now (read through the
sources' own code, never parsed again by hand) beside what the state database recorded (the run,
its queued events, the answers each one got, its dead letters) and says, per derived metric,
whether the run can count and why not. With a ``jira`` section it also says whether the run goes
to Jira and why not (``explain_jira``): its issue keys, and what Jira answered.

Read-only and offline: the database is opened with ``mode=ro`` (it works while the daemon runs and
never writes to it), and Compass is not called (``buildtail doctor`` checks Compass's side). The
text form is ``explain_render``'s.
"""

from __future__ import annotations

import difflib
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.config import Settings
from daemon.events import RunFacts, environment, result_state
from daemon.history import HistoryPolicy
from daemon.ops.explain_jira import delivery_reasons, jira_metrics, jira_of
from daemon.scope import exclusion
from daemon.sources.jenkins.source import JenkinsSource
from daemon.store import Store

__all__ = ["COUNTED_STATES", "DEFAULT_LIMIT", "FORMAT", "JobNotFound", "explain", "summary"]

FORMAT = 1
DEFAULT_LIMIT = 10
SUMMARY_DAYS = (7, 28)
# Compass's build success rate: only completed builds that succeeded or failed count (its
# documentation); which other states it counts as failures is not documented, so none is here.
COUNTED_STATES = ("SUCCESSFUL", "FAILED")
DOCTOR_HINT = (
    "Compass counts an event only if its event source has the right type (BUILD for builds, "
    "DEPLOYMENT for deployments) and is attached to the component, as `buildtail doctor` checks"
)
_DAY_MS = 86_400_000


class JobNotFound(Exception):
    """No job of that name in the state database or on disk; ``near`` lists similar names."""

    def __init__(self, job: str, near: list[str], looked: list[str], ambiguous: bool = False) -> None:
        self.job, self.near, self.looked, self.ambiguous = job, near, looked, ambiguous
        what = "is ambiguous" if ambiguous else "is not a job buildtail knows"
        super().__init__(f"{job!r} {what}" + (f"; did you mean: {', '.join(near)}?" if near else ""))


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- what is on disk --------------------------------------------------------------------------


@dataclass
class _Disk:
    """One Jenkins source's view of the job: where it looked, and its run directories by number
    (a legacy date-named one by its name), read only for the runs shown."""

    source: JenkinsSource | None
    looked: str
    dirs: dict[str, Path] = field(default_factory=dict)

    def read(self, number: str) -> tuple[str, RunFacts | None] | None:
        path = self.dirs.get(number)
        if path is None or self.source is None:
            return None
        observed = self.source.observe(path)
        return str(path), observed if isinstance(observed, RunFacts) else None


def _jenkins(settings: Settings) -> list[JenkinsSource]:
    changelog = settings.jira is not None  # the commits, where the Jira sink finds issue keys
    return [JenkinsSource(cfg, host=settings.host, changelog=changelog) for cfg in settings.jenkins_sources]


def _disk_jobs(sources: list[JenkinsSource]) -> dict[tuple[str, str], JenkinsSource]:
    out: dict[tuple[str, str], JenkinsSource] = {}
    for source in sources:
        for name in source.discover().by_name:
            out[(source.name, name)] = source
    return out


def _read_disk(source: JenkinsSource, job: str) -> _Disk:
    found = source.layout.by_name.get(job)
    if found is None:
        return _Disk(None, f"{source.home} (no job {job!r} there)")
    disk = _Disk(source, str(found.builds_dir))
    for entry in source.runs_in(found):
        disk.dirs.setdefault(entry.name, Path(entry.path))
    return disk


def _head_json(facts: RunFacts) -> dict[str, Any] | None:
    """What a multibranch branch job builds (branch, pull request or tag), as branch-api recorded it."""
    head = facts.head
    if head is None:
        return None
    return {
        "name": head.name,
        "kind": head.kind,
        "primary": head.primary,
        "pull_request": head.pr_id,
        "title": head.pr_title,
    }


def _facts_json(settings: Settings, path: str | None, facts: RunFacts | None) -> dict[str, Any] | None:
    if path is None:
        return None
    if facts is None:
        return {"path": path, "readable": False}
    env = environment(facts, settings)
    return {
        "path": path,
        "readable": True,
        "running": facts.running,
        "result": facts.result,
        "state": None if facts.running else result_state(facts, settings),
        "started": _iso(facts.start_ms),
        "finished": _iso(facts.end_ms),
        "parameters": dict(facts.parameters or ()),
        "branch": facts.branch,
        "head": _head_json(facts),
        "environment": None if env is None else {"category": env.category, "name": env.name},
    }


# --- what the state database says -------------------------------------------------------------


def _rows(store: Store, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """A query that an older schema (a daemon not yet upgraded) cannot answer gets no rows."""
    try:
        return store.read_rows(query, params)
    except sqlite3.OperationalError:
        return []


def _runs(store: Store, source: str | None, job: str) -> list[tuple[Any, ...]]:
    query = (
        "SELECT source, job, number, generation, pipeline_id, started_at_ms, state, terminal, kind,"
        " updated_ms FROM runs WHERE job = ?"
    )
    rows = store.read_rows(query, (job,))
    return [r for r in rows if source is None or r[0] == source]


def _events(store: Store, pipeline_id: str, paused_sinks: dict[str, str | None]) -> dict[str, Any]:
    queued = [
        {
            "sink": r[0],
            "kind": r[1] or "build",
            "state": r[2],
            "seq": r[3],
            "attempts": r[4],
            "next_attempt": _iso(r[5]) if r[5] else None,
            "last_error": r[6],
            "paused": paused_sinks.get(r[0]),
            "queued_at": _iso(r[7]),
        }
        for r in store.read_rows(
            "SELECT o.sink, u.kind, o.state, o.seq, o.attempts, o.next_attempt_ms, o.last_error, o.created_ms"
            " FROM outbox o LEFT JOIN updates u ON u.id = o.update_id WHERE o.pipeline_id = ? ORDER BY o.id",
            (pipeline_id,),
        )
    ]
    answers = [
        {
            "sink": r[0],
            "kind": r[1],
            "state": r[2],
            "seq": r[3],
            "terminal": bool(r[4]),
            "event_source_id": r[5],
            "component_id": r[6],
            "status": r[7],
            "body": r[8],
            "outcome": r[9],
            "at": _iso(r[10]),
            "repeats": r[11],
        }
        for r in _rows(
            store,
            "SELECT sink, kind, state, seq, terminal, event_source_id, component_id, status, body, outcome,"
            " at_ms, repeats FROM answers WHERE pipeline_id = ? ORDER BY id",
            (pipeline_id,),
        )
    ]
    dead = [
        {"sink": r[0], "seq": r[1], "status": r[2], "error": r[3], "failed_at": _iso(r[4])}
        for r in store.read_rows(
            "SELECT sink, seq, status, error, failed_ms FROM dead_letters WHERE pipeline_id = ? ORDER BY id",
            (pipeline_id,),
        )
    ]
    return {"queued": queued, "answers": answers, "dead_letters": dead}


# --- the verdict --------------------------------------------------------------------------------


def _metrics_of(kind: str) -> tuple[str, ...]:
    if kind == "deployment":
        return ("deployment frequency", "deployment time")
    return ("build success rate", "build time")


def _why_not(
    settings: Settings, run: dict[str, Any], facts: RunFacts | None, kind: str, job: str
) -> list[str]:
    """Every reason the run cannot count in its component's metrics now; empty when it counts."""
    reasons: list[str] = []
    if run["excluded"]:
        reasons.append(f"filtered: {run['excluded']}")
    if run["history"]:
        reasons.append(run["history"])
    if not run["recorded"] and not run["history"] and not run["excluded"]:
        reasons.append("never recorded: buildtail has not queued an event for this run")
    answers = run["events"]["answers"]
    sent = [a for a in answers if a["sink"] == "compass" and a["outcome"] == "accepted" and a["terminal"]]
    if sent and sent[-1]["component_id"] is None:  # what was sent counts, not today's configuration
        reasons.append(
            "no component mapped: its final event was accepted without a componentId (no "
            "compass.components rule matched the job when it was sent), so it feeds no component's metrics"
        )
    elif not sent and settings.component_for(job) is None:
        reasons.append(
            "no component mapped: no compass.components rule matches this job, so its events reach "
            "no component's metrics"
        )
    env = environment(facts, settings) if facts is not None else None
    if kind == "deployment" and env is not None and env.category == "UNMAPPED":
        reasons.append(
            f"deployment to an UNMAPPED environment ({env.name!r}): name it in the deployment rule's "
            "environments for it to count as production, staging, ..."
        )
    terminal_recorded = any(r["terminal"] for r in run["recorded"])
    if facts is not None and not facts.running and run["recorded"] and not terminal_recorded:
        reasons.append(
            "finished on disk, but buildtail has recorded only its start: the final event is not "
            "queued yet (is the daemon running?)"
        )
    elif (facts is not None and facts.running) or (run["recorded"] and not terminal_recorded):
        reasons.append("still in progress: only the final event (with completedAt) counts")
    return reasons + delivery_reasons(run, "compass")


def _run_report(
    settings: Settings,
    store: Store,
    source: str,
    job: str,
    number: str,
    disk: tuple[str, RunFacts | None] | None,
    paused: dict[str, str | None],
    policy: HistoryPolicy,
) -> dict[str, Any]:
    rows = [r for r in _runs(store, source, job) if str(r[2]) == number]
    facts = disk[1] if disk is not None else None
    recorded = [
        {
            "pipeline_id": r[4],
            "generation": r[3],
            "state": r[6],
            "terminal": bool(r[7]),
            "kind": r[8],
            "started": _iso(r[5]),
            "updated": _iso(r[9]),
            "accepted": {
                str(a[0]): a[1]
                for a in store.read_rows("SELECT sink, state FROM acks WHERE pipeline_id = ?", (r[4],))
            },
        }
        for r in sorted(rows, key=lambda r: -int(r[3]))
    ]
    events: dict[str, Any] = {"queued": [], "answers": [], "dead_letters": []}
    for rec in recorded:
        for key, values in _events(store, rec["pipeline_id"], paused).items():
            events[key].extend(values)
    history = None
    if not recorded and facts is not None and not facts.running:
        if policy.cutoff_ms(source) is None:
            history = "buildtail has not looked at this source yet (no daemon has started with it)"
        else:  # the daemon's own rule, as the state database holds it; never seen to arrive
            history = policy.why_history(facts, None, arrived=False)
    kind = recorded[0]["kind"] if recorded else None
    if kind is None and facts is not None:
        kind = "deployment" if environment(facts, settings) is not None else "build"
    run: dict[str, Any] = {
        "source": source,
        "job": job,
        "number": number,
        "disk": _facts_json(settings, disk[0] if disk else None, facts),
        "recorded": recorded,
        "excluded": exclusion(settings, facts) if facts is not None else None,
        "history": history,
        "kind": kind or "build",
        "component_id": settings.component_for(job),
        "event_source_id": settings.event_source_id(job),
        "events": events,
    }
    reasons = _why_not(settings, run, facts, run["kind"], job)
    run["metrics"] = [
        {"metric": m, "sink": "compass", "counts": not reasons, "why_not": reasons}
        for m in _metrics_of(run["kind"])
    ]
    if settings.jira is not None:
        run["jira"] = jira_of(settings, store, run, facts)
        run["metrics"].extend(jira_metrics(run))
    run["hint"] = DOCTOR_HINT
    return run


def _resolve(job: str, known: set[tuple[str, str]], looked: list[str]) -> list[tuple[str, str]]:
    """(source, job) pairs the argument names: the full name, else a unique ``/``-suffix."""
    exact = sorted(k for k in known if k[1] == job)
    if exact:
        return exact
    suffix = sorted(k for k in known if k[1].endswith("/" + job))
    names = sorted({k[1] for k in suffix})
    if len(names) == 1:
        return suffix
    if len(names) > 1:
        raise JobNotFound(job, names, looked, ambiguous=True)
    near = difflib.get_close_matches(job, sorted({k[1] for k in known}), n=5, cutoff=0.5)
    raise JobNotFound(job, near, looked)


def _split(target: str) -> tuple[str, str | None]:
    """``JOB#N`` -> (JOB, "N"); ``JOB`` -> (JOB, None). A Jenkins job name has no ``#``."""
    job, sep, number = target.rpartition("#")
    if sep and number and number.replace(".", "", 1).isdigit():
        return job, number
    return target, None


def explain(settings: Settings, target: str, *, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The report on ``target`` (``JOB`` or ``JOB#N``), newest run first, at most ``limit`` runs.
    Raises ``JobNotFound`` when no job of that name is known."""
    job_arg, number = _split(target)
    sources = _jenkins(settings)
    on_disk = _disk_jobs(sources)
    store = Store(settings.state_dir, readonly=True)
    try:
        known = {(str(r[0]), str(r[1])) for r in store.read_rows("SELECT DISTINCT source, job FROM runs")}
        looked = [f"{s.name}: {s.home}" for s in sources]
        pairs = _resolve(job_arg, known | set(on_disk), looked)
        paused: dict[str, str | None] = {
            str(r[0]): store.delivery_state(str(r[0]))[0]
            for r in store.read_rows("SELECT DISTINCT sink FROM outbox")
        }
        candidates: list[tuple[str, str, str, _Disk | None]] = []
        searched: list[str] = []
        for source, job in pairs:
            disk = _read_disk(on_disk[(source, job)], job) if (source, job) in on_disk else None
            searched.append(disk.looked if disk else f"{source}: the state database only")
            numbers = {str(r[2]) for r in _runs(store, source, job)} | set(disk.dirs if disk else ())
            if number is not None:
                numbers = {n for n in numbers if n == number.split(".", 1)[0]}
            candidates.extend((n, source, job, disk) for n in numbers)
        candidates.sort(key=lambda c: _newest_first(c[0]))
        policy = HistoryPolicy.stored(store, {source for source, _ in pairs})
        runs = [  # only the runs shown are read from disk: a job may have thousands
            _run_report(settings, store, source, job, n, disk.read(n) if disk else None, paused, policy)
            for n, source, job, disk in candidates[:limit]
        ]
        return {
            "format": FORMAT,
            "target": target,
            "jobs": sorted({job for _, job in pairs}),
            "looked_in": searched,
            "runs": runs,
            "more": max(0, len(candidates) - limit),
            "not_found": None
            if runs
            else f"no run {target} in the state database, nor under {', '.join(searched) or 'any source'}",
        }
    finally:
        store.close()


def _newest_first(number: str) -> tuple[int, str]:
    """Build numbers descending; another CI's run ids and legacy directory names after them."""
    head = number.split(".", 1)[0]
    return (-int(head) if head.isdigit() and len(head) < 19 else 0, number)


def summary(settings: Settings, *, now_ms: int) -> dict[str, Any]:
    """Per component, the final events Compass accepted in the last 7 and 28 days, by kind and
    state, with the build success rate as Compass computes it (``COUNTED_STATES``)."""
    store = Store(settings.state_dir, readonly=True)
    try:
        since = now_ms - max(SUMMARY_DAYS) * _DAY_MS
        rows = _rows(
            store,
            "SELECT component_id, kind, state, at_ms FROM answers"
            " WHERE outcome = 'accepted' AND terminal = 1 AND at_ms >= ?",
            (since,),
        )
    finally:
        store.close()
    components: dict[str, dict[str, Any]] = {}
    for component, kind, state, at_ms in rows:
        entry = components.setdefault(component or "", {})
        for days in SUMMARY_DAYS:
            if at_ms >= now_ms - days * _DAY_MS:
                window = entry.setdefault(f"{days}d", {"build": {}, "deployment": {}})
                by_state = window.setdefault(kind, {})
                by_state[state] = by_state.get(state, 0) + 1
    out = []
    for component in sorted(components, key=lambda c: (not c, c)):  # no component last
        windows = components[component]
        for days in SUMMARY_DAYS:
            window = windows.setdefault(f"{days}d", {"build": {}, "deployment": {}})
            builds = window["build"]
            counted = sum(builds.get(s, 0) for s in COUNTED_STATES)
            window["build_success_rate"] = None if not counted else builds.get("SUCCESSFUL", 0) / counted
        out.append({"component_id": component or None, "windows": windows})
    return {"format": FORMAT, "at": _iso(now_ms), "counted_states": list(COUNTED_STATES), "components": out}
