"""The shipped unit started by a real systemd on a host without Jenkins, and with one.

systemd-analyze cannot tell whether a unit starts: a group the host lacks (216/GROUP) or a namespace
path that does not exist (226/NAMESPACE) fails only when systemd sets up the process. Where systemd is
not PID 1 (a container, a CI runner) but the machine allows it, each test boots the distribution's
systemd as PID 1 of new pid, mount, cgroup, UTS and IPC namespaces, with its own /run, /var/lib and
/etc/group, and starts the unit there: the unit file as shipped, ExecStart pointed at this checkout.
The files and mounts this makes stay inside the namespaces; the cgroup it runs in is removed afterwards.

What the namespaced systemd cannot do here is hand a dynamic user its credentials (LoadCredential=
gives the service a directory it may not read, whatever the unit), so these tests replace the token
credential with a plain file; everything else is the unit as shipped. They skip where systemd runs
as PID 1, or without root, unshare, a systemd binary or a system Python of this minor version.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "buildtail.service"
JENKINS_DROPIN = REPO / "systemd" / "jenkins.conf"
SYSTEMD = Path("/lib/systemd/systemd")
PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
CGROUP = Path("/sys/fs/cgroup")
JENKINS_GID = 3111
# where the namespace mounts what the service reads: /var/lib there is a tmpfs of its own
SRC, SITE, SVC = "/var/lib/bt-src", "/var/lib/bt-site", "/var/lib/bt-test"

CONFIG = """\
host: unit-test.example.com
state_dir: ${STATE_DIRECTORY}
metrics:
  listen: ""
compass:
  site: example.atlassian.net
  cloud_id: "00000000-0000-0000-0000-000000000000"
  email: ci-bot@example.com
  api_token_file: ${CREDENTIALS_DIRECTORY}/compass-api-token
sources:
"""
LOG_SOURCE = """\
  - type: log
    name: cron
    paths: [/var/lib/bt-test/logs/*.log]
    rules:
      start: '^(?P<time>\\S+) START (?P<name>\\S+) run=(?P<id>\\d+)$'
      finish: '^(?P<time>\\S+) END (?P<name>\\S+) run=(?P<id>\\d+) status=(?P<result>\\w+)$'
      pipeline: "{name}"
      time_format: iso
"""
JENKINS_SOURCE = """\
  - type: jenkins
    home: /var/lib/jenkins
"""


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _hierarchies() -> list[tuple[Path, str]]:
    """The cgroup hierarchies systemd needs, as (host mount point, mount options for the namespace)."""
    fstype = subprocess.run(["stat", "-fc", "%T", str(CGROUP)], capture_output=True, text=True).stdout
    if fstype.strip() == "cgroup2fs":
        return [(CGROUP, "-t cgroup2 cgroup2")]
    if (CGROUP / "unified" / "cgroup.procs").exists() and (CGROUP / "systemd" / "cgroup.procs").exists():
        return [
            (CGROUP / "unified", "-t cgroup2 cgroup2"),
            (CGROUP / "systemd", "-t cgroup -o none,name=systemd cgroup"),
        ]
    return []


def _skip_unless_possible() -> list[tuple[Path, str]]:
    if os.geteuid() != 0:
        pytest.skip("booting systemd in namespaces needs root")
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd is PID 1 here; these tests are for machines where it is not")
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if not SYSTEMD.exists():
        pytest.skip(f"{SYSTEMD} is not installed")
    if not PYTHON.exists():
        pytest.skip(f"{PYTHON} (the dynamic user cannot run this test's own interpreter) is not installed")
    hierarchies = _hierarchies()
    if not hierarchies:
        pytest.skip("no cgroup hierarchy systemd can use")
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount", "--cgroup", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"namespaces are not allowed here: {probe.stderr.decode().strip()}")
    return hierarchies


@dataclass
class Namespaced:
    """A systemd booted in namespaces; `run` runs a command inside them."""

    init_pid: int
    svc: Path

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-m", "-p", "-u", "-i", *cmd],
            capture_output=True,
            text=True,
            check=False,
            timeout=90,
        )
        assert not check or proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
        return proc

    def show(self, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", *(f"--property={p}" for p in props), "buildtail.service").stdout
        return dict(line.split("=", 1) for line in out.splitlines())

    def output(self) -> str:
        """What the service printed, if it got as far as running."""
        log = self.svc / "out.log"
        return log.read_text() if log.exists() else "(the service printed nothing)"

    def start(self, *dropins: tuple[str, str]) -> None:
        """Install the shipped unit with `dropins` ((name, text)) beside the test's own, then start it."""
        exec_start = f"ExecStart={PYTHON} -m daemon run --config {SVC}/config.yaml"
        text = re.sub(r"^ExecStart=.*$", exec_start, UNIT.read_text(), count=1, flags=re.M)
        units = self.svc / "units"
        (units / "buildtail.service.d").mkdir(parents=True, exist_ok=True)
        (units / "buildtail.service").write_text(text)
        test_dropin = f"""\
[Unit]
DefaultDependencies=no
[Service]
Restart=no
StandardOutput=file:{SVC}/out.log
StandardError=inherit
LoadCredential=
Environment=CREDENTIALS_DIRECTORY={SVC}/cred PYTHONPATH={SRC}:{SITE} PYTHONDONTWRITEBYTECODE=1
"""
        (units / "buildtail.service.d" / "zz-test.conf").write_text(test_dropin)
        for name, body in dropins:
            (units / "buildtail.service.d" / name).write_text(body)
        self.run("cp", "-R", f"{SVC}/units/.", "/run/systemd/system/")
        self.run("systemctl", "daemon-reload")
        self.run("systemctl", "start", "buildtail.service", check=False)


@pytest.fixture
def namespaced(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Namespaced]]:
    hierarchies = _skip_unless_possible()
    cgroup_name = f"buildtail-unit-test-{os.getpid()}-{request.node.name}"[:100].replace("/", "_")
    booted: list[subprocess.Popen[bytes]] = []

    def boot(jenkins: bool, config: str) -> Namespaced:
        svc = tmp_path / "svc"
        (svc / "logs").mkdir(parents=True)
        (svc / "cred").mkdir()
        (svc / "cred" / "compass-api-token").write_text("token\n")
        (svc / "config.yaml").write_text(config)
        for path in (svc, svc / "logs", svc / "cred"):
            path.chmod(0o755)
        for path in (svc / "config.yaml", svc / "cred" / "compass-api-token"):
            path.chmod(0o644)
        # this machine's groups, but for a jenkins group of its own: the test decides whether there is one
        host_groups = Path("/etc/group").read_text().splitlines(keepends=True)
        group = "".join(line for line in host_groups if not line.startswith("jenkins:"))
        mounts = [f"mount --bind {svc} {SVC}"]
        if jenkins:
            group += f"jenkins:x:{JENKINS_GID}:\n"
            home = tmp_path / "jenkins"
            (home / "jobs").mkdir(parents=True)
            for path in (home, home / "jobs"):
                os.chown(path, 0, JENKINS_GID)
                path.chmod(0o750)  # as Jenkins leaves its home: no access for others
            mounts.append(f"mkdir /var/lib/jenkins && mount --bind {home} /var/lib/jenkins")
        (tmp_path / "group").write_text(group)
        (tmp_path / "group").chmod(0o644)
        (tmp_path / "buildtail-test.target").write_text("[Unit]\nDefaultDependencies=no\n")
        cgroup_mounts = []
        for host, options in hierarchies:
            (host / cgroup_name).mkdir()
            cgroup_mounts.append(f"mkdir -p {host} && mount {options} {host}")
        init = "\n".join(
            [
                "set -e",
                "mount -t tmpfs -o mode=755 tmpfs /run",
                "mount -t tmpfs -o mode=755 tmpfs /var/lib",
                f"mkdir {SRC} {SITE} {SVC}",
                f"mount --bind {REPO} {SRC}",
                f"mount --bind {sysconfig.get_paths()['purelib']} {SITE}",
                *mounts,
                f"mount --bind {tmp_path / 'group'} /etc/group",
                f"mount -t tmpfs -o mode=755 tmpfs {CGROUP}" if len(hierarchies) > 1 else "true",
                *cgroup_mounts,
                "mkdir -p /run/systemd/system",
                f"cp {tmp_path / 'buildtail-test.target'} /run/systemd/system/",
                f"exec {SYSTEMD} --system --unit=buildtail-test.target --log-target=null </dev/null",
            ]
        )
        enter = " && ".join(f"echo $$ > {host / cgroup_name / 'cgroup.procs'}" for host, _ in hierarchies)
        (tmp_path / "init.sh").write_text(init + "\n")
        proc = subprocess.Popen(
            [
                "sh",
                "-c",
                f"{enter} && exec unshare --pid --fork --mount --cgroup --uts --ipc --mount-proc "
                f"--propagation private sh {tmp_path / 'init.sh'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        booted.append(proc)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")

        def _init_pid() -> int | None:
            try:
                pids = children.read_text().split()
                if pids and Path(f"/proc/{pids[0]}/comm").read_text() == "systemd\n":
                    return int(pids[0])
                return None
            except OSError:
                return None

        _wait_for(lambda: _init_pid() is not None or proc.poll() is not None, "systemd to start")
        assert proc.poll() is None, "the namespace's init failed"
        pid = _init_pid()
        assert pid is not None
        ns = Namespaced(pid, svc)
        _wait_for(
            lambda: (
                ns.run("systemctl", "is-active", "buildtail-test.target", check=False).stdout.strip()
                == "active"
            ),
            "systemd to reach its target",
        )
        return ns

    yield boot
    for proc in booted:
        if proc.poll() is None:
            for child in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
                os.kill(int(child), signal.SIGKILL)  # PID 1 of the namespace: the kernel ends the rest
        proc.wait(timeout=30)
    for host, _ in hierarchies:
        top = host / cgroup_name
        if top.exists():
            for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                _wait_for(_emptied(directory), f"{directory} to empty")
                directory.rmdir()
            _wait_for(_emptied(top), f"{top} to empty")
            top.rmdir()


def _emptied(cgroup: Path) -> Callable[[], bool]:
    return lambda: not (cgroup / "cgroup.procs").read_text()


def _groups(ns: Namespaced, main_pid: str) -> list[int]:
    status = ns.run("cat", f"/proc/{main_pid}/status").stdout
    (line,) = [line for line in status.splitlines() if line.startswith("Groups:")]
    return [int(g) for g in line.split()[1:]]


def test_the_unit_starts_where_there_is_neither_a_jenkins_group_nor_a_jenkins_home(
    namespaced: Callable[..., Namespaced],
) -> None:
    ns = namespaced(jenkins=False, config=CONFIG + LOG_SOURCE)
    assert ns.run("getent", "group", "jenkins", check=False).returncode == 2
    assert ns.run("test", "-e", "/var/lib/jenkins", check=False).returncode == 1
    ns.start()
    state = ns.show("ActiveState", "SubState", "ExecMainStatus", "MainPID", "StatusText")
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), (
        state,
        ns.output(),
    )
    assert "1 file source(s)" in state["StatusText"]  # READY=1 came: the daemon is up and watching
    assert JENKINS_GID not in _groups(ns, state["MainPID"])


def test_with_the_jenkins_drop_in_the_daemon_reads_a_jenkins_home_only_its_group_can(
    namespaced: Callable[..., Namespaced],
) -> None:
    ns = namespaced(jenkins=True, config=CONFIG + JENKINS_SOURCE)
    ns.start(("jenkins.conf", JENKINS_DROPIN.read_text()))
    state = ns.show("ActiveState", "SubState", "ExecMainStatus", "MainPID", "StatusText")
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), (
        state,
        ns.output(),
    )
    assert JENKINS_GID in _groups(ns, state["MainPID"])
    assert "1 source(s)" in state["StatusText"], state
    # read-only in the service's mount namespace, even for root there
    touch = ns.run("nsenter", "-t", state["MainPID"], "-m", "touch", "/var/lib/jenkins/x", check=False)
    assert touch.returncode != 0 and "Read-only file system" in touch.stderr, touch


def test_a_group_the_host_lacks_fails_the_start(namespaced: Callable[..., Namespaced]) -> None:
    """The failure the unit no longer has, shown by the same machinery: without this, a start that
    never applied the groups would pass the tests above."""
    ns = namespaced(jenkins=False, config=CONFIG + LOG_SOURCE)
    ns.start(("jenkins.conf", JENKINS_DROPIN.read_text()))
    state = ns.show("ActiveState", "ExecMainStatus")
    assert (state["ActiveState"], state["ExecMainStatus"]) == ("failed", "216"), state
