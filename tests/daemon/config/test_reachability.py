"""check-config's warnings about ``compass.deployments`` parts that can never take effect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.config.deployments import DeploymentRule
from daemon.config.reachability import deployment_warnings, glob_covers, key_covers
from daemon.config.values import job_matches

PROD = {"category": "PRODUCTION", "name": "production"}


def rule(match: str, **kw: Any) -> DeploymentRule:
    if "environment_parameter" not in kw and "environment_from_job" not in kw:
        kw.setdefault("environment", PROD)
    elif "environments" not in kw:
        kw["environments"] = {"prod": PROD}
    return DeploymentRule.model_validate({"match": match, **kw})


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("deploy-*", "deploy-*"),
        ("**", "release/shop/*"),
        ("*", "deploy-?"),
        ("release/**", "release/shop/**"),
        ("deploy-*", "deploy-prod"),
        ("deploy-*", "deploy-prod-*"),
        ("release/*/api", "release/shop/api"),
    ],
)
def test_a_glob_covers(earlier: str, later: str) -> None:
    assert glob_covers(earlier, later)


@pytest.mark.parametrize(
    ("earlier", "later", "witness"),
    [
        ("*", "release/*", "release/x"),  # * stays inside one folder
        ("deploy-*", "deploy-*/x", "deploy-a/x"),
        ("deploy-*", "deploy-**", "deploy-a/b"),
        ("deploy-prod", "deploy-*", "deploy-qa"),
        ("release/*/api", "release/*/*", "release/a/b"),
        ("a*b", "a*", "ac"),
    ],
)
def test_a_glob_does_not_cover_and_here_is_a_job_to_show_it(earlier: str, later: str, witness: str) -> None:
    assert not glob_covers(earlier, later)
    assert job_matches(later, witness) and not job_matches(earlier, witness), "the witness is honest"


def test_keys_cover_ignoring_case() -> None:
    assert key_covers("uat*", "UAT-1")
    assert key_covers("UAT*", "uat-*")
    assert key_covers("qa-?", "QA-7")
    assert key_covers("prod", "PROD")
    assert key_covers("*", "anything/at-all*")
    assert not key_covers("qa-?", "qa-*"), "qa-17"
    assert not key_covers("uat*", "u*"), "utility"
    assert not key_covers("prod", "prod*"), "production"


def test_a_rule_shadowed_by_an_earlier_one_is_named_with_its_number() -> None:
    rules = (
        rule("release/**", source="jenkins"),
        rule("deploy-*"),
        rule("deploy-prod"),
        rule("release/shop/*", source="gocd"),
        rule("release/shop/*", source="jenkins"),
    )
    assert deployment_warnings(rules) == [
        "compass.deployments[2] (match 'deploy-prod') never applies: it is shadowed by rule 1 "
        "(match 'deploy-*'), which comes first and names every job it names",
        "compass.deployments[4] (match 'release/shop/*') never applies: it is shadowed by rule 0 "
        "(match 'release/**' in source 'jenkins'), which comes first and names every job it names",
    ], "a rule of one source does not shadow another source's"


def test_a_narrower_source_does_not_shadow_a_rule_for_every_source() -> None:
    assert deployment_warnings((rule("deploy-*", source="jenkins"), rule("deploy-*"))) == []


def test_a_shadowed_environments_key() -> None:
    rules = (
        rule(
            "release/**",
            environment_parameter="TARGET",
            environments={"uat*": PROD, "UAT3": PROD, "qa-?": PROD, "qa-*": PROD, "Prod": PROD, "prod": PROD},
        ),
    )
    assert deployment_warnings(rules) == [
        "compass.deployments[0].environments.UAT3: never used: it is shadowed by the key 'uat*' before "
        "it, which matches every value it matches (keys ignore case)",
        "compass.deployments[0].environments.prod: never used: it is shadowed by the key 'Prod' before "
        "it, which matches every value it matches (keys ignore case)",
    ]


def test_an_expression_that_cannot_match_the_one_job_its_rule_names() -> None:
    never = rule("deploy-shop", environment_from_job="^release-(?P<env>.+)")
    fine = rule("release-prod", environment_from_job="^release-(?P<env>.+)")
    unknown = rule("deploy-*", environment_from_job="^release-(?P<env>.+)")  # undecided: no claim
    assert deployment_warnings((never, fine, unknown)) == [
        "compass.deployments[0].environment_from_job: '^release-(?P<env>.+)' does not match "
        "'deploy-shop', the only job the rule names: its runs are sent as builds"
    ]


def test_a_sound_configuration_has_no_warnings() -> None:
    rules = (
        rule("deploy-prod"),
        rule("deploy-*", environment_from_job="deploy-(?P<env>[a-z]+)", environments={"uat*": PROD}),
        rule("release/**", environment_parameter="TARGET_ENV", environments={"staging": PROD, "prod": PROD}),
        rule("**", source="gocd"),
    )
    assert deployment_warnings(rules) == []


def test_check_config_prints_them_as_warnings_and_succeeds(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    (tmp_path / "jenkins").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "compass:\n"
        "  base_url: http://127.0.0.1:9/gateway/api\n"
        "  cloud_id: c\n"
        "  email: a@example.com\n"
        "  api_token: t\n"
        "  deployments:\n"
        "    - {match: 'deploy-*', environment: {category: PRODUCTION, name: production}}\n"
        "    - {match: 'deploy-web', environment: {category: STAGING, name: staging}}\n"
        "sources:\n"
        f"  - {{type: jenkins, home: {tmp_path / 'jenkins'}}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "check-config", "--config", str(cfg)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    assert proc.stderr == (
        f"{cfg}: warning: compass.deployments[1] (match 'deploy-web') never applies: it is shadowed by "
        "rule 0 (match 'deploy-*'), which comes first and names every job it names\n"
    )


REPO = Path(__file__).resolve().parents[3]


def _example_rules() -> list[tuple[str, str]]:
    """The deployment rules the example configuration shows commented out, and the README's."""
    lines = (REPO / "config.example.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  # deployments:"))
    block = []
    for line in lines[start:]:
        if not line.startswith("  #"):
            break
        block.append("  " + line[4:])
    readme = (REPO / "README.md").read_text()
    begin = readme.index("```yaml\ncompass:\n  deployments:\n") + len("```yaml\n")
    return [
        ("config.example.yaml", "compass:\n" + "\n".join(block) + "\n"),
        ("README.md", readme[begin : readme.index("```", begin)]),
    ]


@pytest.mark.parametrize(("where", "text"), _example_rules(), ids=["config.example.yaml", "README.md"])
def test_the_documented_rules_load_and_draw_no_warning(where: str, text: str) -> None:
    import yaml

    rules = yaml.safe_load(text)["compass"]["deployments"]
    assert any("environment_from_job" in r for r in rules) and any(
        "*" in key for r in rules for key in r.get("environments", {})
    ), f"{where} shows a pattern key and environment_from_job"
    parsed = tuple(DeploymentRule.model_validate(r) for r in rules)
    assert deployment_warnings(parsed) == []
