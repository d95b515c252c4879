"""What ``buildtail explain`` says per sink: whether a run's final update was accepted by one sink
(``delivery_reasons``, Compass's and Jira's alike), and for Jira whether the run goes there at all.

Jira stores a build or a deployment only against issues, so the first question for Jira is the
run's issue keys: none (nothing is sent), more than Jira's 100 per entity (the rest were cut),
keys of projects outside ``jira.project_keys`` (left out: ``UTF-8``, ``SHA-256``). Then whether
builds or deployments are sent to Jira at all (``jira.builds``, ``jira.deployments``). What shows
it in Jira: builds in the development panel of each issue named, deployments in the deployments
view and release tracking.
"""

from __future__ import annotations

from typing import Any

from daemon.config import Settings
from daemon.events import RunFacts
from daemon.sinks.jira.keys import IssueKeys, issue_keys_for, with_carried
from daemon.sinks.jira.wants import NAME, carried_for, kept_keys, queued_carried, why_not_queued
from daemon.store import Store

__all__ = ["JIRA_VIEWS", "delivery_reasons", "jira_metrics", "jira_of", "jira_report"]

JIRA_VIEWS = {
    "build": ("Jira: builds in the development panel of each issue",),
    "deployment": ("Jira: the deployments view and release tracking",),
}


def _jira_keys(settings: Settings, facts: RunFacts, carried: tuple[str, ...]) -> IssueKeys | None:
    """The run's issue keys as the Jira sink finds them: its own evidence, and for a deployment the
    keys it carries from the earlier ones that did not succeed."""
    if settings.jira is None:
        return None
    return with_carried(facts, settings.jira, carried) if carried else issue_keys_for(facts, settings.jira)


def delivery_reasons(run: dict[str, Any], sink: str) -> list[str]:
    """Why ``sink`` has not accepted the run's final update, from what the state database holds;
    empty when it has, or when the run has no final update recorded yet."""
    events = run["events"]
    sent = [
        a for a in events["answers"] if a["sink"] == sink and a["outcome"] == "accepted" and a["terminal"]
    ]
    # acks: what each sink accepted, also of runs delivered before answers were recorded (schema 5)
    acked = any(r["terminal"] and r["accepted"].get(sink) == r["state"] for r in run["recorded"])
    if not any(r["terminal"] for r in run["recorded"]) or sent or acked:
        return []
    final = [q for q in events["queued"] if q["sink"] == sink and q["state"] != "IN_PROGRESS"]
    dead = [d for d in events["dead_letters"] if d["sink"] == sink]
    if final:
        q = final[0]
        why = f"delivery paused: {q['paused']}" if q["paused"] else f"last error: {q['last_error']}"
        return [f"not yet accepted: the final event is queued ({why})"]
    if dead:
        return [f"not accepted: dead letter (HTTP {dead[-1]['status']}): {dead[-1]['error']}"]
    return ["not accepted: no acceptance of the final event is recorded"]


def _keys_json(keys: IssueKeys | None) -> dict[str, Any] | None:
    if keys is None:
        return None
    return {
        "keys": list(keys.keys),
        "cut": list(keys.cut),
        "ignored": list(keys.ignored),
        "evidence": dict(keys.origins),
    }


def jira_of(settings: Settings, store: Store, run: dict[str, Any], facts: RunFacts | None) -> dict[str, Any]:
    """``jira_report`` with what the state database says of the run for Jira: whether the sink has
    it, the keys its updates are kept with, and the keys a deployment carries (those stored with its
    queued update, else those the sink would read now)."""
    ids = [r["pipeline_id"] for r in run["recorded"]]
    has_run = any(store.sink_has_run(NAME, pid) for pid in ids)
    kept = next((k for pid in ids if (k := kept_keys(store, pid))), ())
    carried = next((c for pid in ids if (c := queued_carried(store, pid)) is not None), None)
    if carried is None and facts is not None:
        carried = carried_for(settings, facts, run["kind"], store)
    return jira_report(settings, run, facts, kept=kept, carried=carried or (), has_run=has_run)


def jira_report(
    settings: Settings,
    run: dict[str, Any],
    facts: RunFacts | None,
    keys: IssueKeys | None = None,
    *,
    kept: tuple[str, ...] = (),
    carried: tuple[str, ...] = (),
    has_run: bool = False,
) -> dict[str, Any]:
    """Whether the run goes to Jira (``goes``: None while its keys are unknown and Jira has nothing
    of it) and, when not, why (``why_not``); ``notes`` say what was cut or left out without keeping
    it out. ``keys``: the run's issue keys (``_jira_keys``), None unknown; ``kept``: those its Jira
    updates go with, decided when it was first queued for Jira; ``has_run``: the state database says
    Jira has the run (queued or accepted). A run Jira has, or one whose update Jira accepted, keeps
    going whatever the settings say now, as ``jira_wants`` decides; any other is judged by the
    daemon's own ``why_not_queued``."""
    jira = settings.jira
    assert jira is not None
    if keys is None and facts is not None:
        keys = _jira_keys(settings, facts, carried)
    kind = run["kind"]
    found = _keys_json(keys)
    why_not: list[str] = []
    notes: list[str] = []
    if kept:
        notes.append(f"sent with the issue keys kept since it was first queued for Jira: {', '.join(kept)}")
    accepted = any(a["sink"] == "jira" and a["outcome"] == "accepted" for a in run["events"]["answers"])
    accepted = accepted or any(r["accepted"].get("jira") for r in run["recorded"])
    if not (has_run or accepted):  # Jira has nothing of it: the daemon's rules decide whether it goes
        if run["excluded"]:
            why_not.append(f"filtered: {run['excluded']}")
        if run["history"]:
            why_not.append(run["history"])
        reason = why_not_queued(jira, kind, keys)
        if reason is not None:
            why_not.append(reason)
    if found is None:
        notes.append("issue keys unknown: the run is not on disk to read them from")
    elif found["keys"] or has_run or accepted:
        if found["cut"]:
            notes.append(
                f"issue keys cut at Jira's 100 per {kind}: {', '.join(found['cut'])} left out "
                "(logged when sent)"
            )
        if found["ignored"]:
            notes.append(f"keys outside jira.project_keys left out: {', '.join(found['ignored'])}")
    if not why_not:
        why_not.extend(delivery_reasons(run, "jira"))
    goes: bool | None = not why_not
    if goes and found is None and not (accepted or has_run):
        goes = None  # nothing keeps it out that can be seen here, and nothing shows it went
    return {"goes": goes, "issue_keys": found, "why_not": why_not, "notes": notes}


def jira_metrics(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Jira's views of the run in the shape of the derived metrics' entries."""
    report = run["jira"]
    return [
        {"metric": view, "sink": "jira", "counts": report["goes"], "why_not": report["why_not"]}
        for view in JIRA_VIEWS.get(run["kind"], JIRA_VIEWS["build"])
    ]
