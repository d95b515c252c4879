"""The in-memory registry of event sources, components and metric sources, behind one set of rules.

Tests seed it directly (``add_event_source``, ``add_component`` ...) and buildtail changes it through
GraphQL mutations; both go through the same ``_create_*`` / ``_attach_source`` methods here, so a
conflict Compass refuses is refused the same way whichever side asks.
"""

from __future__ import annotations

from typing import Any

from tools.fake_compass._state import _State

EVENT_TYPES = (
    "BUILD",
    "DEPLOYMENT",
    "FLAG",
    "ALERT",
    "INCIDENT",
    "LIFECYCLE",
    "CUSTOM",
    "PUSH",
    "PULL_REQUEST",
    "VULNERABILITY",
)
BUILTIN_METRICS = "ari:cloud:compass::metric-definition/builtin/"
# The built-in definitions Compass derives from events: id -> (name, the event type they come from).
DERIVED_DEFINITIONS = {
    BUILTIN_METRICS + "build-success-rate": ("Build success rate", "BUILD"),
    BUILTIN_METRICS + "build-time-avg-last-10": ("Build time", "BUILD"),
    BUILTIN_METRICS + "weekly-deployment-frequency-28d": ("Deployment frequency", "DEPLOYMENT"),
    BUILTIN_METRICS + "deployment-time-avg-last-25": ("Deployment time", "DEPLOYMENT"),
}


def _mutation_error(message: str, status: int, kind: str) -> dict[str, Any]:
    """A ``MutationError``: its ``extensions`` is one object."""
    return {"message": message, "extensions": {"statusCode": status, "errorType": kind}}


class _Registry:
    """The registry part of ``FakeCompass``: the methods that read and change its event sources,
    components and metric sources (the ``_``-prefixed ones are called with the lock held)."""

    cloud_id: str
    _state: _State

    def add_component(self, component_id: str, name: str | None = None) -> str:
        """Registers a component (no event sources attached); returns its id."""
        with self._state.lock:
            if component_id in self._state.components:
                raise ValueError(f"component {component_id!r} exists already")
            self._state.components[component_id] = {"name": name or component_id, "sources": []}
        return component_id

    def add_event_source(self, external_id: str, event_type: str = "BUILD") -> str:
        """Registers an event source (as if created earlier, e.g. by copying the CUSTOM example)."""
        with self._state.lock:
            source, problem = self._create_source(external_id, event_type)
        if source is None:
            raise ValueError(problem["message"])
        return source["id"]

    def attach(self, component_id: str, source_id: str) -> None:
        """Attaches an event source to a component, as the attachEventSource mutation would."""
        with self._state.lock:
            problem = self._attach_source(component_id, source_id)
        if problem is not None:
            raise ValueError(problem["message"])

    def event_sources(self) -> list[dict[str, str]]:
        """Every event source: ``{"id", "externalEventSourceId", "eventType"}``, in creation order."""
        with self._state.lock:
            return [dict(s) for s in self._state.sources.values()]

    def find_event_source(self, external_id: str, event_type: str = "BUILD") -> dict[str, str] | None:
        with self._state.lock:
            found = self._lookup_source(external_id, event_type)
            return None if found is None else dict(found)

    def components(self) -> dict[str, list[str]]:
        """Component id -> ids of the event sources attached to it."""
        with self._state.lock:
            return {cid: list(c["sources"]) for cid, c in self._state.components.items()}

    def add_metric_source(
        self,
        component_id: str,
        definition_id: str,
        external_id: str = "connected-in-the-ui",
        *,
        derived: bool = True,
    ) -> str:
        """Connects a metric to a component, as the UI or another integration would; returns its id."""
        with self._state.lock:
            source, problem = self._create_metric_source(component_id, definition_id, external_id, derived)
        if source is None:
            raise ValueError(problem["message"])
        return str(source["id"])

    def metric_sources(self, component_id: str) -> list[dict[str, Any]]:
        """The component's metric sources, in creation order: ``{"id", "componentId",
        "metricDefinitionId", "externalMetricSourceId", "derived"}``."""
        with self._state.lock:
            return [dict(m) for m in self._state.metric_sources.values() if m["componentId"] == component_id]

    def _create_metric_source(
        self, component_id: str, definition_id: str, external_id: object, derived: bool
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Called with the lock held: (the new metric source, {}) or (None, a mutation error).

        Compass derives only its built-in definitions from events, and a component has one metric
        source per definition: a second one is refused, as the metric already shows there."""
        if component_id not in self._state.components:
            return None, _mutation_error(f"component {component_id!r} not found", 404, "NOT_FOUND")
        if not isinstance(external_id, str) or not external_id:
            return None, _mutation_error("externalMetricSourceId must not be empty", 400, "BAD_REQUEST")
        if derived and definition_id not in DERIVED_DEFINITIONS:
            return None, _mutation_error(
                f"metric definition {definition_id!r} cannot be derived from events", 400, "BAD_REQUEST"
            )
        for other in self._state.metric_sources.values():
            if (other["componentId"], other["metricDefinitionId"]) == (component_id, definition_id):
                return None, _mutation_error(
                    f"component {component_id!r} already has a metric source for {definition_id!r}",
                    409,
                    "ALREADY_EXISTS",
                )
        number = self._state.next_metric
        self._state.next_metric += 1
        metric_id = f"ari:cloud:compass:{self.cloud_id}:metric-source/{number:08d}"
        source: dict[str, Any] = {
            "id": metric_id,
            "componentId": component_id,
            "metricDefinitionId": definition_id,
            "externalMetricSourceId": external_id,
            "derived": derived,
        }
        self._state.metric_sources[metric_id] = source
        return source, {}

    def _lookup_source(self, external_id: str, event_type: str) -> dict[str, str] | None:
        for source in self._state.sources.values():
            if source["externalEventSourceId"] == external_id and source["eventType"] == event_type:
                return source
        return None

    def _create_source(
        self, external_id: str, event_type: str
    ) -> tuple[dict[str, str] | None, dict[str, Any]]:
        """Called with the lock held: (the new source, {}) or (None, a mutation error)."""
        if not isinstance(external_id, str) or not external_id:
            return None, _mutation_error("externalEventSourceId must not be empty", 400, "BAD_REQUEST")
        if event_type not in EVENT_TYPES:
            return None, _mutation_error(f"unknown eventType {event_type!r}", 400, "BAD_REQUEST")
        if self._lookup_source(external_id, event_type) is not None:
            return None, _mutation_error(
                f"an event source {external_id!r} of type {event_type} already exists", 409, "ALREADY_EXISTS"
            )
        number = self._state.next_source
        self._state.next_source += 1
        source = {
            "id": f"ari:cloud:compass:{self.cloud_id}:event-source/{number:08d}",
            "externalEventSourceId": external_id,
            "eventType": event_type,
        }
        self._state.sources[source["id"]] = source
        return source, {}

    def _attach_source(self, component_id: str, source_id: str) -> dict[str, Any] | None:
        """Called with the lock held: None, or a mutation error."""
        component = self._state.components.get(component_id)
        if component is None:
            return _mutation_error(f"component {component_id!r} not found", 404, "NOT_FOUND")
        if source_id not in self._state.sources:
            return _mutation_error(f"event source {source_id!r} not found", 404, "NOT_FOUND")
        if source_id in component["sources"]:
            return _mutation_error(
                f"event source {source_id!r} is already attached to {component_id!r}", 409, "ALREADY_EXISTS"
            )
        component["sources"].append(source_id)
        return None
