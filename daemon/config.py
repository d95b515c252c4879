"""YAML configuration -> validated, frozen settings.

Every problem is reported at once, each as ``file:line: key.path: message`` so an operator can fix a
config in one pass. ``${VAR}`` is substituted after parsing and only inside string scalars, so an
environment value can never inject YAML; an unset variable is an error, not an empty string.
"""

from __future__ import annotations

import os
import re
import socket
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .config_types import (
    COMPASS_STATES,
    DEFAULT_STATE_MAP,
    JENKINS_RESULTS,
    Duration,
    Strict,
    parse_duration,
    resolve_path,
)
from .metrics import parse_listen
from .source_settings import (
    JenkinsSourceSettings,
    LogRules,
    LogSourceSettings,
    ResultFileSourceSettings,
    SourceSettings,
    expand_preset,
)

__all__ = [
    "COMPASS_STATES",
    "DEFAULT_STATE_MAP",
    "CompassSettings",
    "ComponentRule",
    "ConfigError",
    "JenkinsSourceSettings",
    "LogRules",
    "LogSourceSettings",
    "ResultFileSourceSettings",
    "Settings",
    "load_settings",
    "parse_duration",
]

_ENV = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A configuration that cannot be used; ``errors`` holds one ``file:line: key: message`` each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class ComponentRule(Strict):
    """Jobs whose full name matches ``match`` (a glob; ``**`` crosses folders) go to ``component_id``."""

    match: str = Field(min_length=1)
    component_id: str = Field(min_length=1)


class CompassSettings(Strict):
    site: str | None = None
    base_url: str | None = None
    cloud_id: str = Field(min_length=1)
    email: str = Field(min_length=3)
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    event_source: str = "{host}"
    components: tuple[ComponentRule, ...] = ()
    timeout: Duration = 30.0
    rate_limit_per_minute: int = Field(default=100, ge=0)
    burst: int = Field(default=10, ge=1)
    auto_setup: bool = False
    graphql_url: str | None = None

    @field_validator("site")
    @classmethod
    def _site_is_host(cls, v: str | None) -> str | None:
        if v is not None and ("/" in v or not v.strip()):
            raise ValueError("expected a host name such as example.atlassian.net, not a URL")
        return v

    @field_validator("base_url", "graphql_url")
    @classmethod
    def _base_url_is_http(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("expected an http(s) URL such as https://example.atlassian.net/gateway/api")
        return v.rstrip("/") if v else v

    @field_validator("event_source")
    @classmethod
    def _template_fields(cls, v: str) -> str:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc}") from None
        unknown = names - {"host", "job"}
        if unknown:
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; available: {{host}}, {{job}}")
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("api_token_file")
    @classmethod
    def _token_file_readable(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return None
        v = resolve_path(v, info)
        if (info.context or {}).get("lenient"):
            return v
        if not v.is_file():
            raise ValueError(f"file does not exist: {v}")
        if not os.access(v, os.R_OK):
            raise ValueError(f"file is not readable: {v}")
        return v

    @model_validator(mode="after")
    def _one_of_each(self) -> CompassSettings:
        if (self.site is None) == (self.base_url is None):
            raise ValueError("set either site (example.atlassian.net) or base_url, not both")
        if (self.api_token is None) == (self.api_token_file is None):
            raise ValueError("set exactly one of api_token and api_token_file")
        if self.rate_limit_per_minute and self.burst >= self.rate_limit_per_minute:
            raise ValueError("burst must be smaller than rate_limit_per_minute")
        return self

    @property
    def gateway_url(self) -> str:
        return self.base_url or f"https://{self.site}/gateway/api"

    @property
    def site_url(self) -> str:
        """The site root, where ``/_edge/tenant_info`` answers (derived from base_url without a site)."""
        if self.site:
            return f"https://{self.site}"
        return self.gateway_url.removesuffix("/gateway/api")

    @property
    def graphql(self) -> str:
        return self.graphql_url or f"{self.gateway_url}/graphql"

    @property
    def events_url(self) -> str:
        return f"{self.gateway_url}/compass/v1/events"

    def token(self) -> str:
        """The API token; read from its file each time so a rotated credential is picked up."""
        if self.api_token is not None:
            return self.api_token.get_secret_value()
        assert self.api_token_file is not None
        return self.api_token_file.read_text(encoding="utf-8").strip()


class MetricsSettings(Strict):
    listen: str = "127.0.0.1:9464"  # empty: no metrics endpoint
    ready_max_queue_age: Duration = 900.0

    @field_validator("listen")
    @classmethod
    def _loopback_only(cls, v: str) -> str:
        if v:
            parse_listen(v)
        return v


def _default_state_dir() -> Path:
    return Path(os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "state")


class Settings(Strict):
    host: str = Field(default_factory=socket.getfqdn, min_length=1)
    state_dir: Path = Field(default_factory=_default_state_dir)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    metrics: MetricsSettings = Field(default_factory=lambda: MetricsSettings())
    compass: CompassSettings | None = None
    sources: tuple[SourceSettings, ...]
    state_map: dict[str, str] = Field(default_factory=dict)

    @field_validator("state_dir")
    @classmethod
    def _state_dir(cls, v: Path, info: ValidationInfo) -> Path:
        return resolve_path(v, info)

    @field_validator("state_map")
    @classmethod
    def _states(cls, v: dict[str, str]) -> dict[str, str]:
        for key, state in v.items():
            if key not in JENKINS_RESULTS:
                raise ValueError(f"{key!r} is not a Jenkins result ({', '.join(JENKINS_RESULTS)})")
            if state not in COMPASS_STATES or state == "IN_PROGRESS":
                raise ValueError(
                    f"{key}: {state!r} is not a terminal Compass state ({', '.join(COMPASS_STATES[1:])})"
                )
        return v

    @field_validator("sources", mode="before")
    @classmethod
    def _presets(cls, v: Any) -> Any:
        return [expand_preset(s) for s in v] if isinstance(v, list | tuple) else v

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: tuple[SourceSettings, ...]) -> tuple[SourceSettings, ...]:
        if not v:
            raise ValueError("at least one source is needed")
        seen: set[str] = set()
        for source in v:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}; give each a distinct name")
            seen.add(source.name)
        return v

    @property
    def jenkins_sources(self) -> list[JenkinsSourceSettings]:
        return [s for s in self.sources if isinstance(s, JenkinsSourceSettings)]

    @property
    def file_sources(self) -> list[LogSourceSettings | ResultFileSourceSettings]:
        return [s for s in self.sources if not isinstance(s, JenkinsSourceSettings)]

    def state_for(self, result: str) -> str:
        mapped: dict[str, str] = {**DEFAULT_STATE_MAP, **self.state_map}
        return mapped.get(result, "UNKNOWN")


def config_json_schema() -> dict[str, Any]:
    """The configuration's JSON Schema for editors: the validating model's own, plus the presets
    (expanded before validation, so the model alone does not describe them)."""
    schema = Settings.model_json_schema()
    items = schema["properties"]["sources"]["items"]
    refs = items.get("oneOf") or items.get("anyOf") or []
    preset = {
        "type": "object",
        "title": "PresetSource",
        "description": "a ready-made log or result_file source for another CI server",
        "required": ["preset", "home"],
        "properties": {
            "preset": {"enum": ["cruisecontrol", "gocd"]},
            "home": {"type": "string", "description": "the CI server's home directory"},
            "name": {"type": "string"},
            "url": {"type": "string"},
            "watch": {"enum": ["inotify", "polling"]},
            "poll_interval": schema["$defs"]["LogSourceSettings"]["properties"]["poll_interval"],
            "paths": {"type": "array", "items": {"type": "string"}},
            "timezone": {"type": "string", "description": "IANA zone of the CI's local times"},
        },
        "additionalProperties": False,
    }
    schema["properties"]["sources"]["items"] = {"anyOf": [*refs, preset]}
    return schema


# --- YAML with line numbers -------------------------------------------------------------------------


@dataclass
class _Doc:
    data: Any
    lines: dict[tuple[str | int, ...], int]
    errors: list[str]  # found while reading (unset ${VAR}, duplicate keys); validation adds the rest


def _construct(
    node: yaml.Node,
    path: tuple[str | int, ...],
    doc_lines: dict[Any, int],
    errors: list[str],
    fname: str,
    lenient: bool = False,
) -> Any:
    doc_lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader("").construct_object(key_node, deep=True)
            if not isinstance(key, str | int | bool):
                errors.append(
                    f"{fname}:{key_node.start_mark.line + 1}: {_dotted(path)}: keys must be scalars"
                )
                continue
            skey = str(key) if not isinstance(key, bool) else ("true" if key else "false")
            if skey in out:
                errors.append(
                    f"{fname}:{key_node.start_mark.line + 1}: {_dotted((*path, skey))}: duplicate key"
                )
            doc_lines[(*path, skey)] = key_node.start_mark.line + 1
            out[skey] = _construct(value_node, (*path, skey), doc_lines, errors, fname, lenient)
            doc_lines[(*path, skey)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(n, (*path, i), doc_lines, errors, fname, lenient) for i, n in enumerate(node.value)
        ]
    value = yaml.SafeLoader("").construct_object(node, deep=True)
    if isinstance(value, str) and node.tag == "tag:yaml.org,2002:str":
        value = _expand_env(value, path, node.start_mark.line + 1, errors, fname, lenient)
    return value


_SECRET_KEYS = {("compass", "api_token"), ("compass", "api_token_file")}


def _expand_env(
    value: str, path: tuple[str | int, ...], line: int, errors: list[str], fname: str, lenient: bool
) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name = m.group(1)
        if name not in os.environ:
            if lenient and path in _SECRET_KEYS:
                return "unset"  # a command that needs no credentials (status) must not demand them
            errors.append(f"{fname}:{line}: {_dotted(path)}: environment variable {name} is not set")
            return ""
        return os.environ[name]

    return _ENV.sub(sub, value)


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _load_yaml(text: str, fname: str, lenient: bool) -> _Doc:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{fname}:{line}: (top level): not valid YAML: {problem}"]) from None
    if node is None:
        raise ConfigError([f"{fname}:1: (top level): the file is empty"])
    lines: dict[Any, int] = {}
    errors: list[str] = []
    data = _construct(node, (), lines, errors, fname, lenient)
    if not isinstance(data, dict):
        raise ConfigError([*errors, f"{fname}:1: (top level): expected a mapping of settings"])
    return _Doc(data, lines, errors)


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


_TAGS = {"jenkins", "log", "result_file"}


def _line_for(loc: tuple[str | int, ...], lines: dict[Any, int]) -> int:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return 1


def _errors_of(exc: ValidationError, doc: _Doc, fname: str) -> Iterator[str]:
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic reports discriminated/tagged members and dict keys with extra segments; keep real keys
        loc = tuple(p for p in loc if p != "[key]")
        # a tagged union adds the tag after the list index: sources[1].log.rules -> sources[1].rules
        loc = tuple(p for i, p in enumerate(loc) if not (i and isinstance(loc[i - 1], int) and p in _TAGS))
        yield f"{fname}:{_line_for(loc, doc.lines)}: {_dotted(loc)}: {_message(err)}"


def load_settings(path: Path, *, need_secrets: bool = True) -> Settings:
    """Reads, substitutes and validates a configuration file; raises ConfigError with every problem.

    ``need_secrets=False`` is for commands that never talk to Compass (``status``): an operator's
    shell has no ``$CREDENTIALS_DIRECTORY`` or token variable, and does not need one to look.
    """
    fname = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{fname}:1: (top level): cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{fname}:1: (top level): the file is not UTF-8 text"]) from None
    doc = _load_yaml(text, fname, not need_secrets)
    errors = list(doc.errors)
    try:
        context = {"base_dir": path.resolve().parent, "lenient": not need_secrets}
        settings = Settings.model_validate(doc.data, context=context)
    except ValidationError as exc:
        # a key whose ${VAR} was unset is already reported; its empty stand-in needs no second error
        reported = {e.split(": ", 2)[1] for e in doc.errors if e.count(": ") >= 2}
        errors += [e for e in _errors_of(exc, doc, fname) if e.split(": ", 2)[1] not in reported]
    if errors:
        raise ConfigError(sorted(set(errors), key=_sort_key))
    return settings


def _sort_key(line: str) -> tuple[int, str]:
    try:
        return int(line.split(":")[1]), line
    except (IndexError, ValueError):
        return 0, line
