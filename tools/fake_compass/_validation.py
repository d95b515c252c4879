"""The contract check of an event body, kept apart so tests can run it without starting a server.

``validate_body`` lets a test check a body the way the fake server does; the server and its deferred
check use the same validators, so the two can never disagree about which body is valid.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]

# this package holds the project's schemas; the shared reference sits next to the checkout
SCHEMA_PATH = Path(__file__).resolve().parent / "compass_schema.json"
DEPLOYMENT_SCHEMA_PATH = Path(__file__).resolve().parent / "compass_deployment_schema.json"
SHARED_REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
SHARED_SCHEMA_PATH = SHARED_REFERENCE / "compass-build-event.schema.json"
SHARED_DEPLOYMENT_SCHEMA_PATH = SHARED_REFERENCE / "compass-deployment-event.schema.json"
# the schemas each kind of event is checked against: the project's own, and the reference's when present
_SCHEMAS = {
    "build": (("project schema", SCHEMA_PATH), ("reference schema", SHARED_SCHEMA_PATH)),
    "deployment": (
        ("project deployment schema", DEPLOYMENT_SCHEMA_PATH),
        ("reference deployment schema", SHARED_DEPLOYMENT_SCHEMA_PATH),
    ),
}
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T")

Validators = dict[str, list[tuple[str, Any]]]


def _load_validators() -> Validators:
    """Per kind of event (``build``, ``deployment``), the schemas its body is checked against."""
    validators: Validators = {}
    for kind, schemas in _SCHEMAS.items():
        for name, path in schemas:
            if path.exists():
                schema = json.loads(path.read_text(encoding="utf-8"))
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
                validators.setdefault(kind, []).append((name, cls(schema, format_checker=cls.FORMAT_CHECKER)))
    return validators


def event_kind(body: Any) -> str:
    """``build`` or ``deployment``: the one key of a body's ``event`` (``build`` when it has none)."""
    event = body.get("event") if isinstance(body, dict) else None
    return next(iter(event), "build") if isinstance(event, dict) and len(event) == 1 else "build"


def event_of(body: dict[str, Any]) -> dict[str, Any]:
    """The event a body carries: its build or its deployment."""
    return body["event"][event_kind(body)]  # type: ignore[no-any-return]


def properties_of(body: dict[str, Any]) -> dict[str, Any]:
    """``buildProperties`` or ``deploymentProperties``."""
    return event_of(body)[f"{event_kind(body)}Properties"]  # type: ignore[no-any-return]


def _check_dates(body: dict[str, Any]) -> str | None:
    """Calendar check the regex cannot do (2026-02-30 matches the pattern)."""
    build = body.get("event", {}).get(event_kind(body), {})
    props = build.get(f"{event_kind(body)}Properties", {})
    for key, value in (
        ("lastUpdated", build.get("lastUpdated")),
        ("startedAt", props.get("startedAt")),
        ("completedAt", props.get("completedAt")),
    ):
        if isinstance(value, str) and (m := _DATE_RE.match(value)):
            try:
                date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return f"{key}: {value!r} is not a valid RFC 3339 date-time"
    return None


def _schema_problem(validators: Validators, body: Any) -> str | None:
    kind = event_kind(body)
    if kind not in validators:
        return f"event: {kind!r} is not an event this fake knows (build or deployment)"
    for name, validator in validators[kind]:
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            return f"{name}: {where}: {err.message}"
    return _check_dates(body) if isinstance(body, dict) else "not a JSON object"


def validate_body(body: Any) -> str | None:
    """The first contract violation of a request body, or None: the same checks the fake server makes."""
    return _schema_problem(_load_validators(), body)
