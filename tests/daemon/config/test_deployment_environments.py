"""Environments by pattern and from the job's name: ``compass.deployments`` read from real YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from daemon.config import ConfigError, Settings, load_settings

HEAD = """
compass:
  cloud_id: cloud-1
  email: bot@example.com
  site: example.atlassian.net
  api_token: plain
  deployments:
"""
TAIL = """
sources:
  - type: jenkins
    home: jenkins
"""


def settings(tmp_path: Path, rules: str) -> Settings:
    (tmp_path / "jenkins").mkdir(exist_ok=True)
    path = tmp_path / "buildtail.yaml"
    path.write_text(HEAD.lstrip("\n") + textwrap.indent(textwrap.dedent(rules), "    ") + TAIL)
    return load_settings(path)


def errors(tmp_path: Path, rules: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, rules)
    return info.value.errors


def where(s: Settings, job: str, parameters: dict[str, str] | None = None) -> tuple[str, str] | None:
    env = s.deployment_for("jenkins", job, parameters or {})
    return None if env is None else (env.category, env.environment_id)


PATTERNS = """
- match: "release/**"
  environment_parameter: TARGET_ENV
  environments:
    qa-?: {category: TESTING, name: qa}
    uat*: {category: STAGING, name: uat}
    u*: {category: DEVELOPMENT, name: other-u}
    prod: {category: PRODUCTION, name: production}
"""


def test_pattern_keys_ignore_case_and_the_first_that_matches_decides(tmp_path: Path) -> None:
    s = settings(tmp_path, PATTERNS)
    assert where(s, "release/shop", {"TARGET_ENV": "qa-7"}) == ("TESTING", "qa")
    assert where(s, "release/shop", {"TARGET_ENV": "QA-7"}) == ("TESTING", "qa"), "keys ignore case"
    assert where(s, "release/shop", {"TARGET_ENV": "qa-17"}) == ("UNMAPPED", "qa-17"), "? is one character"
    assert where(s, "release/shop", {"TARGET_ENV": "UAT3"}) == ("STAGING", "uat"), "uat* before u*"
    assert where(s, "release/shop", {"TARGET_ENV": "utility"}) == ("DEVELOPMENT", "other-u")
    assert where(s, "release/shop", {"TARGET_ENV": "prod"}) == ("PRODUCTION", "production")
    assert where(s, "release/shop", {"TARGET_ENV": "Prod"}) == ("PRODUCTION", "production")
    assert where(s, "release/shop", {"TARGET_ENV": "production"}) == ("UNMAPPED", "production"), "whole value"
    assert s.compass is not None
    order = list(s.compass.deployments[0].environments)
    assert order == ["qa-?", "uat*", "u*", "prod"], "the YAML mapping's order is kept"


def test_reordered_keys_decide_otherwise(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        PATTERNS.replace("    u*: {category: DEVELOPMENT, name: other-u}\n", "").replace(
            "    qa-?:", "    u*: {category: DEVELOPMENT, name: other-u}\n    qa-?:"
        ),
    )
    assert where(s, "release/shop", {"TARGET_ENV": "uat3"}) == ("DEVELOPMENT", "other-u")


FROM_JOB = """
- match: "deploy-*"
  environment_from_job: "deploy-(?P<env>[a-z0-9]+)"
  environments:
    uat*: {category: STAGING, name: uat}
    prod: {category: PRODUCTION, name: production}
- match: "ship/**"
  environment_from_job: "^ship/(?P<env>[^/]+)/"
  environments:
    live: {category: PRODUCTION, name: production}
"""


def test_the_environment_from_the_job_name_goes_through_the_map(tmp_path: Path) -> None:
    s = settings(tmp_path, FROM_JOB)
    assert where(s, "deploy-uat3") == ("STAGING", "uat")
    assert where(s, "deploy-prod") == ("PRODUCTION", "production")
    assert where(s, "deploy-qa") == ("UNMAPPED", "qa"), "a value no key matches: UNMAPPED under it"
    assert where(s, "deploy-") is None, "nothing captured: nothing says where it went, a build"
    assert where(s, "ship/live/api") == ("PRODUCTION", "production")
    assert where(s, "ship/api") is None, "the expression does not match this name: a build"
    assert s.event_types("jenkins", "deploy-uat3") == ("DEPLOYMENT",), "every run of the job deploys"
    assert s.event_types("jenkins", "ship/api") == ("BUILD",), "no run of the job deploys"
    assert not s.needs_parameters("jenkins", "deploy-uat3"), "the job's name alone decides"


def test_the_expression_must_compile_and_have_exactly_the_env_group(tmp_path: Path) -> None:
    bad = FROM_JOB.replace("deploy-(?P<env>[a-z0-9]+)", "deploy-(?P<env>[a-z")
    [error] = errors(tmp_path, bad)
    assert ":9: compass.deployments[0].environment_from_job: " in error
    assert "not a regular expression" in error
    for regex in ("deploy-([a-z]+)", "(?P<kind>deploy)-(?P<env>.+)", "deploy-(?P<environment>.+)"):
        [error] = errors(tmp_path, FROM_JOB.replace("deploy-(?P<env>[a-z0-9]+)", regex))
        assert "compass.deployments[0].environment_from_job: " in error, error
        assert "exactly one named group, env" in error, error
    [error] = errors(tmp_path, FROM_JOB.replace("deploy-(?P<env>[a-z0-9]+)", "(?P<kind>d)-(?P<env>.+)"))
    assert "found kind" in error


def test_one_way_to_say_where_and_a_map_for_the_value(tmp_path: Path) -> None:
    regex = '  environment_from_job: "deploy-'
    both = FROM_JOB.replace(regex, "  environment_parameter: TARGET\n" + regex, 1)
    [error] = errors(tmp_path, both)
    assert "compass.deployments[0]:" in error and "exactly one of environment" in error, error
    assert "this rule sets environment_parameter and environment_from_job" in error, error
    no_map = '- match: "deploy-*"\n  environment_from_job: "deploy-(?P<env>.+)"\n'
    [error] = errors(tmp_path, no_map)
    assert "environment_from_job needs environments" in error, error
