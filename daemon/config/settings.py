"""The configuration's models: what each setting may hold and what it means once validated.

Frozen pydantic models with unknown keys forbidden; a validator's message becomes the text of a
``file:line: key: message`` error (see ``loading``), so messages say what was expected.
"""

from __future__ import annotations

import re
import socket
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from daemon.config.deployments import (
    DeploymentRule,
    Environment,
    deployment_environment,
    deployment_rule,
    run_kinds,
)
from daemon.config.jira import JiraSettings
from daemon.config.section import NetworkSection, readable_file
from daemon.config.sources import (
    JenkinsSourceSettings,
    LogSourceSettings,
    ResultFileSourceSettings,
    SourceSettings,
    expand_preset,
)
from daemon.config.types import Duration, Strict, parse_listen, resolve_path
from daemon.config.values import default_state_dir, job_matches
from parsers.vocabulary import JENKINS_RESULTS, TERMINAL_STATES

__all__ = [
    "CompassSettings",
    "ComponentRule",
    "MetricsSettings",
    "Settings",
    "config_json_schema",
]


class ComponentRule(Strict):
    """Jobs whose full name matches ``match`` (a glob; ``**`` crosses folders) go to ``component_id``."""

    match: str = Field(min_length=1)
    component_id: str = Field(min_length=1)


class CompassSettings(NetworkSection):
    section: ClassVar[str] = "compass"  # the key messages name (``compass.proxy``)

    site: str | None = None
    base_url: str | None = None
    cloud_id: str = Field(min_length=1)
    email: str = Field(min_length=3)
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    event_source: str = "{host}"
    components: tuple[ComponentRule, ...] = ()
    deployments: tuple[DeploymentRule, ...] = ()
    auto_setup: bool = False
    graphql_url: str | None = None
    # timeout, rate_limit_per_minute, burst, proxy, proxy_credentials_file, ca_file: NetworkSection's

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
    def _file_readable(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return readable_file(v, info)

    @model_validator(mode="after")
    def _one_of_each(self) -> CompassSettings:
        if (self.site is None) == (self.base_url is None):
            raise ValueError("set either site (example.atlassian.net) or base_url, not both")
        if (self.api_token is None) == (self.api_token_file is None):
            raise ValueError("set exactly one of api_token and api_token_file")
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


class Settings(Strict):
    host: str = Field(default_factory=socket.getfqdn, min_length=1)
    state_dir: Path = Field(default_factory=default_state_dir)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    metrics: MetricsSettings = Field(default_factory=lambda: MetricsSettings())
    compass: CompassSettings | None = None
    jira: JiraSettings | None = None
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
            if state not in TERMINAL_STATES:
                raise ValueError(
                    f"{key}: {state!r} is not a terminal Compass state ({', '.join(TERMINAL_STATES)})"
                )
        return v

    @model_validator(mode="after")
    def _deployment_sources(self) -> Settings:
        names = {s.name for s in self.sources}
        for rule in self.compass.deployments if self.compass else ():
            if rule.source is not None and rule.source not in names:
                raise ValueError(f"compass.deployments: no source is named {rule.source!r}")
        return self

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

    def source_named(self, name: str) -> SourceSettings | None:
        """The settings of the source called ``name``, if one is."""
        return next((s for s in self.sources if s.name == name), None)

    def event_source_id(self, job: str) -> str:
        """The ``externalEventSourceId`` of a job's events (the daemon's and ``compass setup``'s)."""
        template = self.compass.event_source if self.compass else "{host}"
        return template.format(host=self.host, job=job)

    def component_for(self, job: str) -> str | None:
        """The component a job's events go to: the first ``compass.components`` rule that matches."""
        for rule in self.compass.components if self.compass else ():
            if job_matches(rule.match, job):
                return rule.component_id
        return None

    def event_types(self, source: str, job: str) -> tuple[str, ...]:
        """The kinds of event a run of ``job`` in ``source`` can be: a deployment when a rule names it,
        and a build unless that rule's environment is fixed or given by the job's name (a run without
        the rule's parameter is reported as a build)."""
        return run_kinds(self.compass.deployments, source, job) if self.compass else ("BUILD",)

    def needs_parameters(self, source: str, job: str) -> bool:
        """Whether a run's parameters decide if it is a deployment (its job's rule reads one)."""
        if self.compass is None:
            return False
        rule = deployment_rule(self.compass.deployments, source, job)
        return rule is not None and rule.environment_parameter is not None

    def deployment_for(self, source: str, job: str, parameters: Mapping[str, str]) -> Environment | None:
        """The environment a run of ``job`` deployed to, or None for a build."""
        if self.compass is None:
            return None
        return deployment_environment(self.compass.deployments, source, job, parameters)


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
