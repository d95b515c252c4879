"""The pydantic side of the configuration's values: durations as a type, strict frozen models, paths
resolved against the configuration file (the values themselves are in ``values``, the states and
results in ``parsers.vocabulary``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, WithJsonSchema

from daemon.config.values import parse_duration, parse_listen, resolve

__all__ = [
    "Duration",
    "Strict",
    "parse_duration",
    "parse_listen",
    "resolve_path",
]

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
    return resolve(path, None if base is None else Path(base))
