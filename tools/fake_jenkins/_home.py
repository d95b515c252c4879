"""A JENKINS_HOME's layout: the global config, folders, multibranch projects, job directories, buildsDir.

Where a job's directory and its builds directory are depends on the folders above it, on multibranch
name mangling and on the ``buildsDir`` template of the global config; resolving a full name to those
directories, creating what is missing or opening what exists, is this module's one concern.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path

from tools.fake_jenkins._config_xml import _branch_config, _folder_config, _job_config, _multibranch_config
from tools.fake_jenkins._files import _atomic_write
from tools.fake_jenkins._formats import (
    DECL_SINGLE,
    FOLDER_TAG,
    JENKINS_VERSION,
    JOB_TAGS,
    KINDS,
    MULTIBRANCH_TAG,
)
from tools.fake_jenkins._heads import Head
from tools.fake_jenkins._job import Job
from tools.fake_jenkins._names import _decode_item_name, _encode_item_name, mangle_branch_name
from tools.fake_jenkins._xml_text import _x


def _root_tag(config: Path) -> str | None:
    try:
        return ET.parse(config).getroot().tag
    except (OSError, ET.ParseError):
        return None


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

    def multibranch(
        self, name: str, branches: list[str], *, heads: Mapping[str, Head] | None = None
    ) -> dict[str, Job]:
        """A multibranch Pipeline project with one branch job per branch name; ``heads`` says what a
        branch job builds (a pull request, a tag, the primary branch) and from which branch source."""
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
                head = (heads or {}).get(branch)
                _atomic_write(bdir / "config.xml", _branch_config(branch, head).encode())
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
