"""Which runs are deployments, and to which environment: ``compass.deployments``.

Compass derives Deployment Frequency and Deployment Time from deployment events, and a deploy job
reported as a build dilutes the build success rate. A rule names its jobs with a glob (over job
full names, or a log or result-file source's pipeline names) and gives the environment outright,
through a parameter of the run (a Jenkins build parameter, a log rule's named group, a result
file's ``parameters``), or through the ``env`` group of a regular expression over the job's full
name; a value is mapped to an environment by the first ``environments`` key (a case-insensitive
fnmatch pattern) that matches it. The first rule that matches a job decides.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from functools import lru_cache
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
    "environment_key_matches",
    "job_environment_pattern",
    "run_kinds",
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
    to the environment ``environments`` maps a value to: the run's ``environment_parameter``, or
    what the ``env`` group of ``environment_from_job`` captures from the job's full name."""

    match: str = Field(min_length=1)
    source: str | None = None
    environment: Environment | None = None
    environment_parameter: str | None = Field(default=None, min_length=1)
    environment_from_job: str | None = Field(default=None, min_length=1)
    environments: dict[str, Environment] = Field(default_factory=dict)

    @field_validator("environment_from_job")
    @classmethod
    def _one_env_group(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            pattern = job_environment_pattern(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if set(pattern.groupindex) != {"env"}:
            others = sorted(set(pattern.groupindex) - {"env"})
            extra = f" and no other named group (found {', '.join(others)})" if others else ""
            raise ValueError(
                f"needs exactly one named group, env, for the environment's value{extra}: "
                "e.g. deploy-(?P<env>[a-z0-9]+)"
            )
        return v

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
        ways = [
            key
            for key, value in (
                ("environment", self.environment),
                ("environment_parameter", self.environment_parameter),
                ("environment_from_job", self.environment_from_job),
            )
            if value is not None
        ]
        if len(ways) != 1:
            given = f" (this rule sets {' and '.join(ways)})" if ways else ""
            raise ValueError(
                "set exactly one of environment, environment_parameter or environment_from_job "
                f"(the latter two with environments){given}"
            )
        if self.environment is None and not self.environments:
            raise ValueError(
                f"{ways[0]} needs environments: a map from its values (or patterns such as uat*) to "
                "environments, e.g. {prod: {category: PRODUCTION, name: production}}"
            )
        if self.environment is not None and self.environments:
            raise ValueError("environments is only used with environment_parameter or environment_from_job")
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


@lru_cache(maxsize=256)
def job_environment_pattern(regex: str) -> re.Pattern[str]:
    """``environment_from_job`` compiled (once: it is asked for every run)."""
    return re.compile(regex)


@lru_cache(maxsize=1024)
def _key_pattern(key: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(key), re.IGNORECASE)


def environment_key_matches(key: str, value: str) -> bool:
    """Whether an ``environments`` key names a value: fnmatch over the whole value (``*``, ``?``,
    ``[...]``), ignoring case, so that ``uat*`` names ``UAT3`` and ``prod`` names ``PROD``."""
    return _key_pattern(key).match(value) is not None


def deployment_environment(
    rules: tuple[DeploymentRule, ...], source: str, job: str, parameters: Mapping[str, str]
) -> Environment | None:
    """The environment a run deployed to, or None when it is not a deployment (a build).

    The value (the run's parameter, or the ``env`` group the job's full name gives) goes to the
    first ``environments`` key that matches it; a value no key matches went somewhere Compass was not
    told about: UNMAPPED, under that value. Without a value (no such parameter, or a job name the
    expression does not match) there is nothing to say where it went, and the run is a build.
    """
    rule = deployment_rule(rules, source, job)
    if rule is None or rule.environment is not None:
        return None if rule is None else rule.environment
    if rule.environment_parameter is not None:
        value = parameters.get(rule.environment_parameter)
    else:
        assert rule.environment_from_job is not None
        found = job_environment_pattern(rule.environment_from_job).search(job)
        value = None if found is None else found.group("env")
    if value is None or not value.strip():
        return None
    for key, environment in rule.environments.items():
        if environment_key_matches(key, value):
            return environment
    return Environment(category="UNMAPPED", name=value)


def run_kinds(rules: tuple[DeploymentRule, ...], source: str, job: str) -> tuple[str, ...]:
    """The kinds of event a run of this job can be. Only a parameter varies from run to run: a fixed
    environment, or one the job's name gives, makes every run of the job a deployment (or, for a
    name the expression does not match, every run a build)."""
    rule = deployment_rule(rules, source, job)
    if rule is None:
        return ("BUILD",)
    if rule.environment_parameter is not None:
        return ("BUILD", "DEPLOYMENT")
    return ("BUILD",) if deployment_environment(rules, source, job, {}) is None else ("DEPLOYMENT",)
