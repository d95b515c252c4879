"""Which runs are deployments, and to which environment: ``compass.deployments``.

Compass derives Deployment Frequency and Deployment Time from deployment events, and a deploy job
reported as a build dilutes the build success rate. A rule names its jobs with a glob (over job
full names, or a log or result-file source's pipeline names) and gives the environment either
outright or through a parameter of the run (a Jenkins build parameter, a log rule's named group, a
result file's ``parameters``) mapped to environments. The first rule that matches decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from daemon.config.types import Strict
from daemon.config.values import job_matches

__all__ = [
    "ENVIRONMENT_CATEGORIES",
    "DeploymentRule",
    "Environment",
    "deployment_environment",
    "deployment_rule",
]

ENVIRONMENT_CATEGORIES = ("PRODUCTION", "STAGING", "TESTING", "DEVELOPMENT", "UNMAPPED")


class Environment(Strict):
    """Where a deployment went, as Compass shows it."""

    category: Literal["PRODUCTION", "STAGING", "TESTING", "DEVELOPMENT", "UNMAPPED"]
    name: str = Field(min_length=1)
    id: str | None = Field(default=None, min_length=1)  # Compass's environmentId; default: the name

    @property
    def environment_id(self) -> str:
        return self.id or self.name


class DeploymentRule(Strict):
    """Runs of jobs matching ``match`` (in ``source``, or any) are deployments to ``environment``, or
    to the environment ``environments`` maps the value of the run's ``environment_parameter`` to."""

    match: str = Field(min_length=1)
    source: str | None = None
    environment: Environment | None = None
    environment_parameter: str | None = Field(default=None, min_length=1)
    environments: dict[str, Environment] = Field(default_factory=dict)

    @field_validator("environments", mode="before")
    @classmethod
    def _environments_are_mappings(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for value, env in v.items():
                if not isinstance(env, dict):
                    example = f"{{category: {_example(env)}, name: {value}}}"
                    raise ValueError(f"{value}: expected an environment such as {example}")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> DeploymentRule:
        if (self.environment is None) == (self.environment_parameter is None):
            raise ValueError("set either environment or environment_parameter (with environments)")
        if self.environment_parameter is not None and not self.environments:
            raise ValueError(
                "environment_parameter needs environments: a map from the parameter's values to "
                "environments, e.g. {prod: {category: PRODUCTION, name: production}}"
            )
        if self.environment is not None and self.environments:
            raise ValueError("environments is only used with environment_parameter")
        return self


def _example(given: object) -> str:
    word = str(given).upper()
    return word if word in ENVIRONMENT_CATEGORIES else "PRODUCTION"


def deployment_rule(rules: tuple[DeploymentRule, ...], source: str, job: str) -> DeploymentRule | None:
    """The first rule that names this job (of this source), if any."""
    for rule in rules:
        if (rule.source is None or rule.source == source) and job_matches(rule.match, job):
            return rule
    return None


def deployment_environment(
    rules: tuple[DeploymentRule, ...], source: str, job: str, parameters: Mapping[str, str]
) -> Environment | None:
    """The environment a run deployed to, or None when it is not a deployment (a build).

    A run of a parameter rule's job whose value the map does not name went somewhere Compass was not
    told about: UNMAPPED, under that value. Without the parameter at all there is nothing to say
    where it went, and the run is reported as a build.
    """
    rule = deployment_rule(rules, source, job)
    if rule is None or rule.environment is not None:
        return None if rule is None else rule.environment
    assert rule.environment_parameter is not None
    value = parameters.get(rule.environment_parameter)
    if value is None or not value.strip():
        return None
    return rule.environments.get(value) or Environment(category="UNMAPPED", name=value)
