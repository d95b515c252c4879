"""The settings of each kind of source (jenkins, log, result_file) and the presets built on them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator, model_validator

from daemon.config.types import Duration, Strict, resolve_path
from parsers import RuleError, RuleSet, check_template
from parsers.vocabulary import TERMINAL_STATES

__all__ = [
    "PRESETS",
    "BranchScope",
    "JenkinsSourceSettings",
    "JobScope",
    "LogRules",
    "LogSourceSettings",
    "ResultFileSourceSettings",
    "SourceSettings",
    "expand_preset",
]


def _globs(v: Any, key: str) -> Any:
    if isinstance(v, str):
        raise ValueError(f"expected a list of globs, such as [{v!r}]")
    if isinstance(v, list | tuple):
        for glob in v:
            if not isinstance(glob, str) or not glob.strip():
                raise ValueError(f"{key}: every entry is a glob over names, such as 'housekeeping/*'")
    return v


class JobScope(Strict):
    """Which jobs (pipelines) of the source count: ``include`` then ``exclude``, globs over job full
    names (``*`` within a folder, ``**`` across). ``daemon.scope`` applies them."""

    include: tuple[str, ...] = Field(default=("**",), min_length=1)
    exclude: tuple[str, ...] = ()

    @field_validator("include", "exclude", mode="before")
    @classmethod
    def _job_globs(cls, v: Any, info: ValidationInfo) -> Any:
        if info.field_name == "include" and isinstance(v, list | tuple) and not v:
            raise ValueError("an empty include counts no job; leave it out to count every job")
        return _globs(v, str(info.field_name))


class BranchScope(Strict):
    """Which runs of a multibranch project's branch jobs count, by their head (``daemon.scope``):
    ``branches`` (all, primary, or globs over branch names) for branches and heads of unknown
    kind, ``pull_requests`` and ``tags`` for the others. A run of any other job has no head and
    is not concerned."""

    branches: Literal["all", "primary"] | tuple[str, ...] = "all"
    pull_requests: bool = True
    tags: bool = True

    @field_validator("branches", mode="before")
    @classmethod
    def _branches(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in ("all", "primary"):
            raise ValueError(
                f"{v!r}: expected all, primary, or a list of globs over branch names"
                " such as [main, 'release/*']"
            )
        if isinstance(v, list | tuple) and not v:
            raise ValueError("an empty list counts no branch; use primary, or leave it out to count all")
        return _globs(v, "branches") if not isinstance(v, str) else v


class JenkinsSourceSettings(JobScope, BranchScope):
    type: Literal["jenkins"]
    name: str = Field(default="jenkins", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    home: Path
    url: str | None = None
    watch: Literal["inotify", "polling"] = "inotify"
    poll_interval: Duration = 2.0
    reconcile_interval: Duration = 300.0
    matrix_configurations: bool = False
    stale_after: Duration = 86400.0

    @field_validator("home")
    @classmethod
    def _home_exists(cls, v: Path, info: ValidationInfo) -> Path:
        v = resolve_path(v, info)
        if not v.is_dir():
            raise ValueError("directory does not exist")
        if not os.access(v, os.R_OK | os.X_OK):
            raise ValueError("directory is not readable by this user")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("expected an http(s) URL such as https://jenkins.example.com/")
        return v if v is None or v.endswith("/") else v + "/"


def _terminal_states(v: dict[str, str]) -> dict[str, str]:
    """A result map's states: a finished run's, so never IN_PROGRESS (a result file says a run is
    still going with ``state: IN_PROGRESS``, a log with a start line)."""
    for word, state in v.items():
        if state not in TERMINAL_STATES:
            raise ValueError(
                f"{word}: {state!r} is not a terminal Compass state ({', '.join(TERMINAL_STATES)})"
            )
    return {word.lower(): state for word, state in v.items()}


def _check_zone(v: str | None) -> str | None:
    if v is not None:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Europe/Berlin)") from None
    return v


def _glob_paths(v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    return tuple(str(resolve_path(Path(p), info)) for p in v)


class LogRules(Strict):
    """What a line means. Named groups: ``id`` (the run), ``result`` (finish), ``time``, and any others
    for the templates."""

    start: str | None = None
    finish: str = Field(min_length=1)
    pipeline: str = Field(default="{name}", min_length=1)
    id: str | None = None  # template for the run id when the lines carry none (GoCD: from the path)
    result_map: dict[str, str] = Field(default_factory=dict)
    time_format: str | None = None  # iso | epoch | epoch_ms | a strptime format
    timezone: str | None = None  # IANA name for times without a zone; default: this machine's

    @field_validator("result_map")
    @classmethod
    def _map(cls, v: dict[str, str]) -> dict[str, str]:
        return _terminal_states(v)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return _check_zone(v)


class LogSourceSettings(JobScope):
    type: Literal["log"]
    name: str = Field(default="log", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    paths: tuple[str, ...] = Field(min_length=1)
    path_pattern: str | None = None  # regex over the file path whose named groups feed the templates
    rules: LogRules
    url: str | None = None  # template of the run link; default file://<host><path>
    watch: Literal["inotify", "polling"] = "inotify"
    poll_interval: Duration = 1.0
    max_line_bytes: int = Field(default=1 << 20, ge=1024)

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return _glob_paths(v, info)

    @field_validator("path_pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _rules_work(self) -> LogSourceSettings:
        """The rules compile and every template names a group they (or the path pattern) provide."""
        r = self.rules
        try:
            rules = RuleSet(
                start=r.start, finish=r.finish, time_format=r.time_format, ids_from_lines=r.id is None
            )
            real = set(rules.group_names)
            if self.path_pattern:
                real |= set(re.compile(self.path_pattern).groupindex)
            check_template(r.pipeline, real | {"id"})
            if r.id:
                check_template(r.id, real)
            if self.url:
                check_template(self.url, real | {"id", "pipeline"})
        except RuleError as exc:
            raise ValueError(f"rules: {exc}") from None
        return self


class ResultFileSourceSettings(JobScope):
    type: Literal["result_file"]
    name: str = Field(default="results", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    paths: tuple[str, ...] = Field(min_length=1)
    format: Literal["auto", "cruisecontrol", "gocd"] = "auto"  # auto: the documented JSON/YAML shape
    result_map: dict[str, str] = Field(default_factory=dict)
    timezone: str | None = None  # IANA name of the CI's local times (presets); default: this machine's
    url: str | None = None  # template of the run link when the file has none
    watch: Literal["inotify", "polling"] = "inotify"
    poll_interval: Duration = 2.0

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return _glob_paths(v, info)

    @field_validator("result_map")
    @classmethod
    def _map(cls, v: dict[str, str]) -> dict[str, str]:
        return _terminal_states(v)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return _check_zone(v)


_LOG_ONLY_KEYS = ("rules", "path_pattern", "max_line_bytes")
PRESETS = ("cruisecontrol", "gocd")


def expand_preset(source: Any) -> Any:
    """A preset is configuration: it becomes a ``log`` or ``result_file`` source before validation."""
    if not isinstance(source, dict) or "preset" not in source:
        return source
    rest = {k: v for k, v in source.items() if k not in ("preset", "home")}
    home = str(source.get("home", "")).rstrip("/")
    preset = source["preset"]
    if preset == "cruisecontrol":  # logs/<project>/log<yyyyMMddHHmmss>[L<label>].xml[.gz], one per build
        return {
            "type": "result_file",
            "name": "cruisecontrol",
            "format": "cruisecontrol",
            "paths": [f"{home}/logs/*/log*.xml", f"{home}/logs/*/log*.xml.gz"],
            **rest,
        }
    if preset == "gocd":  # console.log moved into place when a job completes: one file, one finished job
        extra = [key for key in _LOG_ONLY_KEYS if key in rest]
        if extra:
            raise ValueError(
                f"preset gocd: {', '.join(extra)}: not used any more (the GoCD console is read as a whole,"
                " its last status line decides); remove it"
            )
        return {
            "type": "result_file",
            "name": "gocd",
            "format": "gocd",
            "paths": [f"{home}/artifacts/pipelines/*/*/*/*/*/cruise-output/console.log"],
            **rest,
        }
    raise ValueError(f"unknown preset {preset!r}: {' or '.join(PRESETS)}")


SourceSettings = Annotated[
    JenkinsSourceSettings | LogSourceSettings | ResultFileSourceSettings,
    Field(discriminator="type"),
]
