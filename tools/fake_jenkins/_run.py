"""A run's lifecycle on disk, in Jenkins' order: log lines, Pipeline checkpoints, then completion.

The order of a run's writes is what a watcher has to get right (Pipeline's running build.xml, then
permalinks, ``Finished:`` and the final build.xml by rename; a matrix run's children before it), so
the run's writes and the build.xml record they produce stay together here.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tools.fake_jenkins._actions import (
    _cause_action,
    _git_build_data,
    _interrupted_action,
    _parameters_action,
)
from tools.fake_jenkins._causes import _Cause
from tools.fake_jenkins._console_notes import _hidden_note
from tools.fake_jenkins._files import _append, _atomic_write, _inplace_write
from tools.fake_jenkins._formats import (
    BUILD_TAGS,
    DECL_DOUBLE,
    DECL_SINGLE,
    GROOVY_LIB,
    JENKINS_VERSION,
    RESULTS,
    WORKFLOW_JOB,
)
from tools.fake_jenkins._permalinks import _update_permalinks
from tools.fake_jenkins._xml_text import _indent, _x

if TYPE_CHECKING:
    from tools.fake_jenkins._job import Job

_queue_ids = itertools.count(1)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


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

    def changelog(self, messages: list[str], *, author: str = "Dev <dev@example.com>") -> Path:
        """One checkout's changelog as the git plugin writes it (``git whatchanged``'s raw form, plain
        text despite the name): ``changelog.xml`` for a freestyle run, ``changelog<N>.xml`` (the first
        number not taken) for a Pipeline. One commit per message, the message indented by four
        spaces, a file line after it."""
        lines: list[str] = []
        for i, message in enumerate(messages):
            sha = f"{self.number:08x}{i:08x}".ljust(40, "a")
            stamp = f"{self.start_ms // 1000 - len(messages) + i} +0000"
            lines += [f"commit {sha}", f"tree {'b' * 40}", f"parent {'c' * 40}"]
            lines += [f"author {author} {stamp}", f"committer {author} {stamp}", ""]
            lines += [f"    {line}" for line in message.splitlines()]
            lines += ["", f":100644 100644 {'d' * 7} {'e' * 7} M\tsrc/file{i}.txt", ""]
        if self.job.kind == "pipeline":
            name = next(
                f"changelog{n}.xml"
                for n in itertools.count()
                if not (self.dir / f"changelog{n}.xml").exists()
            )
        else:
            name = "changelog.xml"
        path = self.dir / name
        _atomic_write(path, "\n".join(lines).encode())
        return path

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
