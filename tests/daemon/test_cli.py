"""The command line's smaller promises: the example configuration, config-schema, warnings, log formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _example(tmp_path: Path) -> Path:
    """config.example.yaml with its two absolute paths moved into tmp_path."""
    (tmp_path / "jenkins").mkdir()
    text = (REPO / "config.example.yaml").read_text()
    text = text.replace("/var/lib/jenkins", str(tmp_path / "jenkins")).replace(
        "/var/lib/buildtail", str(tmp_path / "state")
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_the_example_configuration_is_valid(tmp_path: Path) -> None:
    token = tmp_path / "compass-api-token"  # where systemd's LoadCredential= puts it for the service
    token.write_text("t\n")
    token.chmod(0o600)
    proc = _run(
        "check-config", "--config", str(_example(tmp_path)), env={"CREDENTIALS_DIRECTORY": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout and proc.stderr == ""


def test_config_schema_is_a_json_schema_that_accepts_the_example(tmp_path: Path) -> None:
    proc = _run("config-schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    example = yaml.safe_load(_example(tmp_path).read_text())
    jsonschema.validate(example, schema)
    bad = dict(example, colour="blue")
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(bad)), "unknown keys are errors there too"
    durations = schema["$defs"]["JenkinsSourceSettings"]["properties"]["poll_interval"]
    jsonschema.validate("500ms", durations)


def test_check_config_warns_about_a_readable_token_file_and_plain_http(tmp_path: Path) -> None:
    (tmp_path / "jenkins").mkdir()
    token = tmp_path / "token"
    token.write_text("secret-value\n")
    token.chmod(0o644)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "compass:\n"
        "  base_url: http://compass-proxy.example.com/gateway/api\n"
        "  cloud_id: c\n"
        "  email: a@example.com\n"
        f"  api_token_file: {token}\n"
        "sources:\n"
        f"  - {{type: jenkins, home: {tmp_path / 'jenkins'}}}\n"
    )
    proc = _run("check-config", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert "readable by every user" in proc.stderr
    assert "plain http" in proc.stderr
    assert "secret-value" not in proc.stdout + proc.stderr
    token.chmod(0o600)
    cfg.write_text(cfg.read_text().replace("http://compass-proxy.example.com", "http://127.0.0.1:8080"))
    quiet = _run("check-config", "--config", str(cfg))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


LOGGING = """
import logging, sys
from daemon.ops.logs import setup_logging
setup_logging("info", sys.argv[1])
logging.getLogger("buildtail").warning("disk %s", "full")
"""


def test_json_log_lines() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LOGGING, "json"], cwd=REPO, capture_output=True, text=True, check=True
    )
    entry = json.loads(proc.stderr)
    assert entry["level"] == "warning" and entry["msg"] == "disk full" and entry["logger"] == "buildtail"


def test_journald_lines_carry_priority_and_no_timestamp(tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    with open(err, "w") as fh:
        st = os.fstat(fh.fileno())
        subprocess.run(
            [sys.executable, "-c", LOGGING, "text"],
            cwd=REPO,
            stderr=fh,
            check=True,
            env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
        )
    assert err.read_text() == "<4>buildtail: disk full\n"


HEAVY = ("aiohttp", "pydantic", "watchdog", "prometheus_client")

_IMPORTS = """
import json, sys
from daemon.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}), file=sys.stderr)
"""


def _imports_of(*args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS % (HEAVY,), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    result: dict[str, object] = json.loads(proc.stderr.strip().splitlines()[-1])
    return result


def test_version_and_status_do_not_load_the_daemon(tmp_path: Path) -> None:
    """``--version`` and ``status`` answer at once: no network stack, models or file watcher."""
    from daemon.store import Store

    config = _example(tmp_path)
    Store(tmp_path / "state").close()  # a daemon ran once
    assert _imports_of("--version") == {"code": 0, "heavy": []}
    status = _imports_of("status", "--config", str(config))
    assert status["heavy"] == [] and status["code"] == 3  # no process delivers: exit 3
    checked = _imports_of("check-config", "--config", str(config))  # this one needs the models
    assert "pydantic" in checked["heavy"] and "aiohttp" not in checked["heavy"]  # type: ignore[operator]


def test_the_version_is_the_packages(tmp_path: Path) -> None:
    import tomllib

    from daemon import __version__

    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"] == __version__
    assert _run("--version").stdout.strip() == f"buildtail {__version__}"


def test_status_reads_only_where_the_state_is(tmp_path: Path) -> None:
    """No credentials, no validation of the rest: an operator's shell can always ask."""
    from daemon.config.light import read_status_settings

    (tmp_path / "c.yaml").write_text(
        "state_dir: ${NOT_SET_HERE}/x\ncompass:\n  api_token: ${ALSO_NOT_SET}\nsources: nonsense\n"
    )
    try:
        read_status_settings(tmp_path / "c.yaml")
    except Exception as exc:
        assert "NOT_SET_HERE" in str(exc)
    else:
        raise AssertionError("an unset variable in state_dir is an error")
    (tmp_path / "c.yaml").write_text("state_dir: st\ncompass:\n  api_token: ${ALSO_NOT_SET}\n")
    light = read_status_settings(tmp_path / "c.yaml")
    assert light.state_dir == tmp_path / "st" and light.compass is not None
    (tmp_path / "c.yaml").write_text("sources: []\n")
    assert read_status_settings(tmp_path / "c.yaml").compass is None
