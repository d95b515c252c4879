"""A job's own files: nextBuildNumber, the builds directory with legacyIds, and its builds' births and deaths.

Numbering is where a build begins on disk (nextBuildNumber is rewritten before ``builds/<N>/``
exists) and deletion is where it ends (``builds/.<N>`` before removal); both, and the pre-1.597
records a home can still hold, belong to the job rather than to any one run.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tools.fake_jenkins._causes import _Cause
from tools.fake_jenkins._console_notes import _hidden_note
from tools.fake_jenkins._files import _append, _atomic_write
from tools.fake_jenkins._formats import BUILD_TAGS, DECL_LEGACY, DURABILITY, RESULTS
from tools.fake_jenkins._run import Run, _now_ms
from tools.fake_jenkins._xml_text import _x

if TYPE_CHECKING:
    from tools.fake_jenkins._home import JenkinsHome


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
