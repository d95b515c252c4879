"""A local fake of Atlassian Compass' ``createCompassEvent`` REST endpoint, for tests.

``FakeCompass`` runs an aiohttp server on 127.0.0.1 (random port) in a background thread with its
own event loop, so it can be used from sync and async tests alike::

    with FakeCompass() as compass:
        config.base_url = compass.base_url          # daemon posts to base_url + "/compass/v1/events"
        ...
        compass.wait_for(lambda events: len(events) == 2)

Every request is checked the way the real gateway would: path and method, Basic auth, JSON content
type, the body against ``compass_schema.json`` (in this package) (and against the shared reference schema in
``../shared`` next to the checkout, when present), and the cloudId. Faults can be scripted per
request (``script(Fault(status=503), Fault(reset=True), ...)``). Like Compass, an event whose
updateSequenceNumber is not higher than the stored one for the same pipelineId is accepted (202)
but not stored (see ``stored`` and ``dropped``).

The same app also fakes what ``buildtail compass setup`` / ``buildtail doctor`` use:
``GET /_edge/tenant_info`` (no auth) and ``POST /gateway/api/graphql`` with an in-memory registry of
event sources (``add_event_source``, ``event_sources()``), components (``add_component``,
``attach``, ``components()``) and their metric sources (``add_metric_source``,
``metric_sources(component_id)``; ``createMetricSource`` refuses a second one for the same
component and metric definition with a 409 ``ALREADY_EXISTS`` error, and ``derived: true`` for a
definition Compass does not derive from events). When Atlassian's published schema sits next to the checkout
(``compass_graphql.py``), each GraphQL request is validated and executed against it, so a
document Compass would refuse is refused here too and answers have the schema's shapes by
construction (``QueryError.extensions`` a list, ``__typename`` only where asked for); without it, or
with ``graphql_schema=False``, the same resolvers answer by hand in the same shapes (the fields the
document selects, inline fragments by ``__typename``, nested fields with arguments called).
``fail_graphql(field, message)`` makes a field answer null beside a top-level error, as Compass does
for a missing permission. GraphQL requests are recorded in ``graphql_requests``, never in
``requests``, and scripted faults do not apply to them. With ``require_event_source=True`` an event
without ``componentId`` whose ``externalEventSourceId`` has no event source of type BUILD is answered
404 ``CREATE_EVENT_SOURCE_NOT_FOUND``, as in Compass's older flow (a CUSTOM source does not count).

This package is the one place tests and benchmarks import the fake from, so that they need not know
how it is divided: the state and records every part shares (``_state``), the body's contract check
(``_validation``), the registry (``_registry``), the GraphQL resolvers (``_resolvers``) and the answer
without the schema (``_by_hand``), the events and GraphQL endpoints (``_events_endpoint``,
``_graphql_endpoint``), and ``FakeCompass`` that combines them (``_server``).
"""

from __future__ import annotations

from tools.fake_compass._events_endpoint import EVENTS_PATH
from tools.fake_compass._graphql_endpoint import GRAPHQL_PATH
from tools.fake_compass._registry import BUILTIN_METRICS, DERIVED_DEFINITIONS, EVENT_TYPES
from tools.fake_compass._resolvers import GRAPHQL_FIELDS, METRIC_PAGE, NESTED_FIELDS
from tools.fake_compass._server import TENANT_INFO_PATH, FakeCompass
from tools.fake_compass._state import Fault, GraphQLRequest, RecordedRequest, SequenceRecord
from tools.fake_compass._validation import (
    DEPLOYMENT_SCHEMA_PATH,
    SCHEMA_PATH,
    SHARED_DEPLOYMENT_SCHEMA_PATH,
    SHARED_REFERENCE,
    SHARED_SCHEMA_PATH,
    Validators,
    event_kind,
    event_of,
    properties_of,
    validate_body,
)

__all__ = [
    "BUILTIN_METRICS",
    "DEPLOYMENT_SCHEMA_PATH",
    "DERIVED_DEFINITIONS",
    "EVENTS_PATH",
    "EVENT_TYPES",
    "GRAPHQL_FIELDS",
    "GRAPHQL_PATH",
    "METRIC_PAGE",
    "NESTED_FIELDS",
    "SCHEMA_PATH",
    "SHARED_DEPLOYMENT_SCHEMA_PATH",
    "SHARED_REFERENCE",
    "SHARED_SCHEMA_PATH",
    "TENANT_INFO_PATH",
    "FakeCompass",
    "Fault",
    "GraphQLRequest",
    "RecordedRequest",
    "SequenceRecord",
    "Validators",
    "event_kind",
    "event_of",
    "properties_of",
    "validate_body",
]
