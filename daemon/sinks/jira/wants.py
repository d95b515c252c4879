"""Which updates Jira gets, and what a deployment carries from the failed ones before it.

Jira stores a build or a deployment only against issues, so an update is queued for Jira only when
its kind is enabled (``jira.builds``, ``jira.deployments``) and the run names an issue key
(``keys.issue_keys_for``, plus a deployment's carried keys). A run already queued for Jira (or
delivered to it) keeps getting its later updates, whatever they name and whatever ``jira.builds`` or
``jira.deployments`` say since a reload: Jira must learn how it ended.

A deployment's carried keys are kept per job and environment in the sink's facts
(``carried:<source>/<job>@<environment>``): set when a deployment there ends without success,
cleared when one succeeds. They are read when a deployment's update is recorded and go with that
update (``CARRIED``), so the Jira item sent renders the same keys whenever it is sent.

A run's issue keys are decided when it is first queued for Jira and kept (``kept:<pipeline id>``
in the sink's facts, until its final update is queued): each later update goes with them (``KEYS``
in its stored JSON), plus any its evidence names since, never fewer. Jira has the run under those
keys; a reload that changes ``jira.project_keys``, or a final record that names no branch, must not
turn its final update into an item without keys.
"""

from __future__ import annotations

import json
from typing import Any

from daemon.config import JiraSettings, Settings
from daemon.events import RunFacts, Update, environment
from daemon.sinks.jira.keys import IssueKeys, carry_forward, issue_keys_for, with_carried
from daemon.store import Store
from parsers.issue_keys import MAX_ISSUE_KEYS

__all__ = [
    "CARRIED",
    "KEYS",
    "NAME",
    "annotate",
    "carried_for",
    "carried_keys",
    "jira_wants",
    "keep_keys",
    "kept_keys",
    "note_deployment",
    "queued_carried",
    "run_keys",
    "why_not_queued",
]

NAME = "jira"
CARRIED = "jira_carried_keys"  # the update's stored JSON: the keys a deployment carries
KEYS = "jira_issue_keys"  # the update's stored JSON: the keys its Jira item goes to


def _scope(facts: RunFacts, kind: str, settings: Settings) -> str | None:
    env = environment(facts, settings) if kind == "deployment" else None
    if env is None:
        return None
    return f"carried:{facts.source}/{facts.job}@{env.environment_id}"


def carried_keys(settings: Settings, update: Update, store: Store) -> tuple[str, ...]:
    """The keys a deployment carries from the earlier ones to its environment that did not succeed."""
    return carried_for(settings, update.facts, update.run.kind, store)


def carried_for(settings: Settings, facts: RunFacts, kind: str, store: Store) -> tuple[str, ...]:
    """``carried_keys`` of a run's facts and kind (``explain``, before any update of it is made)."""
    if settings.jira is None or not settings.jira.deployments:
        return ()
    scope = _scope(facts, kind, settings)
    if scope is None:
        return ()
    value = store.sink_fact(NAME, scope)
    return tuple(str(k) for k in value) if isinstance(value, list) else ()


def note_deployment(settings: Settings, update: Update, store: Store, carried: tuple[str, ...]) -> None:
    """A deployment ended (its final update was recorded): what the next one there carries."""
    jira = settings.jira
    scope = _scope(update.facts, update.run.kind, settings)
    if jira is None or scope is None or not update.run.terminal or not jira.deployments:
        return
    own = issue_keys_for(update.facts, jira).keys
    after = carry_forward(carried, own, succeeded=update.run.state == "SUCCESSFUL")
    if after or carried:
        store.set_sink_fact(NAME, scope, list(after))


def jira_wants(settings: Settings, update: Update, store: Store, carried: tuple[str, ...]) -> bool:
    jira = settings.jira
    if jira is None:
        return False
    if store.sink_has_run(NAME, update.run.pipeline_id):
        return True  # first: Jira learns how a run it has ended, whatever the settings say now
    keys = with_carried(update.facts, jira, carried) if carried else issue_keys_for(update.facts, jira)
    return why_not_queued(jira, update.run.kind, keys) is None


def why_not_queued(jira: JiraSettings, kind: str, keys: IssueKeys | None) -> str | None:
    """Why an update of a run Jira does not have yet is not queued for Jira, or None when it is: its
    kind is not sent, or it names no issue key (``keys``: its own and carried; None when they cannot
    be known, as for ``explain`` of a run no longer on disk: then only the settings are judged).
    The one decision, for ``jira_wants`` and for ``buildtail explain``."""
    if not (jira.deployments if kind == "deployment" else jira.builds):
        return f"jira.{kind}s is false: {kind}s are not sent to Jira"
    if keys is not None and not keys.keys:
        ignored = (
            f" (keys outside jira.project_keys left out: {', '.join(keys.ignored)})" if keys.ignored else ""
        )
        return (
            "no issue keys: Jira stores nothing without one; none in the branch name, the commit "
            "messages or the parameters named in jira.issue_key_parameters" + ignored
        )
    return None


def _kept(pipeline_id: str) -> str:
    return f"kept:{pipeline_id}"


def run_keys(settings: Settings, update: Update, store: Store, carried: tuple[str, ...]) -> tuple[str, ...]:
    """The keys the update's Jira item goes to: those the run was first sent with, then any its
    evidence names now (``with_carried``: the one decision on a run's own evidence), at most the cap."""
    if settings.jira is None:
        return ()
    value = store.sink_fact(NAME, _kept(update.run.pipeline_id))
    kept = [str(k) for k in value] if isinstance(value, list) else []
    own = with_carried(update.facts, settings.jira, carried).keys
    return tuple(dict.fromkeys([*kept, *own]))[:MAX_ISSUE_KEYS]


def _queued_data(store: Store, pipeline_id: str) -> dict[str, Any] | None:
    """The stored JSON of the run's last update queued for Jira; None when none is queued."""
    rows = store.read_rows(
        "SELECT u.data FROM updates u JOIN outbox o ON o.update_id = u.id"
        " WHERE o.sink = ? AND o.pipeline_id = ? ORDER BY o.seq DESC LIMIT 1",
        (NAME, pipeline_id),
    )
    data = json.loads(rows[0][0]) if rows else None
    return data if isinstance(data, dict) else None


def kept_keys(store: Store, pipeline_id: str) -> tuple[str, ...]:
    """The keys the run's Jira updates go with while it has one queued or in progress (``explain``)."""
    value = store.sink_fact(NAME, _kept(pipeline_id))
    if isinstance(value, list):
        return tuple(str(k) for k in value)
    data = _queued_data(store, pipeline_id) or {}
    return tuple(str(k) for k in data.get(KEYS) or ())


def queued_carried(store: Store, pipeline_id: str) -> tuple[str, ...] | None:
    """The keys the run's update queued for Jira carries, as stored with it; None when none is queued
    (``explain``: then they are the ones ``carried_for`` reads now)."""
    data = _queued_data(store, pipeline_id)
    return None if data is None else tuple(str(k) for k in data.get(CARRIED) or ())


def keep_keys(store: Store, update: Update, keys: tuple[str, ...]) -> None:
    """The run's update was queued for Jira with ``keys``: kept for its later updates, until the final."""
    if update.run.terminal:
        store.forget_sink_fact(NAME, _kept(update.run.pipeline_id))
    elif keys:
        store.set_sink_fact(NAME, _kept(update.run.pipeline_id), list(keys))


def annotate(data: dict[str, Any], carried: tuple[str, ...], keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The update's stored JSON with the keys it carries and those its Jira item goes to."""
    if carried:
        data[CARRIED] = list(carried)
    if keys:
        data[KEYS] = list(keys)
    return data
