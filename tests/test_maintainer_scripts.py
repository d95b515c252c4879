"""The maintainer scripts' jenkins group drop-in, run for real in a fresh root with and without the group.

The unit names no group: a SupplementaryGroups= naming a group the host lacks fails every start, so
debian/buildtail.postinst writes systemd/jenkins.conf as a drop-in where a jenkins group exists and
removes it where none does, and debian/buildtail.postrm removes it on purge. Each test builds a
minimal root (a shell, getent and the few tools the scripts call, with their libraries), lays the
package's copy of the drop-in where the package puts it, and runs the script from the checkout with
chroot, as dpkg runs it: `postinst configure`, `postrm purge`. Skips where that is impossible (not
root, no chroot, no ldd).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DROPIN_SOURCE = REPO / "systemd" / "jenkins.conf"
PACKAGED = "usr/share/buildtail/jenkins.conf"  # where debian/rules installs it
DROPIN_DIR = "etc/systemd/system/buildtail.service.d"
TOOLS = ("sh", "getent", "mkdir", "cp", "chmod", "mv", "rm", "rmdir")
OVERRIDE = "[Service]\nSupplementaryGroups=\nSupplementaryGroups=ci\n"  # what `systemctl edit` leaves


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"(/\S+) \(0x", out)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root holding only what the scripts run, an /etc/group without a jenkins group, and the
    packaged drop-in."""
    if os.geteuid() != 0 or shutil.which("chroot") is None or shutil.which("ldd") is None:
        pytest.skip("running the maintainer scripts in a chroot needs root, chroot and ldd")
    base = tmp_path / "root"
    (base / "usr" / "bin").mkdir(parents=True)
    (base / "bin").symlink_to("usr/bin")
    for tool in TOOLS:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} is not installed")
        shutil.copy2(os.path.realpath(found), base / "usr" / "bin" / tool)
        for lib in _libraries(found):
            target = base / lib.lstrip("/")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.realpath(lib), target)
    (base / "etc").mkdir()
    (base / "etc" / "nsswitch.conf").write_text("passwd: files\ngroup: files\n")
    (base / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (base / "etc" / "group").write_text("root:x:0:\nadm:x:4:\n")
    (base / PACKAGED).parent.mkdir(parents=True)
    shutil.copy2(DROPIN_SOURCE, base / PACKAGED)
    (base / "tmp").mkdir()
    (base / "dev").mkdir()
    os.mknod(base / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the scripts write to it
    return base


def _add_jenkins_group(root: Path) -> None:
    with (root / "etc" / "group").open("a") as group:
        group.write("jenkins:x:3111:\n")


def _run(root: Path, script: str, *args: str) -> None:
    shutil.copy2(REPO / "debian" / script, root / "tmp" / script)
    proc = subprocess.run(
        ["chroot", str(root), "/bin/sh", f"/tmp/{script}", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert proc.returncode == 0, f"{script} {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}"


def test_the_chroot_answers_for_the_group_as_the_host_would(root: Path) -> None:
    """The getent the script asks is the root's own: without this, the tests below prove nothing."""
    query = ["chroot", str(root), "getent", "group", "jenkins"]
    assert subprocess.run(query, capture_output=True, check=False).returncode == 2
    _add_jenkins_group(root)
    assert subprocess.run(query, capture_output=True, text=True, check=True).stdout == "jenkins:x:3111:\n"


def test_configure_without_a_jenkins_group_writes_no_drop_in(root: Path) -> None:
    _run(root, "buildtail.postinst", "configure", "")
    assert not (root / DROPIN_DIR).exists()


def test_configure_with_a_jenkins_group_writes_the_drop_in(root: Path) -> None:
    _add_jenkins_group(root)
    _run(root, "buildtail.postinst", "configure", "")
    written = root / DROPIN_DIR / "jenkins.conf"
    assert written.read_text() == DROPIN_SOURCE.read_text()
    assert "\nSupplementaryGroups=jenkins\n" in written.read_text()
    assert written.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in (root / DROPIN_DIR).iterdir()) == ["jenkins.conf"]  # no temporary left
    # an upgrade configures again: same file, nothing added
    _run(root, "buildtail.postinst", "configure", "0.2.0")
    assert sorted(p.name for p in (root / DROPIN_DIR).iterdir()) == ["jenkins.conf"]


def test_configure_after_the_group_went_removes_the_drop_in_and_keeps_the_operator_s(root: Path) -> None:
    _add_jenkins_group(root)
    _run(root, "buildtail.postinst", "configure", "")
    (root / DROPIN_DIR / "override.conf").write_text(OVERRIDE)
    (root / "etc" / "group").write_text("root:x:0:\nadm:x:4:\n")  # Jenkins uninstalled
    _run(root, "buildtail.postinst", "configure", "0.2.0")
    assert sorted(p.name for p in (root / DROPIN_DIR).iterdir()) == ["override.conf"]
    assert (root / DROPIN_DIR / "override.conf").read_text() == OVERRIDE


def test_purge_removes_the_drop_in_and_keeps_the_operator_s(root: Path) -> None:
    _add_jenkins_group(root)
    _run(root, "buildtail.postinst", "configure", "")
    _run(root, "buildtail.postrm", "remove")
    assert (root / DROPIN_DIR / "jenkins.conf").is_file()  # remove keeps configuration
    (root / DROPIN_DIR / "override.conf").write_text(OVERRIDE)
    _run(root, "buildtail.postrm", "purge")
    assert sorted(p.name for p in (root / DROPIN_DIR).iterdir()) == ["override.conf"]
    (root / DROPIN_DIR / "override.conf").unlink()
    _run(root, "buildtail.postinst", "configure", "")
    _run(root, "buildtail.postrm", "purge")
    assert not (root / DROPIN_DIR).exists()
