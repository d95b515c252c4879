"""Compass's derived metrics: which built-in metric each kind of event feeds, and connecting them.

Compass computes Build Success Rate, Build Time, Deployment Frequency and Deployment Time from the
events a component receives, but only for a metric connected to the component (a metric source
created with ``derived: true``): until then the events fill the activity feed and no metric moves.
Compass derives them from the component's events, not from one event source, so what is connected is
decided per component and metric definition, whoever connected it (the UI, another build server):
a component has at most one metric source per definition, which is what Compass's UI offers and
what we assume its API enforces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from daemon.sinks.compass.graphql import (
    CompassGraphQL,
    GraphQLError,
    Operation,
    brief,
    component_of,
    graphql_document,
    mutation_payload,
    query_error,
)

__all__ = [
    "DERIVED_METRICS",
    "PAGE_SIZE",
    "MetricDefinition",
    "MetricSource",
    "check_metrics",
    "component_metric_sources",
    "connect_metrics",
    "create_metric_source_operation",
    "derived_for",
    "external_metric_source_id",
    "metric_sources_operation",
    "read_create_metric_source",
    "read_metric_sources",
]

BUILTIN = "ari:cloud:compass::metric-definition/builtin/"


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """A built-in metric definition that Compass derives from events of ``event_type``."""

    id: str
    name: str
    event_type: str

    @property
    def short(self) -> str:
        return self.id.rsplit("/", 1)[-1]


# The built-in definitions Compass derives from builds and deployments, the headline one of each
# kind first (doctor names them in this order).
DERIVED_METRICS = (
    MetricDefinition(BUILTIN + "build-success-rate", "Build Success Rate", "BUILD"),
    MetricDefinition(BUILTIN + "build-time-avg-last-10", "Build Time", "BUILD"),
    MetricDefinition(BUILTIN + "weekly-deployment-frequency-28d", "Deployment Frequency", "DEPLOYMENT"),
    MetricDefinition(BUILTIN + "deployment-time-avg-last-25", "Deployment Time", "DEPLOYMENT"),
)

PAGE_SIZE = 10  # Compass's default page of metricSources; the one size its own examples use
MAX_PAGES = 100  # a cursor that never ends is a fault, not a component with 1,000 metrics


def derived_for(event_types: Iterable[str]) -> list[MetricDefinition]:
    """The derived metrics that events of these types feed, in ``DERIVED_METRICS`` order."""
    kinds = set(event_types)
    return [d for d in DERIVED_METRICS if d.event_type in kinds]


def external_metric_source_id(component_id: str, definition: MetricDefinition) -> str:
    """``buildtail:<definition>:<component>``: the same for every build server, run and job list.

    Compass derives the metric from all of the component's events, so the component and the
    definition say what it measures; an event source (a host, or a job with ``{job}``) does not.
    Both parts keep the id unique whatever scope Compass checks ``externalMetricSourceId`` in."""
    return f"buildtail:{definition.short}:{component_id}"


@dataclass(frozen=True, slots=True)
class MetricSource:
    id: str
    definition_id: str | None  # None when Compass did not say (the definition was not readable)
    external_id: str | None


_METRIC_SOURCES = graphql_document(
    """query buildtailMetricSources($id: ID!, $first: Int, $after: String) {
  compass {
    component(id: $id) {
      __typename
      ... on CompassComponent {
        id
        metricSources(query: {first: $first, after: $after}) {
          __typename
          ... on CompassComponentMetricSourcesConnection {
            nodes { id externalMetricSourceId metricDefinition { id name } }
            pageInfo { hasNextPage endCursor }
          }
          ... on QueryError { message extensions { statusCode errorType } }
        }
      }
      ... on QueryError { message extensions { statusCode errorType } }
    }
  }
}"""
)

_CREATE_METRIC_SOURCE = graphql_document(
    """mutation buildtailCreateMetricSource($input: CompassCreateMetricSourceInput!) {
  compass {
    createMetricSource(input: $input) {
      success
      createdMetricSource { id externalMetricSourceId metricDefinition { id name } }
      errors { message extensions { statusCode errorType } }
    }
  }
}"""
)


def metric_sources_operation(component_id: str, after: str | None = None) -> Operation:
    return Operation(_METRIC_SOURCES, {"id": component_id, "first": PAGE_SIZE, "after": after})


def create_metric_source_operation(component_id: str, definition: MetricDefinition) -> Operation:
    return Operation(
        _CREATE_METRIC_SOURCE,
        {
            "input": {
                "componentId": component_id,
                "metricDefinitionId": definition.id,
                "externalMetricSourceId": external_metric_source_id(component_id, definition),
                "derived": True,
            }
        },
    )


# --- reading answers ------------------------------------------------------------------------------


def _metric_source(value: object, where: str) -> MetricSource:
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        definition = value.get("metricDefinition")
        definition_id = definition.get("id") if isinstance(definition, dict) else None
        external = value.get("externalMetricSourceId")
        if (definition is None or isinstance(definition, dict)) and (
            external is None or isinstance(external, str)
        ):
            return MetricSource(
                value["id"],
                definition_id if isinstance(definition_id, str) else None,
                external,
            )
    raise GraphQLError(f"{where}: not a metric source: {brief(value)}")


def read_metric_sources(answer: object, component_id: str) -> tuple[list[MetricSource], str | None]:
    """One page of a component's metric sources, and the cursor of the next page (None: the last).

    ``metricSources`` or its ``nodes`` null is an empty page, as a null ``eventSources`` is no
    sources; a QueryError in its place (a token without read:metric:compass) is an error."""
    where = f"component {component_id}: metricSources"
    value = component_of(answer, component_id).get("metricSources")
    if value is None:
        return [], None
    kind = value.get("__typename") if isinstance(value, dict) else None
    if isinstance(value, dict) and kind == "QueryError":
        message, status = query_error(value)
        raise GraphQLError(f"{where}: {message}", status)
    if not isinstance(value, dict) or kind != "CompassComponentMetricSourcesConnection":
        raise GraphQLError(f"{where}: Compass answered {brief(value)}")
    nodes = value.get("nodes")
    if nodes is not None and not isinstance(nodes, list):
        raise GraphQLError(f"{where}: nodes is {brief(nodes)}")
    found = [_metric_source(n, where) for n in nodes or []]
    page = value.get("pageInfo")
    more = page.get("hasNextPage") if isinstance(page, dict) else None
    if not isinstance(more, bool):
        raise GraphQLError(f"{where}: no pageInfo.hasNextPage: {brief(page)}")
    if not more:
        return found, None
    cursor = page.get("endCursor") if isinstance(page, dict) else None
    if not isinstance(cursor, str) or not cursor:
        raise GraphQLError(f"{where}: Compass says there are more but gives no endCursor: {brief(page)}")
    return found, cursor


def read_create_metric_source(answer: object, what: str) -> MetricSource | None:
    """The new metric source; None when Compass reported success without returning it (nothing
    here needs its id, and the next listing shows it)."""
    payload = mutation_payload(answer, "createMetricSource", what)
    created = payload.get("createdMetricSource")
    return None if created is None else _metric_source(created, what)


# --- calls ----------------------------------------------------------------------------------------


async def component_metric_sources(client: CompassGraphQL, component_id: str) -> list[MetricSource]:
    """Every metric source of the component, page after page."""
    found: list[MetricSource] = []
    after: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        answer = await client.call(metric_sources_operation(component_id, after))
        page, after = read_metric_sources(answer, component_id)
        found.extend(page)
        if after is None:
            return found
        if after in seen:
            raise GraphQLError(f"component {component_id}: metricSources gave the cursor {after!r} twice")
        seen.add(after)
    raise GraphQLError(f"component {component_id}: more than {MAX_PAGES} pages of metric sources")


async def _missing(
    client: CompassGraphQL, component_id: str, event_types: Iterable[str]
) -> tuple[list[MetricDefinition], list[MetricDefinition]]:
    """(connected, missing) among the derived metrics the component's events feed."""
    wanted = derived_for(event_types)
    if not wanted:
        return [], []
    have = {m.definition_id for m in await component_metric_sources(client, component_id)}
    return [d for d in wanted if d.id in have], [d for d in wanted if d.id not in have]


async def connect_metrics(client: CompassGraphQL, receiving: Mapping[str, Iterable[str]]) -> list[str]:
    """Connects to each component (-> the event types it receives) the derived metrics those events
    feed and it lacks; one line per metric. Reads first, so a second run sends no mutation."""
    lines: list[str] = []
    for component_id, event_types in receiving.items():
        connected, missing = await _missing(client, component_id, event_types)
        lines.extend(f"metric {d.name} is connected to {component_id}" for d in connected)
        for definition in missing:
            what = f"connecting metric {definition.name} to {component_id}"
            answer = await client.call(create_metric_source_operation(component_id, definition))
            read_create_metric_source(answer, what)
            lines.append(
                f"connected metric {definition.name} to {component_id} "
                f"(derived from its {definition.event_type.lower()} events)"
            )
    return lines


async def check_metrics(
    client: CompassGraphQL, receiving: Mapping[str, Iterable[str]]
) -> list[tuple[bool, str]]:
    """Read-only: (healthy, text) per component and kind of event it receives."""
    out: list[tuple[bool, str]] = []
    for component_id, event_types in receiving.items():
        connected, missing = await _missing(client, component_id, event_types)
        for kind in dict.fromkeys(d.event_type for d in [*connected, *missing]):
            lacking = [d.name for d in missing if d.event_type == kind]
            if not lacking:
                names = ", ".join(d.name for d in connected if d.event_type == kind)
                out.append(
                    (
                        True,
                        f"component {component_id} has the metrics its {kind.lower()} events feed ({names})",
                    )
                )
                continue
            out.append(
                (
                    False,
                    f"component {component_id} receives {kind.lower()} events but has no "
                    f"{' or '.join(lacking)} metric: Compass computes "
                    f"{'it' if len(lacking) == 1 else 'them'} from those events only once connected. "
                    "Fix: run `buildtail compass setup --config PATH`",
                )
            )
    return out
