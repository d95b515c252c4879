"""The network settings as ``check-config`` sees them: compass.proxy, its credentials file and
compass.ca_file are refused with a message that says what to do, and a secret is never echoed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daemon.config import ConfigError, load_settings
from tests.proxy_net import CompanyCA
from tools.daemon_process import REPO

PASSWORD = "pr0xy-Pa55-never-shown"


def config(tmp_path: Path, **compass: str) -> Path:
    (tmp_path / "jenkins").mkdir(exist_ok=True)
    extra = "".join(f"  {key}: {value!r}\n" for key, value in compass.items())
    text = textwrap.dedent(
        """\
        compass:
          cloud_id: cloud-1
          email: bot@example.com
          site: example.atlassian.net
          api_token: plain
        """
    )
    path = tmp_path / "buildtail.yaml"
    path.write_text(text + extra + "sources:\n  - type: jenkins\n    home: jenkins\n")
    return path


def check(path: Path) -> tuple[int, str]:
    """``buildtail check-config`` as an operator runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "check-config", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def errors(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return "\n".join(info.value.errors)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"http://builder:{PASSWORD}@proxy.example:3128", "compass.proxy_credentials_file"),
        ("socks5://proxy.example:1080", "proxy scheme 'socks5' is not supported"),
        ("proxy.example:3128", "expected a proxy URL with its scheme"),
        ("http://proxy.example", "expected a proxy URL with host and port"),
        ("http://proxy.example:3128/path", "expected a proxy URL with host and port"),
    ],
)
def test_bad_proxy_urls_are_refused(tmp_path: Path, value: str, expected: str) -> None:
    path = config(tmp_path, proxy=value)
    assert expected in errors(path)
    code, output = check(path)
    assert code == 2 and expected in output
    assert PASSWORD not in output


@pytest.mark.parametrize(
    ("value", "kept"), [("", ""), ("http://proxy.example:3128/", "http://proxy.example:3128")]
)
def test_good_proxy_values(tmp_path: Path, value: str, kept: str) -> None:
    settings = load_settings(config(tmp_path, proxy=value))
    assert settings.compass is not None and settings.compass.proxy == kept


def test_credentials_file_is_checked_and_never_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "proxy-credentials"
    secret.write_text(f"{PASSWORD}\n")  # no user: part
    path = config(tmp_path, proxy="http://proxy.example:3128", proxy_credentials_file=str(secret))
    code, output = check(path)
    assert code == 2 and "expected one line user:password" in output, output
    assert PASSWORD not in output
    secret.write_text(f"builder:{PASSWORD}\n")
    secret.chmod(0o644)
    code, output = check(path)
    assert code == 0, output
    assert "proxy_credentials_file" in output and "readable by every user" in output
    assert PASSWORD not in output
    settings = load_settings(path)
    assert PASSWORD not in repr(settings) and PASSWORD not in repr(settings.compass)


def test_missing_credentials_file(tmp_path: Path) -> None:
    path = config(tmp_path, proxy_credentials_file=str(tmp_path / "nope"))
    assert "file does not exist" in errors(path)


def test_ca_file_must_exist_and_be_pem(tmp_path: Path, company_ca: CompanyCA) -> None:
    assert "file does not exist" in errors(config(tmp_path, ca_file=str(tmp_path / "missing.pem")))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    code, output = check(config(tmp_path, ca_file=str(garbage)))
    assert code == 2 and "not a PEM bundle" in output, output
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert "not a PEM bundle of CA certificates" in errors(config(tmp_path, ca_file=str(broken)))
    code, output = check(config(tmp_path, ca_file=str(company_ca.ca_file)))
    assert code == 0, output
