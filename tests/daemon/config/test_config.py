"""load_settings on real YAML files: defaults, path resolution, substitution and error reporting."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

from daemon.config import ConfigError, JenkinsSourceSettings, Settings, load_settings
from daemon.events import RunFacts, result_state

TOKEN = "tok-Zq7xK9-distinctive-Pw3"


def state_of(settings: Settings, result: str, source: str = "jenkins") -> str:
    """The Compass state the event rules give a finished run of ``source`` with ``result``."""
    facts = RunFacts(
        source=source, job="j", number=1, running=False, start_ms=0, start_is_exact=True, result=result
    )
    return result_state(facts, settings)


def write(tmp_path: Path, text: str, name: str = "buildtail.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


@pytest.fixture
def home(tmp_path: Path) -> Path:
    d = tmp_path / "jenkins"
    d.mkdir()
    return d


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("BT_TEST_UNSET", raising=False)


MINIMAL = """
sources:
  - type: jenkins
    home: jenkins
"""

COMPASS_OK = """
compass:
  cloud_id: cloud-1
  email: bot@example.com
  site: example.atlassian.net
  api_token: plain
sources:
  - type: jenkins
    home: jenkins
"""


# --- valid configurations ---------------------------------------------------------------------------


def test_minimal_config_defaults(tmp_path: Path, home: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL))
    assert s.host == socket.getfqdn()
    assert s.state_dir == Path("state")  # documented default: ./state
    assert s.log_level == "info"
    assert s.compass is None
    assert s.state_map == {}
    (src,) = s.sources
    assert src.name == "jenkins"
    assert src.home == home
    assert src.watch == "inotify"
    assert src.poll_interval == 2.0
    assert src.reconcile_interval == 300.0
    assert src.stale_after == 86400.0
    assert src.matrix_configurations is False
    assert src.url is None


def test_state_directory_from_environment(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/sd1:{tmp_path}/sd2")
    s = load_settings(write(tmp_path, MINIMAL))
    assert s.state_dir == tmp_path / "sd1"


def test_relative_paths_resolve_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc" / "buildtail"
    conf_dir.mkdir(parents=True)
    (conf_dir / "jh").mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(
        conf_dir,
        """
        state_dir: var/state
        sources:
          - type: jenkins
            home: jh
        """,
    )
    s = load_settings(path)
    assert s.state_dir == conf_dir / "var" / "state"
    assert s.sources[0].home == conf_dir / "jh"


def test_event_source_default_and_compass_defaults(tmp_path: Path, home: Path) -> None:
    s = load_settings(write(tmp_path, COMPASS_OK))
    assert s.compass is not None
    assert s.compass.event_source == "{host}"
    assert s.compass.timeout == 30.0
    assert s.compass.components == ()
    assert s.compass.events_url == "https://example.atlassian.net/gateway/api/compass/v1/events"


@pytest.mark.parametrize(
    ("text", "seconds"), [('"500ms"', 0.5), ('"5m"', 300.0), ('"1h"', 3600.0), ("3", 3.0), ('"2s"', 2.0)]
)
def test_durations(tmp_path: Path, home: Path, text: str, seconds: float) -> None:
    path = write(
        tmp_path,
        f"""
        sources:
          - type: jenkins
            home: jenkins
            poll_interval: {text}
        """,
    )
    assert load_settings(path).sources[0].poll_interval == seconds


def test_env_substitution_and_escape(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BT_TEST_HOME", "jenkins")
    monkeypatch.setenv("BT_TEST_TOKEN", TOKEN)
    path = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          base_url: http://127.0.0.1:9/gateway/api/
          api_token: ${BT_TEST_TOKEN}
          event_source: "ci-$${host}-{job}"
        sources:
          - type: jenkins
            home: ${BT_TEST_HOME}
        """,
    )
    s = load_settings(path)
    assert s.sources[0].home == home
    assert s.compass is not None
    assert s.compass.token() == TOKEN
    assert s.compass.event_source == "ci-${host}-{job}"
    assert s.compass.events_url == "http://127.0.0.1:9/gateway/api/compass/v1/events"
    assert TOKEN not in repr(s)
    assert TOKEN not in str(s)


def test_api_token_file_is_read_and_stripped(tmp_path: Path, home: Path) -> None:
    (tmp_path / "token").write_text(f"  {TOKEN}\n\n", encoding="utf-8")
    path = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          site: example.atlassian.net
          api_token_file: token
        sources:
          - type: jenkins
            home: jenkins
        """,
    )
    s = load_settings(path)
    assert s.compass is not None
    assert s.compass.api_token_file == tmp_path / "token"
    assert s.compass.token() == TOKEN
    # a rotated credential is picked up without a reload
    (tmp_path / "token").write_text("rotated\n", encoding="utf-8")
    assert s.compass.token() == "rotated"
    assert TOKEN not in repr(s)


def test_state_map_overrides_the_default_map(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        state_map:
          UNSTABLE: SUCCESSFUL
          NOT_BUILT: UNKNOWN
        sources:
          - type: jenkins
            home: jenkins
        """,
    )
    s = load_settings(path)
    assert state_of(s, "UNSTABLE") == "SUCCESSFUL"
    assert state_of(s, "NOT_BUILT") == "UNKNOWN"
    assert state_of(s, "SUCCESS") == "SUCCESSFUL"
    assert state_of(s, "FAILURE") == "FAILED"
    assert state_of(s, "ABORTED") == "CANCELLED"
    assert state_of(s, "WHATEVER") == "UNKNOWN"


def test_a_file_sources_words_go_through_its_result_map_then_the_common_words(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        state_map: {UNSTABLE: SUCCESSFUL}
        sources:
          - type: log
            name: ci
            paths: [/var/log/ci/*.log]
            rules:
              finish: 'END (?P<id>\\d+) (?P<result>\\w+)'
              pipeline: nightly
              result_map: {Passed: FAILED, Yellow: ERROR}
          - type: result_file
            name: results
            paths: [/tmp/results/*.json]
        """,
    )
    s = load_settings(path)
    assert state_of(s, "passed", "ci") == "FAILED", "the source's own map first, whatever the case"
    assert state_of(s, " YELLOW ", "ci") == "ERROR"
    assert state_of(s, "passed", "results") == "SUCCESSFUL", "a common word"
    assert state_of(s, "unstable", "results") == "FAILED", "state_map is Jenkins': not for other CIs"
    assert state_of(s, "SUCCESS", "results") == "SUCCESSFUL"
    assert state_of(s, "purple", "results") == "UNKNOWN"


def test_source_url_gets_trailing_slash(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: jenkins
            url: https://jenkins.example.com/ci
        """,
    )
    assert load_settings(path).sources[0].url == "https://jenkins.example.com/ci/"


# --- errors -----------------------------------------------------------------------------------------


def test_every_error_reported_at_once_with_lines(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        colour: red
        sources:
          - type: jenkins
            home: jenkins
            colour: blue
            poll_interval: soon
          - type: jenkins
            name: second
            home: does-not-exist
        """,
    )
    errors = errors_of(path)
    f = str(path)
    assert f"{f}:1: colour: unknown key" in errors
    assert f"{f}:5: sources[0].colour: unknown key" in errors
    assert f"{f}:6: sources[0].poll_interval: expected a duration such as 2s, 5m or 1h" in errors
    assert f"{f}:9: sources[1].home: directory does not exist" in errors
    # sorted by line
    lines = [int(e.split(":")[1]) for e in errors]
    assert lines == sorted(lines)


def test_invalid_source_reports_no_spurious_empty_sources_error(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: jenkins
            poll_interval: soon
        """,
    )
    assert errors_of(path) == [
        f"{path}:4: sources[0].poll_interval: expected a duration such as 2s, 5m or 1h"
    ]


def test_missing_required_keys(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        log_level: info
        compass:
          email: bot@example.com
          site: example.atlassian.net
          api_token: x
        """,
    )
    errors = errors_of(path)
    assert f"{path}:2: compass.cloud_id: required key is missing" in errors
    assert any(e.startswith(f"{path}:") and ": sources: required key is missing" in e for e in errors)
    path2 = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            name: a
        """,
        "b.yaml",
    )
    assert f"{path2}:2: sources[0].home: required key is missing" in errors_of(path2)


def test_zero_duration_rejected(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: jenkins
            reconcile_interval: 0
        """,
    )
    assert f"{path}:4: sources[0].reconcile_interval: must be greater than zero" in errors_of(path)


def test_unset_environment_variable(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: ${BT_TEST_UNSET}
        """,
    )
    assert errors_of(path) == [f"{path}:3: sources[0].home: environment variable BT_TEST_UNSET is not set"]


def test_unset_variable_reported_together_with_other_errors(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        colour: red
        sources:
          - type: jenkins
            home: ${BT_TEST_UNSET}
        """,
    )
    errors = errors_of(path)
    assert f"{path}:4: sources[0].home: environment variable BT_TEST_UNSET is not set" in errors
    assert f"{path}:1: colour: unknown key" in errors


def test_token_never_in_errors_or_repr(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BT_TEST_TOKEN", TOKEN)
    path = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: ${BT_TEST_TOKEN}
          site: ${BT_TEST_TOKEN}/x
          api_token: ${BT_TEST_TOKEN}
          timeout: ${BT_TEST_TOKEN}
        log_level: ${BT_TEST_TOKEN}
        sources:
          - type: jenkins
            home: ${BT_TEST_TOKEN}
            url: ${BT_TEST_TOKEN}
            watch: ${BT_TEST_TOKEN}
        """,
    )
    errors = errors_of(path)
    assert len(errors) >= 6
    for e in errors:
        assert TOKEN not in e
    # a valid config holding the token never shows it
    ok = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          site: example.atlassian.net
          api_token: ${BT_TEST_TOKEN}
        sources:
          - type: jenkins
            home: jenkins
        """,
        "ok.yaml",
    )
    s = load_settings(ok)
    assert TOKEN not in repr(s)
    assert TOKEN not in repr(s.compass)
    assert TOKEN not in s.model_dump_json()


def test_both_token_and_token_file(tmp_path: Path, home: Path) -> None:
    (tmp_path / "token").write_text("t\n", encoding="utf-8")
    path = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: jenkins
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          site: example.atlassian.net
          api_token: abc
          api_token_file: token
        """,
    )
    assert errors_of(path) == [f"{path}:4: compass: set exactly one of api_token and api_token_file"]


def test_neither_token_nor_token_file(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          site: example.atlassian.net
        sources:
          - type: jenkins
            home: jenkins
        """,
    )
    assert errors_of(path) == [f"{path}:1: compass: set exactly one of api_token and api_token_file"]


def test_missing_token_file(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          site: example.atlassian.net
          api_token_file: nope
        sources:
          - type: jenkins
            home: jenkins
        """,
    )
    assert f"{path}:5: compass.api_token_file: file does not exist: {tmp_path / 'nope'}" in errors_of(path)


def test_site_versus_base_url(tmp_path: Path, home: Path) -> None:
    site = load_settings(write(tmp_path, COMPASS_OK))
    assert site.compass is not None
    assert site.compass.events_url == "https://example.atlassian.net/gateway/api/compass/v1/events"
    neither = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          api_token: x
        sources:
          - type: jenkins
            home: jenkins
        """,
        "neither.yaml",
    )
    assert errors_of(neither) == [
        f"{neither}:1: compass: set either site (example.atlassian.net) or base_url, not both"
    ]
    bad_base = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          base_url: ftp://x
          api_token: x
        sources:
          - type: jenkins
            home: jenkins
        """,
        "bad.yaml",
    )
    assert errors_of(bad_base) == [
        f"{bad_base}:4: compass.base_url: expected an http(s) URL such as "
        "https://example.atlassian.net/gateway/api"
    ]


def test_site_and_base_url_together_rejected(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          site: example.atlassian.net
          base_url: https://other.example.com/gateway/api
          api_token: x
        sources:
          - type: jenkins
            home: jenkins
        """,
    )
    errors = errors_of(path)
    assert any("compass" in e and "site" in e and "base_url" in e for e in errors)


def test_site_given_a_url(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          site: https://example.atlassian.net/
          api_token: x
        sources:
          - type: jenkins
            home: jenkins
        """,
    )
    assert errors_of(path) == [
        f"{path}:4: compass.site: expected a host name such as example.atlassian.net, not a URL"
    ]


def test_event_source_unknown_placeholder(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          site: example.atlassian.net
          api_token: x
          event_source: "{hostname}-{job}"
        sources:
          - type: jenkins
            home: jenkins
        """,
    )
    assert errors_of(path) == [
        f"{path}:6: compass.event_source: unknown placeholder {{hostname}}; available: {{host}}, {{job}}"
    ]


def test_state_map_bad_key_and_state(tmp_path: Path, home: Path) -> None:
    bad_key = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: jenkins
        state_map:
          PASSED: SUCCESSFUL
        """,
    )
    assert errors_of(bad_key) == [
        f"{bad_key}:4: state_map: 'PASSED' is not a Jenkins result "
        "(SUCCESS, UNSTABLE, FAILURE, NOT_BUILT, ABORTED)"
    ]
    bad_state = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: jenkins
        state_map:
          SUCCESS: IN_PROGRESS
        """,
        "b.yaml",
    )
    (err,) = errors_of(bad_state)
    assert err.startswith(f"{bad_state}:4: state_map: SUCCESS: 'IN_PROGRESS' is not a terminal Compass state")


def test_a_result_map_maps_to_terminal_states_only(tmp_path: Path) -> None:
    """A result is what a finished run got: IN_PROGRESS is no result (a result file says a run is
    still going with ``state: IN_PROGRESS``, a log with its start line)."""
    path = write(
        tmp_path,
        """
        sources:
          - type: log
            paths: [/var/log/ci/*.log]
            rules:
              finish: 'END (?P<id>\\d+) (?P<result>\\w+)'
              pipeline: nightly
              result_map: {running: IN_PROGRESS, ok: SUCCESSFUL}
          - type: result_file
            paths: [/tmp/results/*.json]
            result_map: {Busy: IN_PROGRESS, reverted: ROLLED_BACK}
        """,
    )
    refused = "'IN_PROGRESS' is not a terminal Compass state"
    terminal = "(SUCCESSFUL, CANCELLED, FAILED, ERROR, TIMED_OUT, UNKNOWN, ROLLED_BACK)"
    assert errors_of(path) == [
        f"{path}:7: sources[0].rules.result_map: running: {refused} {terminal}",
        f"{path}:10: sources[1].result_map: Busy: {refused} {terminal}",
    ]


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert errors_of(path) == [f"{path}:1: (top level): the file is empty"]
    comments = write(tmp_path, "# nothing here\n", "c.yaml")
    assert errors_of(comments) == [f"{comments}:1: (top level): the file is empty"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:1: (top level): cannot read the file:")


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - type: jenkins\n    home: [unclosed\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:4: (top level): not valid YAML:")


def test_yaml_list_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    assert errors_of(path) == [f"{path}:1: (top level): expected a mapping of settings"]


def test_duplicate_keys(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        log_level: info
        sources:
          - type: jenkins
            home: jenkins
            home: jenkins
        log_level: debug
        """,
    )
    assert errors_of(path) == [
        f"{path}:5: sources[0].home: duplicate key",
        f"{path}:6: log_level: duplicate key",
    ]


def test_two_sources_with_the_same_name(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            name: ci
            home: jenkins
          - type: jenkins
            name: ci
            home: jenkins
        """,
    )
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:")
    assert "two sources are named 'ci'" in err


def test_duplicate_source_name_is_named(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            name: dup-name-xyz
            home: jenkins
          - type: jenkins
            name: dup-name-xyz
            home: jenkins
        """,
    )
    (err,) = errors_of(path)
    assert "dup-name-xyz" in err


def test_settings_model_validate_without_file(tmp_path: Path) -> None:
    s = Settings.model_validate(
        {"host": "ci.example.com", "sources": [{"type": "jenkins", "home": str(tmp_path)}]}
    )
    assert s.host == "ci.example.com"
    assert s.sources[0].home == tmp_path


# --- typos get a suggestion -------------------------------------------------------------------------


def test_a_misspelt_key_gets_the_closest_key_of_its_own_section(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          site: example.atlassian.net
          api_token: plain
          rate_limit_per_minut: 50
        sources:
          - type: log
            paths: [/var/log/ci/*.log]
            rules: {finish: 'END (?P<id>\\d+) (?P<result>\\w+)', pipline: nightly}
            wtch: polling
          - preset: gocd
            home: jenkins
            timezon: Europe/Berlin
        lgo_level: debug
        colour: red
        """,
    )
    errors = errors_of(path)
    assert errors == [
        f"{path}:6: compass.rate_limit_per_minut: unknown key (did you mean rate_limit_per_minute?)",
        f"{path}:10: sources[0].rules.pipline: unknown key (did you mean pipeline?)",
        f"{path}:11: sources[0].wtch: unknown key (did you mean watch?)",
        f"{path}:14: sources[1].timezon: unknown key (did you mean timezone?)",  # a preset's source
        f"{path}:15: lgo_level: unknown key (did you mean log_level?)",
        f"{path}:16: colour: unknown key",  # nothing close: no guess
    ]


def test_a_misspelt_value_gets_the_closest_allowed_value(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        log_level: INF
        log_format: yaml
        sources:
          - type: jenkins
            home: jenkins
            watch: inotfy
          - type: result_file
            paths: [/tmp/results/*.json]
            format: cruisecontrl
        """,
    )
    assert errors_of(path) == [
        f"{path}:1: log_level: Input should be 'debug', 'info', 'warning' or 'error' (did you mean info?)",
        f"{path}:2: log_format: Input should be 'text' or 'json'",
        f"{path}:6: sources[0].watch: Input should be 'inotify' or 'polling' (did you mean inotify?)",
        f"{path}:9: sources[1].format: Input should be 'auto', 'cruisecontrol' or 'gocd'"
        " (did you mean cruisecontrol?)",
    ]


def test_a_misspelt_source_type_or_preset_is_named_where_it_is(tmp_path: Path, home: Path) -> None:
    path = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: jenkins
          - type: jenkin
            home: jenkins
          - type: teamcity
            home: jenkins
        """,
    )
    assert errors_of(path) == [
        f"{path}:4: sources[1].type: unknown type 'jenkin' (did you mean jenkins?)",
        f"{path}:6: sources[2].type: unknown type 'teamcity'"
        " (expected jenkins, log, result_file or a preset)",
    ]
    presets = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: jenkins
          - preset: gocdd
            home: jenkins
        """,
        name="presets.yaml",
    )
    assert errors_of(presets) == [
        f"{presets}:4: sources[1].preset: unknown preset 'gocdd': cruisecontrol or gocd (did you mean gocd?)"
    ]
    gocd = write(
        tmp_path,
        """
        sources:
          - preset: cruisecontrol
            home: jenkins
          - preset: gocd
            home: jenkins
            rules: {finish: x}
        """,
        name="gocd.yaml",
    )
    [error] = errors_of(gocd)
    assert error.startswith(f"{gocd}:4: sources[1].preset: preset gocd: rules: not used any more")
    assert "did you mean" not in error


# --- deployments --------------------------------------------------------------------------------------

DEPLOYMENTS = """
compass:
  cloud_id: cloud-1
  email: bot@example.com
  site: example.atlassian.net
  api_token: plain
  deployments:
    - match: "deploy-*"
      environment: {category: PRODUCTION, name: production, id: prod}
    - match: "release/**"
      environment_parameter: TARGET_ENV
      environments:
        staging: {category: STAGING, name: staging}
        live: {category: PRODUCTION, name: production, id: prod}
sources:
  - type: jenkins
    home: jenkins
"""


def test_deployments_by_job_and_by_parameter(tmp_path: Path, home: Path) -> None:
    s = load_settings(write(tmp_path, DEPLOYMENTS))
    prod = s.deployment_for("jenkins", "deploy-shop", {})
    assert prod is not None and (prod.category, prod.name, prod.environment_id) == (
        "PRODUCTION",
        "production",
        "prod",
    )
    assert s.deployment_for("jenkins", "build-shop", {}) is None, "not a deployment job: a build"
    staging = s.deployment_for("jenkins", "release/shop/api", {"TARGET_ENV": "staging"})
    assert staging is not None and (staging.category, staging.environment_id) == ("STAGING", "staging")
    elsewhere = s.deployment_for("jenkins", "release/shop", {"TARGET_ENV": "qa-7"})
    assert elsewhere is not None and (elsewhere.category, elsewhere.name) == ("UNMAPPED", "qa-7")
    assert s.deployment_for("jenkins", "release/shop", {}) is None, "no parameter: nothing says where it went"


def test_a_bad_category_or_environment_map_is_reported_where_it_is(tmp_path: Path, home: Path) -> None:
    text = DEPLOYMENTS.replace(
        "category: PRODUCTION, name: production, id: prod}\n    - match",
        ("category: PRODUCTON, name: production, id: prod}\n    - match"),
    ).replace("staging: {category: STAGING, name: staging}", "staging: STAGING")
    errors = errors_of(write(tmp_path, text))
    assert any(
        ":8: compass.deployments[0].environment.category:" in e and "did you mean PRODUCTION" in e
        for e in errors
    ), errors
    staging = ":11: compass.deployments[1].environments: staging: expected an environment such as"
    assert any(staging in e and "{category: STAGING, name: staging}" in e for e in errors), errors


def test_a_deployment_rule_says_where_in_one_way(tmp_path: Path, home: Path) -> None:
    text = DEPLOYMENTS.replace("      environment_parameter: TARGET_ENV\n", "")
    errors = errors_of(write(tmp_path, text))
    assert any("compass.deployments[1]:" in e and "environment_parameter" in e for e in errors), errors
    text = DEPLOYMENTS.replace('    - match: "deploy-*"\n', '    - match: "deploy-*"\n      source: jenkns\n')
    errors = errors_of(write(tmp_path, text))
    assert any("no source is named 'jenkns'" in e for e in errors), errors


def test_rolled_back_is_a_result_a_deployment_may_end_in(tmp_path: Path, home: Path) -> None:
    s = load_settings(write(tmp_path, DEPLOYMENTS + "state_map: {ABORTED: ROLLED_BACK}\n"))
    assert state_of(s, "ABORTED") == "ROLLED_BACK"


def test_what_counts_keys_and_their_errors(tmp_path: Path, home: Path) -> None:
    ok = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: jenkins
            branches: primary
            pull_requests: false
            tags: false
            exclude: [housekeeping/*]
          - type: result_file
            name: scripts
            paths: [results/*.json]
            include: [deploy-*]
        """,
    )
    jenkins, scripts = load_settings(ok).sources
    assert isinstance(jenkins, JenkinsSourceSettings)
    assert (jenkins.branches, jenkins.pull_requests, jenkins.tags) == ("primary", False, False)
    assert jenkins.exclude == ("housekeeping/*",) and jenkins.include == ("**",)
    assert scripts.include == ("deploy-*",) and scripts.exclude == ()
    bad = write(
        tmp_path,
        """
        sources:
          - type: jenkins
            home: jenkins
            branches: main
            exclude: housekeeping/*
            include: []
          - type: log
            paths: [x.log]
            rules: {finish: '^END (?P<name>\\S+) (?P<id>\\d+)$'}
            tags: false
        """,
        name="bad.yaml",
    )
    errors = errors_of(bad)
    assert any(
        "bad.yaml:4: sources[0].branches: 'main': expected all, primary, or a list of globs" in e
        for e in errors
    ), errors
    assert any(
        "bad.yaml:5: sources[0].exclude: expected a list of globs, such as ['housekeeping/*']" in e
        for e in errors
    )
    assert any("bad.yaml:6: sources[0].include: an empty include counts no job" in e for e in errors), errors
    assert any("sources[1].tags: unknown key" in e for e in errors), errors  # branch rules are Jenkins'
