"""Write Jenkins build records to disk exactly the way Jenkins does.

A test/benchmark helper that needs nothing beyond the Python stdlib, so it runs from a plain
checkout. It reproduces the on-disk *mechanics* a file watcher sees:

* ``nextBuildNumber`` is rewritten atomically (temp file + rename) when a number is assigned;
* ``builds/<N>/`` appears, then ``log`` is created with the cause line and appended unbuffered;
* freestyle and matrix builds have **no** ``build.xml`` while running; Pipeline builds write one
  immediately (no top-level ``<result>``, a nested ``execution/result``, ``<completed>false``),
  atomically (MAX_SURVIVABILITY) or truncated in place (PERFORMANCE_OPTIMIZED);
* on completion: ``builds/permalinks`` (atomic), then ``Finished: RESULT`` in the log, then the
  final ``build.xml`` through ``build.xml-atomic<digits>tmp`` + rename;
* ``Run.delete()`` renames ``builds/<N>`` to ``builds/.<N>`` before deleting it.

Use from Python::

    home = JenkinsHome(tmp_path)
    run = home.job("team/api", "pipeline").start()
    run.log("building")
    run.finish("SUCCESS", duration_ms=1200)

Command line (from the repository root)::

    python tools/fake_jenkins.py --home examples/jenkins-home build hello --duration 5 --steps 3
    python tools/fake_jenkins.py --home examples/jenkins-home example
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import itertools
import os
import random
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = ["KINDS", "RESULTS", "JenkinsHome", "Job", "Run", "main", "mangle_branch_name"]

KINDS = ("freestyle", "pipeline", "matrix")
RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED")

JENKINS_VERSION = "2.528.2"
WORKFLOW_JOB = "workflow-job@1540.v295eccc9778f"
WORKFLOW_CPS = "workflow-cps@4150.ve20ca_b_a_a_2815"
GIT_PLUGIN = "git@5.8.1"
BRANCH_API = "branch-api@2.1280.v0d4e5b_b_460ef"
WF_MULTIBRANCH = "workflow-multibranch@803.v08103b_87c280"
GROOVY_LIB = "pipeline-groovy-lib@752.vdddedf804e72"

DECL_SINGLE = "<?xml version='1.1' encoding='UTF-8'?>\n"
DECL_DOUBLE = '<?xml version="1.1" encoding="UTF-8"?>\n'
DECL_LEGACY = "<?xml version='1.0' encoding='UTF-8'?>\n"

FOLDER_TAG = "com.cloudbees.hudson.plugins.folder.Folder"
MULTIBRANCH_TAG = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
JOB_TAGS = {"freestyle": "project", "pipeline": "flow-definition", "matrix": "matrix-project"}
BUILD_TAGS = {"freestyle": "build", "pipeline": "flow-build", "matrix": "matrix-build"}
WF_MB_PKG = "org.jenkinsci.plugins.workflow.multibranch"
FOLDER_PKG = "com.cloudbees.hudson.plugins.folder"
CPS = "org.jenkinsci.plugins.workflow.cps"
TIMEOUT_CAUSE = "hudson.plugins.build__timeout.impl.AbsoluteTimeOutStrategy_-TimeOutCauseOfInterruption"
DURABILITY = ("MAX_SURVIVABILITY", "SURVIVABLE_NONATOMIC", "PERFORMANCE_OPTIMIZED")

# Permalinks kept in builds/permalinks (PeepholePermalink) and which results they follow.
_PERMALINKS: dict[str, tuple[str, ...]] = {
    "lastBuild": RESULTS,
    "lastCompletedBuild": RESULTS,
    "lastFailedBuild": ("FAILURE",),
    "lastStableBuild": ("SUCCESS",),
    "lastSuccessfulBuild": ("SUCCESS", "UNSTABLE"),
    "lastUnstableBuild": ("UNSTABLE",),
    "lastUnsuccessfulBuild": ("UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED"),
}

_queue_ids = itertools.count(1)


# --------------------------------------------------------------------------------------------------
# low-level writers


def _atomic_write(path: Path, data: bytes) -> None:
    """AtomicFileWriter: temp file ``<name>-atomic<digits>tmp`` in the same dir, fsync, rename."""
    while True:
        tmp = path.with_name(f"{path.name}-atomic{random.randrange(10**18, 10**19)}tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _inplace_write(path: Path, data: bytes) -> None:
    """PipelineIOUtils with atomicWrite=false: truncate and rewrite in place."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab", buffering=0) as fh:
        fh.write(data)


def _x(value: object) -> str:
    return escape(str(value), {'"': "&quot;", "'": "&apos;"})


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _console_note_user(user: str) -> bytes:
    """A new-style (MAC'd) hyperlink ConsoleNote: ESC[8mha:////4...ESC[0m."""
    payload = gzip.compress(
        b"\xac\xed\x00\x05sr\x00\x1ehudson.console.HyperlinkNote" + user.encode(), mtime=0
    )
    mac = hashlib.sha256(b"console-note:" + user.encode()).digest()
    raw = b"\xff\xff\xff\xe0" + mac + len(payload).to_bytes(4, "big") + payload
    return b"\x1b[8mha:" + base64.b64encode(raw) + b"\x1b[0m"


def _hidden_note(label: str) -> bytes:
    """The hidden note Pipeline puts before each ``[Pipeline]`` marker."""
    raw = b"\xff\xff\xff\xe0" + hashlib.sha256(label.encode()).digest() + b"\x00\x00\x00\x10"
    return b"\x1b[8mha:" + base64.b64encode(raw) + b"\x1b[0m"


def mangle_branch_name(name: str) -> str:
    """Simplified, deterministic version of branch-api ``NameMangler.apply``.

    Unchanged when the name is at most 32 characters of ``[A-Za-z0-9-]`` and does not start with
    ``-``; otherwise ``/\\._`` and space become ``-``, other characters ``_XX`` (UTF-8 hex), and
    ``.`` plus the first 5 hex digits of the name's sha256 is appended.
    """
    safe = (
        len(name) <= 32
        and not name.startswith("-")
        and all(c.isascii() and (c.isalnum() or c == "-") for c in name)
    )
    if safe and name:
        return name
    out: list[str] = []
    for ch in name:
        if ch in "/\\._ ":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch == "-"):
            out.append(ch)
        else:
            out.extend(f"_{b:02x}" for b in ch.encode("utf-8"))
    return "".join(out)[:32] + "." + hashlib.sha256(name.encode("utf-8")).hexdigest()[:5]


def _encode_item_name(name: str) -> str:
    """branch-api NameEncoder (subset): characters not allowed in item names are %-encoded."""
    return "".join(f"%{ord(c):02X}" if c in '%/\\:?#*|<>"[]' else c for c in name)


def _decode_item_name(name: str) -> str:
    out, i = [], 0
    while i < len(name):
        hexdigits = name[i + 1 : i + 3]
        if name[i] == "%" and len(hexdigits) == 2 and all(c in "0123456789abcdefABCDEF" for c in hexdigits):
            out.append(chr(int(name[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def _root_tag(config: Path) -> str | None:
    try:
        return ET.parse(config).getroot().tag
    except (OSError, ET.ParseError):
        return None


# --------------------------------------------------------------------------------------------------
# causes


class _Cause:
    """One cause: its XStream form in CauseAction and its console lines."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.user: str | None = None
        if text.startswith("Started by user "):
            self.user = text[len("Started by user ") :]
            self.xml = (
                "<hudson.model.Cause_-UserIdCause>\n"
                f"  <userId>{_x(self.user)}</userId>\n"
                "</hudson.model.Cause_-UserIdCause>"
            )
        elif text == "Started by timer":
            self.xml = "<hudson.triggers.TimerTrigger_-TimerTriggerCause/>"
        elif text == "Started by an SCM change":
            self.xml = "<hudson.triggers.SCMTrigger_-SCMTriggerCause/>"
        elif text == "Branch indexing":
            self.xml = f'<jenkins.branch.BranchIndexingCause plugin="{BRANCH_API}"/>'
        elif text.startswith("Started by remote host "):
            self.xml = (
                "<hudson.model.Cause_-RemoteCause>\n"
                f"  <addr>{_x(text[len('Started by remote host ') :])}</addr>\n"
                "  <note></note>\n"
                "</hudson.model.Cause_-RemoteCause>"
            )
        else:
            self.xml = "<hudson.model.Cause_-UserIdCause/>"

    def console(self) -> bytes:
        if self.user is not None:
            return b"Started by user " + _console_note_user(self.user) + self.user.encode() + b"\n"
        return self.text.encode() + b"\n"

    def upstream(self, project: str, number: int) -> str:
        """An UpstreamCause pointing at ``project #number`` caused by this cause."""
        return (
            "<hudson.model.Cause_-UpstreamCause>\n"
            f"  <upstreamProject>{_x(project)}</upstreamProject>\n"
            f"  <upstreamUrl>job/{_x('/job/'.join(project.split('/')))}/</upstreamUrl>\n"
            f"  <upstreamBuild>{number}</upstreamBuild>\n"
            "  <upstreamCauses>\n" + _indent(self.xml, 4) + "\n  </upstreamCauses>\n"
            "</hudson.model.Cause_-UpstreamCause>"
        )


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line if line else line for line in text.splitlines())


def _cause_action(cause_xml: str) -> str:
    return (
        "<hudson.model.CauseAction>\n"
        '  <causeBag class="linked-hash-map">\n'
        "    <entry>\n" + _indent(cause_xml, 6) + "\n      <int>1</int>\n"
        "    </entry>\n"
        "  </causeBag>\n"
        "</hudson.model.CauseAction>"
    )


def _git_build_data(sha1: str, branch: str, number: int) -> str:
    return (
        f'<hudson.plugins.git.util.BuildData plugin="{GIT_PLUGIN}">\n'
        "  <buildsByBranchName>\n"
        "    <entry>\n"
        f"      <string>{_x(branch)}</string>\n"
        "      <hudson.plugins.git.util.Build>\n"
        '        <marked plugin="git-client@6.4.0">\n'
        f"          <sha1>{_x(sha1)}</sha1>\n"
        '          <branches class="singleton-set">\n'
        "            <hudson.plugins.git.Branch>\n"
        '              <sha1 reference="../../../sha1"/>\n'
        f"              <name>{_x(branch)}</name>\n"
        "            </hudson.plugins.git.Branch>\n"
        "          </branches>\n"
        "        </marked>\n"
        '        <revision reference="../marked"/>\n'
        f"        <hudsonBuildNumber>{number}</hudsonBuildNumber>\n"
        "      </hudson.plugins.git.util.Build>\n"
        "    </entry>\n"
        "  </buildsByBranchName>\n"
        '  <lastBuild reference="../buildsByBranchName/entry/hudson.plugins.git.util.Build"/>\n'
        "  <remoteUrls>\n"
        "    <string>https://git.example.com/acme/app.git</string>\n"
        "  </remoteUrls>\n"
        "</hudson.plugins.git.util.BuildData>"
    )


# --------------------------------------------------------------------------------------------------
# model


class JenkinsHome:
    """A JENKINS_HOME on disk."""

    def __init__(self, root: Path, *, builds_dir: str | None = None) -> None:
        self.root = Path(root)
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        if builds_dir is not None:
            self._write_global_config(builds_dir)
        else:  # honour an existing global config, as Jenkins does at startup
            try:
                builds_dir = ET.parse(self.root / "config.xml").getroot().findtext("buildsDir")
            except (OSError, ET.ParseError):
                builds_dir = None
        self.builds_dir_template = builds_dir or "${ITEM_ROOTDIR}/builds"

    def _write_global_config(self, builds_dir: str) -> None:
        text = (
            DECL_SINGLE + "<hudson>\n"
            "  <disabledAdministrativeMonitors/>\n"
            f"  <version>{JENKINS_VERSION}</version>\n"
            "  <numExecutors>2</numExecutors>\n"
            "  <mode>NORMAL</mode>\n"
            "  <useSecurity>true</useSecurity>\n"
            "  <workspaceDir>${JENKINS_HOME}/workspace/${ITEM_FULL_NAME}</workspaceDir>\n"
            f"  <buildsDir>{_x(builds_dir)}</buildsDir>\n"
            "  <jdks/>\n"
            "  <views>\n"
            "    <hudson.model.AllView>\n"
            '      <owner class="hudson" reference="../../.."/>\n'
            "      <name>all</name>\n"
            "      <filterExecutors>false</filterExecutors>\n"
            "      <filterQueue>false</filterQueue>\n"
            '      <properties class="hudson.model.View$PropertyList"/>\n'
            "    </hudson.model.AllView>\n"
            "  </views>\n"
            "  <primaryView>all</primaryView>\n"
            "</hudson>"
        )
        _atomic_write(self.root / "config.xml", text.encode())

    # -- items ------------------------------------------------------------------------------------

    def _resolve(self, full_name: str, *, create_folders: bool) -> tuple[Path, str]:
        """Directory and canonical Jenkins full name of an item; multibranch-aware."""
        segments = [s for s in full_name.split("/") if s]
        if not segments:
            raise ValueError("empty job name")
        cur: Path = self.root
        names: list[str] = []
        i = 0
        while i < len(segments):
            tag = _root_tag(cur / "config.xml") if cur != self.root else None
            if tag == MULTIBRANCH_TAG:
                branch = _decode_item_name("/".join(segments[i:]))
                return cur / "branches" / mangle_branch_name(branch), "/".join(
                    [*names, _encode_item_name(branch)]
                )
            seg = segments[i]
            nxt = cur / "jobs" / seg
            names.append(seg)
            if i < len(segments) - 1 and create_folders and not (nxt / "config.xml").exists():
                nxt.mkdir(parents=True, exist_ok=True)
                (nxt / "jobs").mkdir(exist_ok=True)
                _atomic_write(nxt / "config.xml", _folder_config(seg).encode())
            cur = nxt
            i += 1
        return cur, "/".join(names)

    def job(
        self,
        full_name: str,
        kind: str = "freestyle",
        *,
        axes: dict[str, list[str]] | None = None,
        display_name: str | None = None,
    ) -> Job:
        """Create (or open, if it exists) a job; intermediate path segments become folders."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        path, canonical = self._resolve(full_name, create_folders=True)
        config = path / "config.xml"
        if config.exists():
            return self._open(path, canonical)
        if kind == "matrix" and not axes:
            axes = {"label": ["default"]}
        if kind != "matrix":
            axes = None
        path.mkdir(parents=True, exist_ok=True)
        _atomic_write(config, _job_config(kind, axes, display_name).encode())
        job = Job(self, canonical, kind, path, axes=axes)
        job._init_numbering()
        return job

    def _open(self, path: Path, canonical: str) -> Job:
        root = ET.parse(path / "config.xml").getroot()
        kinds = {tag: k for k, tag in JOB_TAGS.items()}
        if root.tag not in kinds:
            raise ValueError(f"{canonical!r} is not a job (config root <{root.tag}>)")
        kind = kinds[root.tag]
        axes: dict[str, list[str]] | None = None
        if kind == "matrix":
            axes = {}
            for axis in root.iterfind("axes/*"):
                axes[axis.findtext("name", "")] = [v.text or "" for v in axis.iterfind("values/string")]
        job = Job(self, canonical, kind, path, axes=axes)
        job._init_numbering()
        return job

    def multibranch(self, name: str, branches: list[str]) -> dict[str, Job]:
        """A multibranch Pipeline project with one branch job per branch name."""
        project, canonical = self._resolve(name, create_folders=True)
        project.mkdir(parents=True, exist_ok=True)
        (project / "branches").mkdir(exist_ok=True)
        if not (project / "config.xml").exists():
            _atomic_write(project / "config.xml", _multibranch_config().encode())
        jobs: dict[str, Job] = {}
        for branch in branches:
            bdir = project / "branches" / mangle_branch_name(branch)
            full = f"{canonical}/{_encode_item_name(branch)}"
            bdir.mkdir(parents=True, exist_ok=True)
            if not (bdir / "config.xml").exists():
                _atomic_write(bdir / "config.xml", _branch_config(branch).encode())
            job = Job(self, full, "pipeline", bdir, branch=branch)
            job._init_numbering()
            jobs[branch] = job
        return jobs

    def delete_job(self, full_name: str) -> None:
        path, canonical = self._resolve(full_name, create_folders=False)
        job_builds = Job(self, canonical, "freestyle", path).builds_dir
        shutil.rmtree(path, ignore_errors=True)
        if job_builds.exists() and not job_builds.is_relative_to(path):
            shutil.rmtree(job_builds, ignore_errors=True)

    def jobs(self) -> Iterator[Path]:
        """Every job directory (folders and multibranch projects descended)."""
        stack = [self.root / "jobs"]
        while stack:
            d = stack.pop()
            for child in sorted(d.iterdir()) if d.is_dir() else []:
                tag = _root_tag(child / "config.xml")
                if tag == FOLDER_TAG:
                    stack.append(child / "jobs")
                elif tag == MULTIBRANCH_TAG:
                    stack.append(child / "branches")
                elif tag in JOB_TAGS.values():
                    yield child

    def expand_builds_dir(self, item_rootdir: Path, full_name: str) -> Path:
        value = self.builds_dir_template
        value = value.replace("${JENKINS_HOME}", str(self.root))
        value = value.replace("${ITEM_ROOTDIR}", str(item_rootdir))
        value = value.replace("${ITEM_FULL_NAME}", full_name.replace(":", "$"))
        value = value.replace("${ITEM_FULLNAME}", full_name.replace(":", "$"))
        return Path(value)


class Job:
    """A buildable job: freestyle project, Pipeline job (incl. multibranch branch) or matrix project."""

    def __init__(
        self,
        home: JenkinsHome,
        full_name: str,
        kind: str,
        dir: Path,
        *,
        axes: dict[str, list[str]] | None = None,
        branch: str | None = None,
    ) -> None:
        self.home = home
        self.full_name = full_name
        self.kind = kind
        self.dir = dir
        self.axes = axes
        self.branch = branch
        self.builds_dir = home.expand_builds_dir(dir, full_name)

    def __repr__(self) -> str:
        return f"Job({self.full_name!r}, {self.kind!r})"

    @property
    def name(self) -> str:
        return self.full_name.rsplit("/", 1)[-1]

    def _init_numbering(self) -> None:
        if not (self.dir / "nextBuildNumber").exists():
            _atomic_write(self.dir / "nextBuildNumber", b"1\n")
        self.builds_dir.mkdir(parents=True, exist_ok=True)
        legacy = self.builds_dir / "legacyIds"
        if not legacy.exists():
            legacy.touch()

    @property
    def next_build_number(self) -> int:
        return int((self.dir / "nextBuildNumber").read_text().strip() or "1")

    def _assign_number(self) -> int:
        number = self.next_build_number
        _atomic_write(self.dir / "nextBuildNumber", f"{number + 1}\n".encode())
        return number

    def start(
        self,
        *,
        cause: str = "Started by user admin",
        start_ms: int | None = None,
        durability: str = "MAX_SURVIVABILITY",
        parameters: dict[str, str] | None = None,
    ) -> Run:
        """Start a build: assign the number, create builds/N and its log (Pipeline: build.xml too).
        ``parameters`` are the build's (string) parameters, kept in build.xml's ParametersAction."""
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {DURABILITY}")
        if start_ms is None:
            start_ms = _now_ms()
        number = self._assign_number()
        run = Run(self, number, start_ms, _Cause(cause), durability)
        run.parameters = dict(parameters or {})
        run.dir.mkdir(parents=True, exist_ok=False)
        head = run.cause.console()
        if self.kind == "pipeline":
            head += f"Running in Durability level: {durability}\n".encode()
        else:
            head += b"Running as SYSTEM\n"
            head += f"Building in workspace {run.workspace}\n".encode()
        with open(run.log_path, "ab", buffering=0) as fh:  # CREATE|APPEND, unbuffered
            fh.write(head)
        if self.kind == "pipeline":
            _append(run.log_path, _hidden_note("start") + b"[Pipeline] Start of Pipeline\n")
            run._save_running()
        return run

    def discard(self, number: int) -> None:
        """Run.delete(): rename builds/N to builds/.N, then delete it recursively."""
        src = self.builds_dir / str(number)
        dst = self.builds_dir / f".{number}"
        os.rename(src, dst)
        shutil.rmtree(dst)

    def legacy_build(
        self, number: int, when: datetime, result: str = "SUCCESS", duration_ms: int = 1000
    ) -> Path:
        """A pre-1.597 record: builds/<yyyy-MM-dd_HH-mm-ss>/ with <number>, XML 1.0, no timestamps."""
        if result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}")
        d = self.builds_dir / when.strftime("%Y-%m-%d_%H-%M-%S")
        d.mkdir(parents=True, exist_ok=False)
        tag = BUILD_TAGS[self.kind]
        text = (
            DECL_LEGACY + f"<{tag}>\n"
            "  <actions>\n"
            "    <hudson.model.CauseAction>\n"
            "      <causes>\n"
            "        <hudson.model.Cause_-UserCause>\n"
            "          <authenticationName>admin</authenticationName>\n"
            "        </hudson.model.Cause_-UserCause>\n"
            "      </causes>\n"
            "    </hudson.model.CauseAction>\n"
            "  </actions>\n"
            f"  <number>{number}</number>\n"
            f"  <result>{result}</result>\n"
            f"  <duration>{duration_ms}</duration>\n"
            "  <charset>UTF-8</charset>\n"
            "  <keepLog>false</keepLog>\n"
            "  <builtOn></builtOn>\n"
            f"  <workspace>/var/lib/jenkins/jobs/{_x(self.name)}/workspace</workspace>\n"
            "  <hudsonVersion>1.580.3</hudsonVersion>\n"
            '  <scm class="hudson.scm.NullChangeLogParser"/>\n'
            "  <culprits/>\n"
            f"</{tag}>"
        )
        (d / "log").write_bytes(
            b"Started by user admin\nBuilding in workspace /var/lib/jenkins/jobs/"
            + self.name.encode()
            + f"/workspace\nFinished: {result}\n".encode()
        )
        (d / "build.xml").write_text(text, encoding="utf-8")
        if number >= self.next_build_number:
            _atomic_write(self.dir / "nextBuildNumber", f"{number + 1}\n".encode())
        return d


class Run:
    """One build of a job."""

    def __init__(
        self, job: Job, number: int, start_ms: int, cause: _Cause, durability: str, *, dir: Path | None = None
    ) -> None:
        self.job = job
        self.number = number
        self.start_ms = start_ms
        self.cause = cause
        self.durability = durability
        self.dir = dir if dir is not None else job.builds_dir / str(number)
        self.queue_id = next(_queue_ids)
        self.finished = False
        self.parameters: dict[str, str] = {}
        self._checkpoints = 0

    def __repr__(self) -> str:
        return f"Run({self.job.full_name!r} #{self.number})"

    @property
    def log_path(self) -> Path:
        return self.dir / "log"

    @property
    def build_xml(self) -> Path:
        return self.dir / "build.xml"

    @property
    def workspace(self) -> str:
        return f"/var/jenkins_home/workspace/{self.job.full_name}"

    def log(self, line: str) -> None:
        """Append one console line (unbuffered)."""
        _append(self.log_path, line.encode("utf-8") + b"\n")

    def checkpoint(self) -> None:
        """Pipeline: save the running build.xml again (one more action), atomically or in place."""
        if self.job.kind != "pipeline" or self.finished:
            return
        self._checkpoints += 1
        self._save_running()

    def crash(self) -> None:
        """Jenkins died mid-build: nothing more is written (log without Finished:, no final build.xml)."""

    # -- build.xml ---------------------------------------------------------------------------------

    def _actions(self, extra: list[str], cause_xml: str | None = None) -> str:
        actions = [_parameters_action(self.parameters)] if self.parameters else []
        actions.append(_cause_action(cause_xml or self.cause.xml))
        if self.job.kind == "pipeline" and self._checkpoints:
            actions.append(
                f'<org.jenkinsci.plugins.workflow.libs.LibrariesAction plugin="{GROOVY_LIB}">\n'
                "  <libraries/>\n"
                "</org.jenkinsci.plugins.workflow.libs.LibrariesAction>"
            )
            actions.extend(
                "<org.jenkinsci.plugins.workflow.cps.EnvActionImpl>\n"
                '  <env class="tree-map">\n'
                "    <entry>\n"
                "      <string>CHECKPOINT</string>\n"
                f"      <string>{i}</string>\n"
                "    </entry>\n"
                "  </env>\n"
                "</org.jenkinsci.plugins.workflow.cps.EnvActionImpl>"
                for i in range(2, self._checkpoints + 1)
            )
        actions.extend(extra)
        return "  <actions>\n" + "\n".join(_indent(a, 4) for a in actions) + "\n  </actions>\n"

    def _execution(self, result: str, done: bool) -> str:
        iota = 3 + 2 * self._checkpoints + (2 if done else 0)
        return (
            '  <execution class="org.jenkinsci.plugins.workflow.cps.CpsFlowExecution">\n'
            f"    <result>{result}</result>\n"
            "    <script>pipeline {\n  agent any\n  stages {\n    stage(&apos;Build&apos;) {\n"
            "      steps { sh &apos;make&apos; }\n    }\n  }\n}</script>\n"
            '    <loadedScripts class="map"/>\n'
            f"    <durabilityHint>{self.durability}</durabilityHint>\n"
            '    <timings class="map"/>\n'
            '    <internalCalls class="sorted-set"/>\n'
            "    <sandbox>true</sandbox>\n"
            f"    <iota>{iota}</iota>\n"
            f"    <head>1:{iota}</head>\n"
            "    <start>2</start>\n"
            f"    <done>{'true' if done else 'false'}</done>\n"
            "    <resumeBlocked>false</resumeBlocked>\n"
            "  </execution>\n"
        )

    def _record(
        self,
        tag: str,
        *,
        result: str | None,
        duration_ms: int,
        extra_actions: list[str] | None = None,
        display_name: str | None = None,
        description: str | None = None,
        decl: str = DECL_SINGLE,
        workspace: str | None = None,
        axes: str = "",
        cause_xml: str | None = None,
    ) -> str:
        pipeline = tag == "flow-build"
        attrs = f' plugin="{WORKFLOW_JOB}"' if pipeline else ""
        parts = [decl, f"<{tag}{attrs}>\n", self._actions(extra_actions or [], cause_xml)]
        parts.append(f"  <queueId>{self.queue_id}</queueId>\n")
        parts.append(f"  <timestamp>{self.start_ms - 4}</timestamp>\n")
        parts.append(f"  <startTime>{self.start_ms}</startTime>\n")
        if result is not None:
            parts.append(f"  <result>{result}</result>\n")
        if display_name is not None:
            parts.append(f"  <displayName>{_x(display_name)}</displayName>\n")
        if description is not None:
            parts.append(f"  <description>{_x(description)}</description>\n")
        parts.append(f"  <duration>{duration_ms}</duration>\n")
        parts.append("  <charset>UTF-8</charset>\n")
        parts.append("  <keepLog>false</keepLog>\n")
        if pipeline:
            parts.append(self._execution(result or "SUCCESS", result is not None))
            parts.append(f"  <completed>{'true' if result is not None else 'false'}</completed>\n")
            parts.append('  <checkouts class="hudson.util.PersistedList"/>\n')
        else:
            parts.append("  <builtOn></builtOn>\n")
            parts.append(f"  <workspace>{_x(workspace or self.workspace)}</workspace>\n")
            parts.append(f"  <hudsonVersion>{JENKINS_VERSION}</hudsonVersion>\n")
            parts.append('  <scm class="hudson.scm.NullChangeLogParser"/>\n')
            parts.append('  <culprits class="java.util.Collections$UnmodifiableSortedSet">\n')
            parts.append('    <s class="sorted-set"/>\n')
            parts.append("  </culprits>\n")
            parts.append(axes)
        parts.append(f"</{tag}>")
        return "".join(parts)

    def _save_running(self) -> None:
        if self.durability == "MAX_SURVIVABILITY":
            _atomic_write(self.build_xml, self._record("flow-build", result=None, duration_ms=0).encode())
        else:
            text = self._record("flow-build", result=None, duration_ms=0, decl=DECL_DOUBLE)
            _inplace_write(self.build_xml, text.encode())

    # -- completion --------------------------------------------------------------------------------

    def finish(
        self,
        result: str = "SUCCESS",
        *,
        duration_ms: int | None = None,
        timed_out: bool = False,
        display_name: str | None = None,
        description: str | None = None,
        commit: str | None = None,
    ) -> None:
        """Complete the build in Jenkins' order: permalinks, ``Finished:``, final build.xml."""
        if result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}")
        if self.finished:
            raise RuntimeError(f"{self!r} already finished")
        if duration_ms is None:
            duration_ms = max(0, _now_ms() - self.start_ms)
        extra: list[str] = []
        if commit is not None:
            extra.append(
                _git_build_data(commit, f"refs/remotes/origin/{self.job.branch or 'main'}", self.number)
            )
        if result == "ABORTED":
            extra.append(_interrupted_action(timed_out))
            if timed_out:
                self.log("Build timed out (after 3 minutes). Marking the build as aborted.")
                self.log("Build was aborted")
            else:
                self.log("Build was aborted")
                self.log("Aborted by admin")
        axes_xml = ""
        if self.job.kind == "matrix":
            axes_xml = self._run_configurations(result, duration_ms)
        if self.job.kind == "pipeline":
            _append(self.log_path, _hidden_note("end") + b"[Pipeline] End of Pipeline\n")
        _update_permalinks(self.job.builds_dir, self.number, result)
        self.log(f"Finished: {result}")
        text = self._record(
            BUILD_TAGS[self.job.kind],
            result=result,
            duration_ms=duration_ms,
            extra_actions=extra,
            display_name=display_name,
            description=description,
            axes=axes_xml,
        )
        _atomic_write(self.build_xml, text.encode())
        self.finished = True

    def _run_configurations(self, result: str, duration_ms: int) -> str:
        """Matrix: run every axis combination (children at configurations/axis-X/x/..)."""
        axes = self.job.axes or {"label": ["default"]}
        names = list(axes)
        combos = list(itertools.product(*(axes[n] for n in names)))
        child_duration = max(1, duration_ms // (len(combos) + 1))
        for combo in combos:
            label = ",".join(f"{n}={v}" for n, v in zip(names, combo, strict=True))
            self.log(f"Triggering {self.job.name} » {label}")
        for combo in combos:
            cdir = self.job.dir / "configurations"
            for n, v in zip(names, combo, strict=True):
                cdir = cdir / f"axis-{n}" / v
            label = ",".join(f"{n}={v}" for n, v in zip(names, combo, strict=True))
            cdir.mkdir(parents=True, exist_ok=True)
            if not (cdir / "config.xml").exists():
                _atomic_write(
                    cdir / "config.xml",
                    (DECL_SINGLE + "<matrix-config>\n  <properties/>\n</matrix-config>").encode(),
                )
            _atomic_write(cdir / "nextBuildNumber", f"{self.number + 1}\n".encode())
            child_builds = cdir / "builds"
            rdir = child_builds / str(self.number)
            rdir.mkdir(parents=True, exist_ok=True)
            upstream = self.cause.upstream(self.job.full_name, self.number)
            log = (
                f'Started by upstream project "{self.job.full_name}" build number {self.number}\n'
                "originally caused by:\n "
            ).encode() + self.cause.console()
            ws = f"{self.workspace}/" + "/".join(f"{n}/{v}" for n, v in zip(names, combo, strict=True))
            log += f"Running as SYSTEM\nBuilding in workspace {ws}\n".encode()
            with open(rdir / "log", "ab", buffering=0) as fh:
                fh.write(log)
                fh.write(f"Finished: {result}\n".encode())
            child = Run(self.job, self.number, self.start_ms + 50, self.cause, self.durability, dir=rdir)
            child.queue_id = self.queue_id
            _update_permalinks(child_builds, self.number, result)
            text = child._record(
                "matrix-run",
                result=result,
                duration_ms=child_duration,
                extra_actions=[],
                workspace=ws,
                cause_xml=upstream,
            )
            _atomic_write(rdir / "build.xml", text.encode())
            self.log(f"{self.job.name} » {label} completed with result {result}")
        axes_xml = "  <axes>\n"
        for n in names:
            axes_xml += "    <hudson.matrix.TextAxis>\n"
            axes_xml += f"      <name>{_x(n)}</name>\n      <values>\n"
            axes_xml += "".join(f"        <string>{_x(v)}</string>\n" for v in axes[n])
            axes_xml += "      </values>\n    </hudson.matrix.TextAxis>\n"
        return axes_xml + "  </axes>\n"


def _parameters_action(parameters: dict[str, str]) -> str:
    """ParametersAction as Jenkins saves it: one StringParameterValue per parameter (a choice
    parameter's value is saved as a string too)."""
    values = "".join(
        "    <hudson.model.StringParameterValue>\n"
        f"      <name>{_x(name)}</name>\n"
        "      <description></description>\n"
        f"      <value>{_x(value)}</value>\n"
        "    </hudson.model.StringParameterValue>\n"
        for name, value in parameters.items()
    )
    names = "".join(f"    <string>{_x(name)}</string>\n" for name in parameters)
    return (
        "<hudson.model.ParametersAction>\n"
        '  <safeParameters class="sorted-set"/>\n'
        f"  <parameters>\n{values}  </parameters>\n"
        f"  <parameterDefinitionNames>\n{names}  </parameterDefinitionNames>\n"
        "</hudson.model.ParametersAction>"
    )


def _interrupted_action(timed_out: bool) -> str:
    if timed_out:
        cause = (
            f'<{TIMEOUT_CAUSE} plugin="build-timeout@1.38">\n'
            "  <timeoutMinutes>3</timeoutMinutes>\n"
            f"</{TIMEOUT_CAUSE}>"
        )
    else:
        cause = (
            "<jenkins.model.CauseOfInterruption_-UserInterruption>\n"
            "  <user>admin</user>\n"
            "</jenkins.model.CauseOfInterruption_-UserInterruption>"
        )
    return (
        "<jenkins.model.InterruptedBuildAction>\n"
        '  <causes class="com.google.common.collect.ImmutableList">\n' + _indent(cause, 4) + "\n  </causes>\n"
        "</jenkins.model.InterruptedBuildAction>"
    )


def _update_permalinks(builds_dir: Path, number: int, result: str) -> None:
    """PeepholePermalink.RunListenerImpl.onCompleted: rewrite builds/permalinks atomically."""
    path = builds_dir / "permalinks"
    current: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                current[key] = int(value)
    for name, results in _PERMALINKS.items():
        cached = current.get(name, -1)
        if result in results and number > cached:
            cached = number
        current[name] = cached
    body = "".join(f"{k} {current[k]}\n" for k in sorted(current))
    _atomic_write(path, body.encode())


# --------------------------------------------------------------------------------------------------
# config.xml templates


def _folder_config(name: str) -> str:
    return (
        DECL_SINGLE + f'<{FOLDER_TAG} plugin="cloudbees-folder@6.1012.v79a_86a_1ea_c1f">\n'
        "  <actions/>\n"
        "  <description></description>\n"
        "  <properties/>\n"
        '  <folderViews class="com.cloudbees.hudson.plugins.folder.views.DefaultFolderViewHolder">\n'
        "    <views>\n"
        "      <hudson.model.AllView>\n"
        '        <owner class="com.cloudbees.hudson.plugins.folder.Folder" reference="../../../.."/>\n'
        "        <name>All</name>\n"
        "        <filterExecutors>false</filterExecutors>\n"
        "        <filterQueue>false</filterQueue>\n"
        '        <properties class="hudson.model.View$PropertyList"/>\n'
        "      </hudson.model.AllView>\n"
        "    </views>\n"
        "  </folderViews>\n"
        "  <healthMetrics/>\n"
        '  <icon class="com.cloudbees.hudson.plugins.folder.icons.StockFolderIcon"/>\n'
        f"</{FOLDER_TAG}>"
    )


def _job_config(kind: str, axes: dict[str, list[str]] | None, display_name: str | None) -> str:
    tag = JOB_TAGS[kind]
    dn = f"  <displayName>{_x(display_name)}</displayName>\n" if display_name else ""
    if kind == "pipeline":
        return (
            DECL_SINGLE + f'<{tag} plugin="{WORKFLOW_JOB}">\n'
            "  <actions/>\n"
            "  <description></description>\n" + dn + "  <keepDependencies>false</keepDependencies>\n"
            "  <properties/>\n"
            f'  <definition class="{CPS}.CpsFlowDefinition" plugin="{WORKFLOW_CPS}">\n'
            "    <script>pipeline {\n  agent any\n  stages {\n    stage(&apos;Build&apos;) {\n"
            "      steps { sh &apos;make&apos; }\n    }\n  }\n}</script>\n"
            "    <sandbox>true</sandbox>\n"
            "  </definition>\n"
            "  <triggers/>\n"
            "  <disabled>false</disabled>\n"
            f"</{tag}>"
        )
    axes_xml = ""
    if kind == "matrix":
        axes_xml = "  <axes>\n"
        for name, values in (axes or {}).items():
            axes_xml += "    <hudson.matrix.TextAxis>\n"
            axes_xml += f"      <name>{_x(name)}</name>\n      <values>\n"
            axes_xml += "".join(f"        <string>{_x(v)}</string>\n" for v in values)
            axes_xml += "      </values>\n    </hudson.matrix.TextAxis>\n"
        axes_xml += "  </axes>\n"
    plugin = ' plugin="matrix-project@849.v0cd64ed7e531"' if kind == "matrix" else ""
    return (
        DECL_SINGLE + f"<{tag}{plugin}>\n"
        "  <actions/>\n"
        "  <description></description>\n" + dn + "  <keepDependencies>false</keepDependencies>\n"
        "  <properties/>\n"
        '  <scm class="hudson.scm.NullSCM"/>\n'
        "  <canRoam>true</canRoam>\n"
        "  <disabled>false</disabled>\n"
        "  <blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>\n"
        "  <blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding>\n"
        "  <triggers/>\n"
        "  <concurrentBuild>false</concurrentBuild>\n" + axes_xml + "  <builders>\n"
        "    <hudson.tasks.Shell>\n"
        "      <command>make</command>\n"
        "    </hudson.tasks.Shell>\n"
        "  </builders>\n"
        "  <publishers/>\n"
        "  <buildWrappers/>\n"
        f"</{tag}>"
    )


def _multibranch_config() -> str:
    return (
        DECL_SINGLE + f'<{MULTIBRANCH_TAG} plugin="{WF_MULTIBRANCH}">\n'
        "  <actions/>\n"
        "  <description></description>\n"
        "  <properties/>\n"
        f'  <folderViews class="jenkins.branch.MultiBranchProjectViewHolder" plugin="{BRANCH_API}">\n'
        f'    <owner class="{MULTIBRANCH_TAG}" reference="../.."/>\n'
        "  </folderViews>\n"
        f'  <orphanedItemStrategy class="{FOLDER_PKG}.computed.DefaultOrphanedItemStrategy">\n'
        "    <pruneDeadBranches>true</pruneDeadBranches>\n"
        "    <daysToKeep>-1</daysToKeep>\n"
        "    <numToKeep>-1</numToKeep>\n"
        "  </orphanedItemStrategy>\n"
        f'  <sources class="jenkins.branch.MultiBranchProject$BranchSourceList" plugin="{BRANCH_API}">\n'
        "    <data>\n"
        "      <jenkins.branch.BranchSource>\n"
        '        <source class="jenkins.plugins.git.GitSCMSource" plugin="git@5.8.1">\n'
        "          <id>5b0c1c2e-8d47-4c1f-9d55-6f0e5d3c2a10</id>\n"
        "          <remote>https://git.example.com/acme/shop.git</remote>\n"
        "          <credentialsId></credentialsId>\n"
        "        </source>\n"
        "      </jenkins.branch.BranchSource>\n"
        "    </data>\n"
        f'    <owner class="{MULTIBRANCH_TAG}" reference="../.."/>\n'
        "  </sources>\n"
        '  <factory class="org.jenkinsci.plugins.workflow.multibranch.WorkflowBranchProjectFactory">\n'
        "    <scriptPath>Jenkinsfile</scriptPath>\n"
        "  </factory>\n"
        f"</{MULTIBRANCH_TAG}>"
    )


def _branch_config(branch: str) -> str:
    return (
        DECL_SINGLE + f'<flow-definition plugin="{WORKFLOW_JOB}">\n'
        "  <actions/>\n"
        "  <description></description>\n"
        f"  <displayName>{_x(branch)}</displayName>\n"
        "  <keepDependencies>false</keepDependencies>\n"
        "  <properties>\n"
        f'    <org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty plugin="{WF_MULTIBRANCH}">\n'
        f'      <branch plugin="{BRANCH_API}">\n'
        "        <sourceId>5b0c1c2e-8d47-4c1f-9d55-6f0e5d3c2a10</sourceId>\n"
        '        <head class="jenkins.plugins.git.GitBranchSCMHead" plugin="git@5.8.1">\n'
        f"          <name>{_x(branch)}</name>\n"
        "        </head>\n"
        '        <scm class="hudson.plugins.git.GitSCM" plugin="git@5.8.1">\n'
        "          <configVersion>2</configVersion>\n"
        "          <userRemoteConfigs>\n"
        "            <hudson.plugins.git.UserRemoteConfig>\n"
        "              <name>origin</name>\n"
        f"              <refspec>+refs/heads/{_x(branch)}:refs/remotes/origin/{_x(branch)}</refspec>\n"
        "              <url>https://git.example.com/acme/shop.git</url>\n"
        "            </hudson.plugins.git.UserRemoteConfig>\n"
        "          </userRemoteConfigs>\n"
        '          <branches class="singleton-list">\n'
        "            <hudson.plugins.git.BranchSpec>\n"
        f"              <name>{_x(branch)}</name>\n"
        "            </hudson.plugins.git.BranchSpec>\n"
        "          </branches>\n"
        "        </scm>\n"
        "        <properties/>\n"
        "        <actions/>\n"
        "      </branch>\n"
        "    </org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty>\n"
        "  </properties>\n"
        f'  <definition class="{WF_MB_PKG}.SCMBinder" plugin="{WF_MULTIBRANCH}">\n'
        "    <scriptPath>Jenkinsfile</scriptPath>\n"
        "  </definition>\n"
        "  <triggers/>\n"
        "  <disabled>false</disabled>\n"
        "</flow-definition>"
    )


# --------------------------------------------------------------------------------------------------
# example home and CLI


def _ms(text: str) -> int:
    """Epoch ms of an ISO-8601 UTC time such as ``2026-11-20T09:00:00``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def build_example(root: Path) -> JenkinsHome:
    """(Re)create the bundled example home with a little history. Times are fixed (2026-11-20)."""
    root = Path(root)
    for name in ("jobs", "builds", "config.xml"):
        p = root / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    home = JenkinsHome(root)

    hello = home.job("hello", "freestyle")
    for i, (result, start) in enumerate(
        [
            ("SUCCESS", "2026-11-20T09:00:00"),
            ("FAILURE", "2026-11-20T10:00:00"),
            ("SUCCESS", "2026-11-20T11:00:00"),
        ]
    ):
        run = hello.start(start_ms=_ms(start))
        run.log("+ make")
        run.log("make: building hello" if result == "SUCCESS" else "make: *** [all] Error 2")
        if result == "FAILURE":
            run.log("Build step 'Execute shell' marked build as failure")
        run.finish(
            result, duration_ms=42_000 + i * 1_000, commit=hashlib.sha1(f"hello{i}".encode()).hexdigest()
        )

    api = home.job("team/api", "pipeline")
    for i, start in enumerate(["2026-11-20T09:30:00", "2026-11-20T12:30:00"]):
        run = api.start(start_ms=_ms(start), cause="Started by an SCM change")
        run.log("[Pipeline] node")
        run.log("Running on built-in node in /var/jenkins_home/workspace/team/api")
        run.checkpoint()
        run.log("+ make test")
        run.finish("SUCCESS", duration_ms=95_000 + i * 5_000)
    running = api.start(start_ms=_ms("2026-11-20T15:30:00"))
    running.log("[Pipeline] node")
    running.log("Running on built-in node in /var/jenkins_home/workspace/team/api")
    running.checkpoint()
    running.log("+ make test")
    running.crash()

    nightly = home.job("nightly", "freestyle")
    run = nightly.start(start_ms=_ms("2026-11-18T02:00:00"), cause="Started by timer")
    run.log("+ ./run-nightly.sh")
    run.log("Build step 'Publish JUnit test result report' changed build result to UNSTABLE")
    run.finish("UNSTABLE", duration_ms=1_200_000)
    run = nightly.start(start_ms=_ms("2026-11-19T02:00:00"), cause="Started by timer")
    run.log("+ ./run-nightly.sh")
    run.finish("ABORTED", duration_ms=180_000, timed_out=True)
    run = nightly.start(start_ms=_ms("2026-11-20T02:00:00"), cause="Started by timer")
    run.log("+ ./run-nightly.sh")
    run.crash()

    matrix = home.job("matrix-demo", "matrix", axes={"OS": ["linux", "windows"]})
    matrix.start(start_ms=_ms("2026-11-20T08:00:00")).finish("SUCCESS", duration_ms=30_000)

    shop = home.multibranch("shop", ["main", "feature/login"])
    for i, (branch, job) in enumerate(shop.items()):
        run = job.start(start_ms=_ms(f"2026-11-20T1{3 + i}:00:00"), cause="Branch indexing")
        run.log(f"Obtained Jenkinsfile from {hashlib.sha1(branch.encode()).hexdigest()}")
        run.finish("SUCCESS", duration_ms=61_000, commit=hashlib.sha1(branch.encode()).hexdigest())
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fake_jenkins", description="Write Jenkins build records like Jenkins."
    )
    parser.add_argument("--home", required=True, type=Path, help="JENKINS_HOME directory")
    parser.add_argument("--builds-dir", default=None, help="buildsDir template (writes global config.xml)")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="run one build of JOB (created if missing)")
    b.add_argument("job")
    b.add_argument("--kind", choices=KINDS, default=None, help="job kind when creating (default freestyle)")
    b.add_argument("--result", choices=RESULTS, default="SUCCESS")
    b.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    b.add_argument("--steps", type=int, default=3, help="log lines spread over the duration")
    b.add_argument("--cause", default="Started by user admin")
    b.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a build parameter (repeatable)"
    )
    sub.add_parser("example", help="(re)create the bundled example home")
    args = parser.parse_args(argv)

    if args.command == "example":
        build_example(args.home)
        print(f"example Jenkins home written to {args.home}")
        return 0
    home = JenkinsHome(args.home, builds_dir=args.builds_dir)
    job = home.job(args.job, args.kind or "freestyle")
    run = job.start(cause=args.cause, parameters=dict(p.split("=", 1) for p in args.param))
    steps = max(0, args.steps)
    pause = args.duration / (steps + 1) if args.duration > 0 else 0.0
    for i in range(steps):
        time.sleep(pause)
        run.log(f"step {i + 1}/{steps}")
        run.checkpoint()
    time.sleep(pause)
    run.finish(args.result, timed_out=args.result == "ABORTED")
    print(f"{job.full_name} #{run.number} {args.result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
