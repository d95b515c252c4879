"""A Jenkins home's job tree: which directory is a job, where its builds live, what to watch.

Discovery walks ``jobs/`` (folders, multibranch and organization folders, matrix configurations, a
custom ``<buildsDir>`` from the global ``config.xml``) without descending into the builds, so what
is watched stays at one directory per job. The containers (``jobs/``, ``branches/``) are not
watched: one ``stat`` of each every few seconds says whether a job came or went.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from daemon.config import JenkinsSourceSettings
from daemon.ops.logs import LogOnce, about
from parsers import (
    BranchHead,
    ParseError,
    encode_item_name,
    expand_builds_dir,
    parse_branch_head,
    parse_branch_name,
    parse_builds_dir_setting,
)

__all__ = ["Job", "JobTree", "Layout"]

log = logging.getLogger("buildtail.jenkins")

FRESH_CONTAINER_NS = 2_000_000_000  # a container changed this recently is listed again at the next check


@dataclass(frozen=True, slots=True)
class Job:
    full_name: str
    dir: Path
    builds_dir: Path
    url_path: str
    pipeline: bool = False  # a Pipeline job writes build.xml while running
    branch: bool = False  # a multibranch project's branch job: its config.xml names its head


@dataclass
class Layout:
    jobs: dict[Path, Job] = field(default_factory=dict)  # builds dir -> job
    by_name: dict[str, Job] = field(default_factory=dict)
    containers: set[Path] = field(default_factory=set)  # jobs/ and branches/ dirs
    pending: set[Path] = field(default_factory=set)  # job dirs whose builds dir does not exist yet


class JobTree:
    """The jobs of one home, as of the last ``discover``."""

    def __init__(self, cfg: JenkinsSourceSettings) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.home = cfg.home
        self.layout = Layout()
        self._mtimes: dict[Path, int] = {}  # containers and pending job dirs -> mtime when last seen
        self._fresh_containers: set[Path] = set()
        self._visited: dict[tuple[int, int], Path] = {}  # (device, inode) -> the path it was read as
        self._said = LogOnce(log)
        self._heads: dict[Path, tuple[int, BranchHead | None]] = {}  # branch job dir -> (mtime, head)

    def discover(self) -> Layout:
        """Walks the job tree (not the builds) and replaces the layout; returns it."""
        template = None
        try:
            template = parse_builds_dir_setting((self.home / "config.xml").read_bytes())
        except FileNotFoundError:
            pass
        except (OSError, ParseError) as exc:
            log.warning(
                "%s: cannot read %s/config.xml (%s); assuming the default builds directory",
                self.name,
                self.home,
                exc,
                extra=about(source=self.name, path=self.home / "config.xml"),
            )
        layout = Layout()
        root = self.home / "jobs"
        self._visited = {}
        if root.is_dir() and self._first_visit(root):
            layout.containers.add(root)
            self._walk(root, [], [], "", template, layout)
        self.layout = layout
        branch_dirs = {job.dir for job in layout.jobs.values() if job.branch}
        self._heads = {d: head for d, head in self._heads.items() if d in branch_dirs}  # deleted ones go
        return layout

    def _first_visit(self, d: Path) -> bool:
        """Whether this pass has not been in the directory yet, by device and inode: a symlink that
        leads back up the tree (``jobs/loop/jobs -> ../../jobs``) or a second name for a job would
        otherwise be walked again, as phantom jobs whose history looks new. Said once per path."""
        try:
            st = os.stat(d)
        except OSError as exc:
            self._said(
                d,
                logging.WARNING,
                "%s: cannot read %s: %s",
                self.name,
                d,
                exc.strerror,
                extra=about(source=self.name, path=d),
            )
            return False
        first = self._visited.setdefault((st.st_dev, st.st_ino), d)
        if first == d:
            return True
        self._said(
            d,
            logging.WARNING,
            "%s: %s leads to %s, which is already read (a symlink loop or a second name); not read again",
            self.name,
            d,
            first,
            extra=about(source=self.name, path=d),
        )
        return False

    def _walk(
        self,
        container: Path,
        parts: list[str],
        names: list[str],
        url: str,
        template: str | None,
        layout: Layout,
    ) -> None:
        branches = container.name == "branches"
        try:  # the mtime before the listing: a job made while listing still counts as a change
            mtime = self._mtimes[container] = os.stat(container).st_mtime_ns
            if time.time_ns() - mtime < FRESH_CONTAINER_NS:
                # a second job made within the same timestamp tick would leave the mtime as it is
                self._fresh_containers.add(container)
            entries = sorted(os.scandir(container), key=lambda e: e.name)
        except OSError as exc:
            log.warning(
                "%s: cannot list %s: %s",
                self.name,
                container,
                exc.strerror,
                extra=about(source=self.name, path=container),
            )
            return
        # real directories before symlinks: a job reached both ways keeps its real name
        for entry in sorted(entries, key=_is_symlink):
            if entry.name.startswith(".") or not _is_dir(entry):
                continue
            d = Path(entry.path)
            if not self._first_visit(d):
                continue
            name = item = entry.name
            if branches:  # the directory name is mangled; the branch job's config has the real name
                name = _branch_name(d) or name
                item = encode_item_name(name)
            job_url = f"{url}job/{quote(item, safe='')}/"
            sub = next((d / s for s in ("jobs", "branches") if (d / s).is_dir()), None)
            if sub is not None:
                if self._first_visit(sub):
                    layout.containers.add(sub)
                    self._walk(sub, [*parts, item, sub.name], [*names, name], job_url, template, layout)
                continue
            full = "/".join([*names, name])
            self._add_job(layout, d, full, [*parts, item], job_url, template, branch=branches)
            if self.cfg.matrix_configurations and (d / "configurations").is_dir():
                self._walk_configurations(
                    d / "configurations", [], full, job_url, [*parts, item], template, layout
                )

    def _walk_configurations(
        self,
        d: Path,
        axes: list[str],
        parent: str,
        url: str,
        parts: list[str],
        template: str | None,
        layout: Layout,
    ) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for axis in entries:
            if not axis.name.startswith("axis-") or not axis.is_dir(follow_symlinks=False):
                continue
            for value in sorted(os.scandir(axis.path), key=lambda e: e.name):
                if not value.is_dir(follow_symlinks=False):
                    continue
                combo = [*axes, f"{axis.name[5:]}={value.name}"]
                vdir = Path(value.path)
                if (vdir / "builds").is_dir() or (vdir / "config.xml").is_file():
                    name = ",".join(combo)
                    self._add_job(
                        layout,
                        vdir,
                        f"{parent}/{name}",
                        [*parts, "configurations", name],
                        f"{url}{quote(name, safe='=,')}/",
                        template,
                    )
                self._walk_configurations(vdir, combo, parent, url, parts, template, layout)

    def _add_job(
        self,
        layout: Layout,
        d: Path,
        full: str,
        parts: list[str],
        url: str,
        template: str | None,
        *,
        branch: bool = False,
    ) -> None:
        builds = d / "builds"
        if template:
            item_full = "/".join(parts[::2])
            builds = Path(
                expand_builds_dir(
                    template, jenkins_home=str(self.home), item_rootdir=str(d), item_full_name=item_full
                )
            )
        job = Job(
            full_name=full, dir=d, builds_dir=builds, url_path=url, pipeline=_is_pipeline(d), branch=branch
        )
        layout.jobs[builds] = job
        layout.by_name[full] = job
        if not builds.is_dir():
            layout.pending.add(d)

    def head_of(self, job: Job) -> BranchHead | None:
        """A branch job's head (branch, pull request or tag, and its metadata), read again only when
        its ``config.xml`` changed: branch indexing rewrites it when a pull request's title changes
        or the default branch moves. None for other jobs and while the file cannot be read."""
        if not job.branch:
            return None
        config = job.dir / "config.xml"
        try:
            mtime = os.stat(config).st_mtime_ns
        except OSError:
            return None
        cached = self._heads.get(job.dir)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            head = parse_branch_head(config.read_bytes())
        except (OSError, ParseError):
            return cached[1] if cached is not None else None  # mid-write: the last good reading
        self._heads[job.dir] = (mtime, head)
        return head

    def containers_changed(self) -> bool:
        """Whether a job was created or removed since the last discovery: a container's mtime moves
        then. One ``stat`` per container, which is why the containers need no inotify watch. A
        container listed within FRESH_CONTAINER_NS of its last change counts as changed once more:
        timestamps move in ticks (up to a second on some file systems), so a job made just after the
        listing may not have moved it."""
        return self.changed(self.layout.containers) | self.take_fresh()

    def take_fresh(self) -> bool:
        fresh = bool(self._fresh_containers)
        self._fresh_containers.clear()
        return fresh

    def changed(self, dirs: set[Path]) -> bool:
        changed = False
        for d in dirs:
            try:
                mtime = os.stat(d).st_mtime_ns
            except OSError:
                changed = True
                continue
            if self._mtimes.setdefault(d, mtime) != mtime:
                self._mtimes[d] = mtime
                changed = True
        return changed


def _is_symlink(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """A directory, or a symlink to one (a job kept on another volume)."""
    try:
        return entry.is_dir()
    except OSError:  # a symlink to itself, a dangling one: not a job
        return False


def _branch_name(d: Path) -> str | None:
    """A branch job's real name: its branch property, else ``name-utf8.txt`` (branch-api's name
    mangler keeps it there), else the URL-encoded directory name of branch-api before the mangler."""
    try:
        if name := parse_branch_name((d / "config.xml").read_bytes()):
            return name
    except (OSError, ParseError):
        pass
    try:
        if name := (d / "name-utf8.txt").read_text(encoding="utf-8").strip():
            return name
    except (OSError, UnicodeDecodeError):
        pass
    if "%" in d.name:
        try:
            return unquote(d.name, errors="strict")
        except UnicodeDecodeError:
            return None
    return None


def _is_pipeline(job_dir: Path) -> bool:
    try:
        with open(job_dir / "config.xml", "rb") as fh:
            head = fh.read(512)
    except OSError:
        return True  # unknown: treat as one, which only costs a small read per run at first start
    return b"<flow-definition" in head or b"WorkflowJob" in head
