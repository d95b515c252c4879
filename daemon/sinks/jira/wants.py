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
"""

from __future__ import annotations

from typing import Any

from daemon.config import Settings
from daemon.events import Update, environment
from daemon.sinks.jira.keys import carry_forward, issue_keys_for, with_carried
from daemon.store import Store

__all__ = ["CARRIED", "NAME", "carried_keys", "jira_wants", "note_deployment"]

NAME = "jira"
CARRIED = "jira_carried_keys"  # the update's stored JSON: the keys a deployment carries


def _scope(update: Update, settings: Settings) -> str | None:
    env = environment(update.facts, settings) if update.run.kind == "deployment" else None
    if env is None:
        return None
    return f"carried:{update.facts.source}/{update.facts.job}@{env.environment_id}"


def carried_keys(settings: Settings, update: Update, store: Store) -> tuple[str, ...]:
    """The keys a deployment carries from the earlier ones to its environment that did not succeed."""
    if settings.jira is None or not settings.jira.deployments:
        return ()
    scope = _scope(update, settings)
    if scope is None:
        return ()
    value = store.sink_fact(NAME, scope)
    return tuple(str(k) for k in value) if isinstance(value, list) else ()


def note_deployment(settings: Settings, update: Update, store: Store, carried: tuple[str, ...]) -> None:
    """A deployment ended (its final update was recorded): what the next one there carries."""
    jira = settings.jira
    scope = _scope(update, settings)
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
    if not (jira.deployments if update.run.kind == "deployment" else jira.builds):
        return False
    keys = with_carried(update.facts, jira, carried) if carried else issue_keys_for(update.facts, jira)
    return bool(keys.keys)


def annotate(data: dict[str, Any], carried: tuple[str, ...]) -> dict[str, Any]:
    """The update's stored JSON with the keys it carries (none: unchanged)."""
    if carried:
        data[CARRIED] = list(carried)
    return data
