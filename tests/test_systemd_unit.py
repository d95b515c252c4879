"""The shipped unit file: systemd-analyze finds nothing to say about it and scores it 2.0 or lower."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "buildtail.service"
JENKINS_DROPIN = UNIT.with_name("jenkins.conf")  # the Debian package installs it where a jenkins group exists
ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's buildtail (verify checks it exists)."""
    exe = Path(sys.executable).with_name("buildtail")
    if not exe.exists():
        pytest.skip("buildtail is not installed in this environment")
    text = UNIT.read_text().replace("/opt/venvs/buildtail/bin/buildtail", str(exe))
    path = tmp_path / "buildtail.service"
    path.write_text(text)
    return path


def test_unit_has_the_promised_settings() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=buildtail",
        "LoadCredential=compass-api-token:",
        "NotifyAccess=main",
        "ExecReload=",
    ):
        assert re.search(rf"^{re.escape(line)}", text, re.M), line


def _settings(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^([A-Za-z]+)=(.*)$", text, re.M)


def test_the_unit_starts_on_a_host_without_jenkins() -> None:
    """systemd fails a start on a SupplementaryGroups= group the host lacks (216/GROUP) and, with the
    namespace settings, on a listed path that does not exist (226/NAMESPACE) unless it starts with "-".
    GoCD, CruiseControl and log-file hosts have neither the jenkins group nor /var/lib/jenkins."""
    settings = _settings(UNIT.read_text())
    assert [v for k, v in settings if k == "SupplementaryGroups"] == []
    paths = [
        path
        for key, value in settings
        if key in ("ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths")
        for path in value.split()
    ]
    assert "-/var/lib/jenkins" in paths
    assert [p for p in paths if not p.startswith("-")] == []


def test_the_jenkins_drop_in_adds_the_group_and_nothing_else() -> None:
    assert _settings(JENKINS_DROPIN.read_text()) == [("SupplementaryGroups", "jenkins")]
    assert re.search(r"^\[Service\]$", JENKINS_DROPIN.read_text(), re.M)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("with_jenkins", [False, True], ids=["without-jenkins", "with-jenkins-drop-in"])
def test_systemd_analyze_verify_prints_nothing(unit: Path, with_jenkins: bool) -> None:
    assert ANALYZE is not None
    if with_jenkins:  # verify reads <unit>.d/ beside a unit given by path
        (unit.parent / f"{unit.name}.d").mkdir()
        shutil.copy(JENKINS_DROPIN, unit.parent / f"{unit.name}.d" / "jenkins.conf")
    proc = subprocess.run(
        [ANALYZE, "verify", unit.name], cwd=unit.parent, capture_output=True, text=True, check=False
    )
    # verify exits 0 on misspelt keys and only warns: any output at all is a failure
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stdout + proc.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_security_score(unit: Path) -> None:
    assert ANALYZE is not None
    proc = subprocess.run(
        [ANALYZE, "security", "--offline=true", unit.name],
        cwd=unit.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 2.0, match.group(0)
