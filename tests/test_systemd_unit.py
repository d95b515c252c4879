"""The shipped unit file: systemd-analyze finds nothing to say about it and scores it 2.0 or lower."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "buildtail.service"
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


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_prints_nothing(unit: Path) -> None:
    assert ANALYZE is not None
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
