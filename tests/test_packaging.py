"""The Debian package, built by `make deb` and handled the way an operator handles it.

The build takes tens of seconds, so it runs once per test session, and everything here skips where the
build tools (dpkg-buildpackage, dh_virtualenv) are missing. The install tests change the machine: they
run only as root, never over an installed buildtail or an existing state directory, and purge the
package afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _host_python() -> str:
    """/usr/bin/python3's name with its minor version: the interpreter `make deb` builds the venv with
    (the tests themselves may run on another Python)."""
    out = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print('python%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _deb_version() -> str:
    """The binary package's version: the changelog's, plus the distribution's suffix `make deb` adds."""
    release = dict(
        line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
    )
    os_id, version_id = (release.get(k, "").strip('"') for k in ("ID", "VERSION_ID"))
    changelog = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    match = re.match(r"buildtail \(([^)]+)\)", changelog)
    assert match, changelog
    return f"{match[1]}~{os_id.replace('debian', 'deb')}{version_id}"


VENV = "/opt/venvs/buildtail"
UNIT = "/lib/systemd/system/buildtail.service"  # debhelper 13 on Debian 12 installs units there
CONFIG = Path("/etc/buildtail/config.yaml")
STATE_LINK = Path("/var/lib/buildtail")  # DynamicUser=yes: a symlink to the directory below
STATE_DIR = Path("/var/lib/private/buildtail")

# The first test to ask for the package waits for the build.
pytestmark = pytest.mark.timeout(900)


def _run(
    *cmd: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in ("dpkg-buildpackage", "dh_virtualenv", "make", "git") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the Debian build tools are not installed: {', '.join(missing)}")
    if not (REPO / ".git").exists():
        pytest.skip("make deb builds from a git checkout")
    out = tmp_path_factory.mktemp("deb")
    # the build makes its own venv from /usr/bin/python3.X; nothing of the test's venv may leak into it
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(
        ["make", "-C", str(REPO), "deb", f"DEB_DIR={out}"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    (path,) = out.glob("buildtail_*.deb")
    return path


@pytest.fixture(scope="session")
def contents(deb: Path) -> dict[str, str]:
    """Every path in the package -> its `dpkg-deb --contents` line (mode, owner, size, link target)."""
    out: dict[str, str] = {}
    for line in _run("dpkg-deb", "--contents", str(deb)).stdout.splitlines():
        name = line.split(None, 5)[5]
        out[name.split(" -> ")[0].removeprefix(".").rstrip("/") or "/"] = line
    return out


@pytest.fixture(scope="session")
def control(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("control")
    _run("dpkg-deb", "--control", str(deb), str(path))
    return path


@pytest.fixture(scope="session")
def extracted(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("root")
    _run("dpkg-deb", "-x", str(deb), str(path))
    return path


def _installed_version() -> str | None:
    proc = _run("dpkg-query", "-W", "-f", "${Status} ${Version}", "buildtail", check=False)
    return proc.stdout.split()[-1] if proc.returncode == 0 and "installed" in proc.stdout else None


@pytest.fixture(scope="module")
def installed(deb: Path) -> Iterator[None]:
    """The package installed system-wide with dpkg; purged afterwards."""
    if os.geteuid() != 0:
        pytest.skip("installing the package needs root")
    if _run("dpkg-query", "-W", "buildtail", check=False).returncode == 0:
        pytest.skip("a buildtail package is already on this machine; not touching it")
    leftovers = [p for p in (Path(VENV), CONFIG.parent, STATE_DIR) if os.path.lexists(p)]
    if leftovers or os.path.lexists(STATE_LINK):
        pytest.skip(f"not installing over existing files: {leftovers or [STATE_LINK]}")
    _run("dpkg", "-i", str(deb))
    try:
        yield
    finally:
        _run("dpkg", "--purge", "buildtail", check=False)


# --- the sources of the package ------------------------------------------------------------------------


def test_the_debian_version_is_the_project_version() -> None:
    first = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    assert re.match(rf"buildtail \({re.escape(VERSION)}-\d+\) ", first), (first, VERSION)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_there_is_a_hashed_lock_for_every_tested_python() -> None:
    """debian/rules installs the venv from requirements/lock-py3XX.txt and the build backend from
    build-py3XX.txt only: each Python the classifiers name has both, every entry is pinned with its
    hashes, and the runtime lock covers every dependency in pyproject.toml with a version its range
    allows (a range moved without a new lock would otherwise ship versions pyproject rules out)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    tested = [
        c.rsplit(" :: ", 1)[1] for c in pyproject["project"]["classifiers"] if re.search(r" :: 3\.\d+$", c)
    ]
    assert tested
    entry = re.compile(
        r"^([A-Za-z0-9._-]+)==([^\s\\]+) \\\n(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", re.M
    )
    for version in tested:
        for kind, wanted in (
            ("lock", pyproject["project"]["dependencies"]),
            ("build", pyproject["build-system"]["requires"]),
        ):
            text = (REPO / "requirements" / f"{kind}-py{version.replace('.', '')}.txt").read_text()
            listed = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
            pinned = {_normalized(name): pin for name, pin in entry.findall(text)}
            assert len(pinned) == len(listed), (version, kind, listed)
            for requirement in map(Requirement, wanted):
                pin = pinned.get(_normalized(requirement.name))
                assert pin is not None, (version, kind, str(requirement))
                assert requirement.specifier.contains(pin, prereleases=True), (
                    version,
                    kind,
                    str(requirement),
                    pin,
                )


def test_the_manual_page_lists_every_command() -> None:
    help_text = _run(sys.executable, "-m", "daemon", "--help").stdout
    section = help_text.split("COMMAND\n", 1)[1].split("\noptions:", 1)[0]
    commands = re.findall(r"^ {4}(\S+)", section, re.M)
    assert "run" in commands and "check-config" in commands, help_text
    page = (REPO / "debian" / "buildtail.1").read_text().replace("\\-", "-")
    for command in commands:
        assert re.search(rf"^\.B {re.escape(command)}\b", page, re.M), command


def test_the_packaging_picks_up_a_monitoring_directory(tmp_path: Path) -> None:
    """The rule that copies monitoring/, run on a copy of the sources that has one (the package of the
    checkout as it is shows the other case)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copytree(REPO / "debian", tmp_path / "debian", symlinks=True)
    shutil.copytree(REPO / "systemd", tmp_path / "systemd")
    shutil.copy(REPO / "config.example.yaml", tmp_path)
    (tmp_path / "monitoring" / "grafana").mkdir(parents=True)
    (tmp_path / "monitoring" / "grafana" / "dashboard.json").write_text("{}\n")
    (tmp_path / "monitoring" / "alerts.yaml").write_text("groups: []\n")
    subprocess.run(
        ["make", "-f", "debian/rules", "execute_after_dh_install"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    shipped = tmp_path / "debian" / "buildtail" / "usr" / "share" / "buildtail" / "monitoring"
    assert sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file()) == [
        "alerts.yaml",
        "grafana/dashboard.json",
    ]


# --- the package -----------------------------------------------------------------------------------------


def test_the_package_ships_the_command_the_unit_and_the_configuration(contents: dict[str, str]) -> None:
    assert contents["/usr/bin/buildtail"].endswith(f"-> {VENV}/bin/buildtail")
    assert contents[f"{VENV}/bin/buildtail"].startswith("-rwxr-xr-x root/root")
    python = _host_python()
    assert contents[f"{VENV}/bin/{python}"].endswith(f"-> /usr/bin/{python}")
    for module in ("daemon/cli.py", "daemon/service.py", "parsers/jenkins_xml.py", "aiohttp/__init__.py"):
        assert f"{VENV}/lib/{python}/site-packages/{module}" in contents, module
    assert contents[UNIT].startswith("-rw-r--r-- root/root")
    assert contents[str(CONFIG)].startswith("-rw-r--r-- root/root")  # the dynamic user must read it
    assert "/usr/share/man/man1/buildtail.1.gz" in contents
    # systemd makes the state directory (StateDirectory=); the package owns nothing under /var
    assert not [p for p in contents if p.startswith("/var")]
    # byte code is compiled on the machine (postinst), and pip is not left in a venv dpkg manages
    assert not [p for p in contents if "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in contents if "site-packages/pip" in p or p.endswith("/bin/pip")]
    monitoring = sorted(p for p in contents if p.startswith("/usr/share/buildtail/monitoring/"))
    if (REPO / "monitoring").is_dir():
        expected = [p for p in (REPO / "monitoring").rglob("*") if p.is_file()]
        for path in expected:
            assert f"/usr/share/buildtail/{path.relative_to(REPO).as_posix()}" in monitoring, path
    else:
        assert not monitoring
    # the jenkins group drop-in, which postinst installs only where that group exists
    assert contents["/usr/share/buildtail/jenkins.conf"].startswith("-rw-r--r-- root/root")
    assert not [p for p in contents if p.startswith("/etc/systemd")]


def test_the_packaged_files_are_the_checkout_s(extracted: Path) -> None:
    assert (extracted / UNIT.lstrip("/")).read_text() == (REPO / "systemd" / "buildtail.service").read_text()
    assert (extracted / str(CONFIG).lstrip("/")).read_text() == (REPO / "config.example.yaml").read_text()
    shipped_dropin = extracted / "usr/share/buildtail/jenkins.conf"
    assert shipped_dropin.read_text() == (REPO / "systemd" / "jenkins.conf").read_text()
    # entry points run the venv's interpreter at its installed path, not at the build directory's
    for script in (extracted / VENV.lstrip("/") / "bin").iterdir():
        if script.is_file() and not script.is_symlink() and script.read_bytes().startswith(b"#!"):
            assert script.read_text().splitlines()[0] == f"#!{VENV}/bin/python", script


def test_control_fields_and_conffiles(deb: Path, control: Path) -> None:
    info = _run("dpkg-deb", "--info", str(deb)).stdout
    fields = dict(re.findall(r"^ (\S+): (.*)$", info, re.M))
    assert fields["Package"] == "buildtail" and fields["Version"] == _deb_version()
    # the venv runs the Python it was built with: the package depends on that minor version
    assert _host_python() in re.split(r",\s*", fields["Depends"])
    assert fields["Maintainer"] == "buildtail maintainers <buildtail@example.org>"
    # /etc/buildtail/config.yaml is a conffile: dpkg keeps the operator's edits across upgrades
    assert (control / "conffiles").read_text().split() == [str(CONFIG)]
    for script in ("preinst", "postinst", "prerm", "postrm"):
        if (control / script).exists():
            _run("sh", "-n", str(control / script))


def test_maintainer_scripts_neither_enable_nor_start_but_restart_on_upgrade(control: Path) -> None:
    postinst = (control / "postinst").read_text()
    prerm = (control / "prerm").read_text()
    preinst = (control / "preinst").read_text() if (control / "preinst").exists() else ""
    # installing neither enables nor starts the unit (enable only re-applies an operator's earlier enable)
    assert "deb-systemd-invoke start" not in postinst
    assert postinst.count("deb-systemd-helper enable") == 1
    assert re.search(
        r"was-enabled 'buildtail.service'; then\s+# [^\n]*\n\s+deb-systemd-helper enable", postinst
    )
    # an upgrade restarts a running daemon once the new files are in place, and does not stop it before
    assert re.search(r"deb-systemd-invoke try-restart 'buildtail.service'", postinst)
    assert "deb-systemd-invoke stop" not in preinst
    # removing the package stops a running daemon first
    assert re.search(r'"\$1" = remove .*\n\s+deb-systemd-invoke stop buildtail.service', prerm)


def test_lintian_finds_nothing_that_is_not_explained(deb: Path) -> None:
    """Tags inherent to a virtual environment under /opt are overridden with reasons in
    debian/buildtail.lintian-overrides; anything else at warning or error level fails."""
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed")
    proc = _run("lintian", "--pedantic", "--display-info", str(deb), check=False)
    tags = [line for line in proc.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
    assert not [t for t in tags if t[0] in "EW"], "\n".join(tags) + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- installed ------------------------------------------------------------------------------------------


def test_the_installed_command_runs(installed: None) -> None:
    assert _run("/usr/bin/buildtail", "--version").stdout.strip() == f"buildtail {VERSION}"
    # postinst compiled the byte code against the installed files
    assert list(Path(VENV, "lib", _host_python(), "site-packages/daemon/__pycache__").glob("cli.*.pyc"))


def test_the_installed_unit_verifies_at_its_installed_path(installed: None) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    proc = _run("systemd-analyze", "verify", UNIT, check=False)
    # verify exits 0 on misspelt keys and only warns: any output at all is a failure
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stdout + proc.stderr


def test_the_installed_package_names_the_jenkins_group_only_where_it_exists(installed: None) -> None:
    """The packaged postinst with debhelper's additions, on this machine as it is (tests/
    test_maintainer_scripts.py runs the script in roots with and without the group)."""
    has_group = _run("getent", "group", "jenkins", check=False).returncode == 0
    dropin = Path("/etc/systemd/system/buildtail.service.d/jenkins.conf")
    assert dropin.is_file() == has_group


def test_the_installed_unit_is_not_enabled(installed: None) -> None:
    proc = _run("systemctl", "is-enabled", "buildtail.service", check=False)
    if "disabled" not in proc.stdout:
        pytest.skip(f"systemctl cannot tell here: {proc.stdout}{proc.stderr}".strip())
    assert proc.returncode != 0
    if Path("/run/systemd/system").is_dir():  # systemd runs: installing did not start it either
        assert _run("systemctl", "is-active", "buildtail.service", check=False).stdout.strip() == "inactive"


def test_check_config_on_the_installed_configuration(installed: None, tmp_path: Path) -> None:
    """The packaged config.yaml as an operator first meets it: only the Jenkins home it names may be
    missing, and it reads the token from the systemd credential the unit loads."""
    (tmp_path / "compass-api-token").write_text("token\n")
    (tmp_path / "compass-api-token").chmod(0o600)
    creds = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    proc = _run("/usr/bin/buildtail", "check-config", "--config", str(CONFIG), env=creds, check=False)
    if Path("/var/lib/jenkins").is_dir():
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 2
        problem, summary = proc.stderr.splitlines()
        assert re.fullmatch(rf"{CONFIG}:\d+: sources\[0\]\.home: directory does not exist", problem), problem
        assert summary == f"{CONFIG}: 1 problem(s) found"
    jenkins = tmp_path / "jenkins"
    jenkins.mkdir()
    copy = tmp_path / "config.yaml"
    copy.write_text(CONFIG.read_text().replace("home: /var/lib/jenkins", f"home: {jenkins}"))
    proc = _run("/usr/bin/buildtail", "check-config", "--config", str(copy), env=creds)
    assert "events to https://example.atlassian.net/gateway/api/compass/v1/events" in proc.stdout
    assert proc.stdout.rstrip().endswith(f"state in {STATE_LINK}") and proc.stderr == ""
    # without the credential (a shell, not the service) it says what is missing
    no_creds = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    proc = subprocess.run(
        ["/usr/bin/buildtail", "check-config", "--config", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        env=no_creds,
    )
    assert proc.returncode == 2 and "environment variable CREDENTIALS_DIRECTORY is not set" in proc.stderr


def _newer(deb: Path, tmp_path: Path) -> Path:
    """The same package as a later version whose default configuration changed too."""
    root = tmp_path / "newer"
    _run("dpkg-deb", "--raw-extract", str(deb), str(root))
    control = root / "DEBIAN" / "control"
    control.write_text(
        re.sub(r"^Version: .*$", f"Version: {_deb_version()}+1", control.read_text(), flags=re.M)
    )
    conf = root / str(CONFIG).lstrip("/")
    conf.write_text(conf.read_text() + "# a new default\n")
    out = tmp_path / f"buildtail_{_deb_version()}+1.deb"
    _run("dpkg-deb", "-Znone", "--root-owner-group", "--build", str(root), str(out))
    return out


def test_upgrade_keeps_edits_remove_keeps_state_purge_deletes_it(
    installed: None, deb: Path, tmp_path: Path
) -> None:
    # the layout systemd gives StateDirectory= with DynamicUser=yes, made here by hand: a container
    # without systemd cannot start the service
    private = STATE_DIR.parent
    made_private = not private.exists()
    private.mkdir(mode=0o700, exist_ok=True)
    try:
        STATE_DIR.mkdir(mode=0o700)
        with sqlite3.connect(STATE_DIR / "buildtail.sqlite3") as db:
            db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY)")
        db.close()
        STATE_LINK.symlink_to("private/buildtail")
        CONFIG.write_text(CONFIG.read_text().replace("host: build01.example.com", "host: ci7.example.org"))
        token = CONFIG.parent / "compass-api-token"
        token.write_text("token\n")
        token.chmod(0o600)

        # upgrade, the packaged default having changed as well: the operator's file stays
        _run("dpkg", "-i", "--force-confold", str(_newer(deb, tmp_path)))
        assert _installed_version() == f"{_deb_version()}+1"
        assert "host: ci7.example.org" in CONFIG.read_text()
        assert Path(f"{CONFIG}.dpkg-dist").read_text().endswith("# a new default\n")
        assert _run("/usr/bin/buildtail", "--version").stdout.strip() == f"buildtail {VERSION}"

        # remove: the program goes (the byte code postinst made too), configuration and state stay
        _run("dpkg", "--remove", "buildtail")
        assert not os.path.lexists("/usr/bin/buildtail") and not os.path.lexists(VENV)
        assert not os.path.lexists(UNIT)
        assert "host: ci7.example.org" in CONFIG.read_text() and token.exists()
        assert STATE_LINK.is_symlink() and (STATE_LINK / "buildtail.sqlite3").is_file()
        status = _run("dpkg-query", "-W", "-f", "${Status}", "buildtail").stdout
        assert status == "deinstall ok config-files"

        # purge: configuration, token and state go; systemd's /var/lib/private stays
        _run("dpkg", "--purge", "buildtail")
        gone = [CONFIG.parent, STATE_LINK, STATE_DIR]
        assert not [p for p in gone if os.path.lexists(p)]
        assert private.is_dir()
        assert _run("dpkg-query", "-W", "buildtail", check=False).returncode != 0
    finally:
        if STATE_LINK.is_symlink():
            STATE_LINK.unlink()
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        if made_private:
            private.rmdir()
