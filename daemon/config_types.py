"""Value types shared by the configuration models: durations, strict frozen models, paths."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, WithJsonSchema

__all__ = [
    "COMPASS_STATES",
    "DEFAULT_STATE_MAP",
    "JENKINS_RESULTS",
    "Duration",
    "Strict",
    "parse_duration",
    "resolve_path",
]

COMPASS_STATES = ("IN_PROGRESS", "SUCCESSFUL", "CANCELLED", "FAILED", "ERROR", "TIMED_OUT", "UNKNOWN")
JENKINS_RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED")
DEFAULT_STATE_MAP: dict[str, str] = {
    "SUCCESS": "SUCCESSFUL",
    "FAILURE": "FAILED",
    "UNSTABLE": "FAILED",
    "ABORTED": "CANCELLED",
    "NOT_BUILT": "CANCELLED",
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``2s``, ``500ms``, ``5m``, ``1h``, ``1d`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 2s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError("expected a duration such as 2s, 5m or 1h")
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"},
            ],
            "description": "seconds, or a duration such as 500ms, 2s, 5m, 1h, 1d",
        }
    ),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve_path(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = path.expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return Path(os.path.normpath(path))
