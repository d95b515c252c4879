"""The Jenkins source: where a home keeps its jobs and runs, and what one run looks like right now.

It reads files and hands the bytes to ``parsers``; it decides nothing about Compass. Which directory
is a job is the job tree's business (``layout``); this module finds the runs worth a look (a scan,
a poll) and reads one run's ``build.xml`` and log into ``RunFacts``.
"""

from __future__ import annotations

import gzip
import logging
import os
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from daemon.config import JenkinsSourceSettings
from daemon.events import RunFacts
from daemon.ops.logs import about
from daemon.sources.jenkins.commits import CommitCache
from daemon.sources.jenkins.layout import Job, JobTree, Layout
from parsers import (
    BuildXml,
    LogFacts,
    ParseError,
    UnsafeXmlError,
    build_dir_number,
    is_ignored_name,
    legacy_build_dir_time,
    parse_build_xml,
    parse_log,
)

__all__ = ["Gone", "JenkinsSource", "Job", "Retry"]

log = logging.getLogger("buildtail.jenkins")

LOG_WINDOW = 64 * 1024
GZ_TAIL_LIMIT = 256 * 1024 * 1024
FRESH_NS = 2_000_000_000  # a builds directory changed this recently is listed again at the next sweep
FINISHED_WITHOUT_RECORD_S = 30.0
RUN_FILES = frozenset({"build.xml", "log", "log.gz"})  # the files whose changes can change a run


@dataclass(frozen=True, slots=True)
class Retry:
    """The run's files are mid-write; look again after ``delay`` seconds."""

    delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class Gone:
    """The run directory disappeared (discarded) or is not a run; stop watching it."""


class JenkinsSource:
    """One Jenkins home. Methods are synchronous and meant to run off the event loop when large."""

    def __init__(self, cfg: JenkinsSourceSettings, *, host: str, changelog: bool = False) -> None:
        self.cfg = cfg
        # read each run's commits (changelog*.xml): only a sink that needs them (Jira) pays for it
        self.changelog = changelog
        self.name = cfg.name
        self.home = cfg.home
        self.base_url = cfg.url or f"http://{host}:8080/"
        self.tree = JobTree(cfg)
        self._builds_mtime: dict[Path, int] = {}
        self._builds_names: dict[Path, set[str]] = {}
        self._unsafe: set[Path] = set()
        self._commits = CommitCache()  # the commits of the runs watched, while their changelogs stay

    @property
    def layout(self) -> Layout:
        return self.tree.layout

    def discover(self) -> Layout:
        """Walks the job tree (not the builds) and replaces the layout; returns it."""
        return self.tree.discover()

    def note_run(self, run_dir: Path) -> None:
        """A hint named this run directory: a later ``relist`` need not report it."""
        names = self._builds_names.get(run_dir.parent)
        if names is not None:
            names.add(run_dir.name)

    def sweep(self, since_ms: int, hinted: set[Path]) -> list[Path]:
        """Run directories that appeared without a hint: one ``stat`` per job, and a listing of each
        builds directory that changed since it was last listed. A name not listed or hinted before
        is new; in a directory not listed since the start, a run changed since ``since_ms`` is.

        It runs on the event loop right after a burst of builds, when the next burst may be due:
        the names are compared as sets, and only a new name's entry is looked at (a listing of
        50 jobs with 30 runs each costs about 1 ms, where checking every entry cost 15 ms)."""
        out: list[Path] = []
        fresh_ns = time.time_ns() - FRESH_NS
        for job in list(self.layout.jobs.values()):
            builds = job.builds_dir
            try:
                mtime = os.stat(builds).st_mtime_ns
            except OSError:
                continue
            if self._builds_mtime.get(builds) == mtime:
                continue
            try:
                with os.scandir(builds) as listing:
                    entries = {entry.name: entry for entry in listing}
            except OSError:
                continue
            known = self._builds_names.get(builds)
            new = entries.keys() if known is None else entries.keys() - known
            for name in new:
                entry = entries[name]
                if not _is_run_entry(entry):
                    continue
                path = Path(entry.path)
                if path in hinted or (known is None and _dir_mtime_ms(entry) < since_ms):
                    continue
                out.append(path)
            self._builds_names[builds] = set(entries)  # other names too: they are never run directories
            if mtime < fresh_ns:  # a run made within the same timestamp tick would not move it
                self._builds_mtime[builds] = mtime
        return out

    def containers_changed(self) -> bool:
        return self.tree.containers_changed()

    # --- finding runs ---------------------------------------------------------------------------

    def runs_in(self, job: Job) -> list[os.DirEntry[str]]:
        try:
            entries = list(os.scandir(job.builds_dir))
        except OSError:
            return []
        return [e for e in entries if _is_run_entry(e)]

    def scan(
        self, *, first_start: bool, since_ms: int | None, open_dirs: set[Path], jobs: list[Job] | None = None
    ) -> list[Path]:
        """Run directories worth a look: running ones, and anything written since ``since_ms``.

        On the very first start every finished run is history, so only running ones are returned;
        after that a run whose files are older than the last complete scan was already handled.
        """
        out: list[Path] = [d for d in open_dirs if d.parent in self.layout.jobs]
        for job in list(self.layout.jobs.values()) if jobs is None else jobs:
            try:
                st = os.stat(job.builds_dir)
            except OSError:
                continue
            if since_ms is not None and not first_start and st.st_mtime_ns // 1_000_000 < since_ms:
                # No run directory was created, renamed or removed here since the last complete scan;
                # runs that finish change their own directory, and those are the open ones above.
                self._builds_mtime[job.builds_dir] = st.st_mtime_ns
                continue
            entries = self.runs_in(job)
            self._builds_mtime[job.builds_dir] = st.st_mtime_ns
            self._builds_names[job.builds_dir] = {e.name for e in entries}
            for entry in entries:
                path = Path(entry.path)
                if path in open_dirs:
                    continue
                if first_start:
                    if _looks_running(path, job.pipeline, self.cfg.stale_after):
                        out.append(path)
                elif since_ms is None or _dir_mtime_ms(entry) >= since_ms:
                    out.append(path)
        return out

    def poll(self, open_dirs: set[Path]) -> tuple[list[Path], bool]:
        """Stat-only change detection for file systems without inotify: (candidates, jobs changed)."""
        out: list[Path] = []
        for job in list(self.layout.jobs.values()):
            try:
                mtime = os.stat(job.builds_dir).st_mtime_ns
            except OSError:
                continue
            previous = self._builds_mtime.get(job.builds_dir)
            if previous == mtime:
                continue
            self._builds_mtime[job.builds_dir] = mtime
            names = {e.name: e for e in self.runs_in(job)}
            known = self._builds_names.get(job.builds_dir)
            if known is not None:
                out.extend(Path(names[n].path) for n in names.keys() - known)
            elif previous is not None:  # settled by its mtime at startup: what changed since then is new
                since = previous // 1_000_000 - 2000
                out.extend(Path(e.path) for e in names.values() if _dir_mtime_ms(e) >= since)
            self._builds_names[job.builds_dir] = set(names)
        out.extend(open_dirs)
        return out, self.tree.changed(self.layout.containers | self.layout.pending) | self.tree.take_fresh()

    def job_of(self, run_dir: Path) -> Job | None:
        return self.layout.jobs.get(run_dir.parent)

    def run_dir(self, job_name: str, number: int) -> Path | None:
        job = self.layout.by_name.get(job_name)
        return None if job is None else job.builds_dir / str(number)

    # --- observing one run ----------------------------------------------------------------------

    def observe(self, run_dir: Path, *, known_open: bool = False) -> RunFacts | Retry | Gone | None:
        """The run's facts now; Retry for a half-written record; None while there is nothing to report.
        The commits of a run still to be looked at again stay cached; a finished or gone run's go."""
        seen = self._observe(run_dir, known_open=known_open)
        if not isinstance(seen, Retry) and not (isinstance(seen, RunFacts) and seen.running):
            self._commits.forget(run_dir)
        return seen

    def forget(self, run_dir: Path) -> None:
        """The run is no longer watched: what was kept of it goes."""
        self._commits.forget(run_dir)

    def _observe(self, run_dir: Path, *, known_open: bool) -> RunFacts | Retry | Gone | None:
        job = self.job_of(run_dir)
        if job is None or run_dir in self._unsafe:
            return Gone()
        try:
            dir_st = os.stat(run_dir, follow_symlinks=False)
        except FileNotFoundError:
            return Gone()
        except OSError as exc:
            return Retry(30.0, f"cannot stat {run_dir}: {exc.strerror}")
        record: BuildXml | None = None
        record_mtime = 0
        try:
            with open(run_dir / "build.xml", "rb") as fh:
                record_mtime = os.fstat(fh.fileno()).st_mtime_ns // 1_000_000
                data = fh.read()
            record = parse_build_xml(data)
        except FileNotFoundError:
            pass
        except UnsafeXmlError as exc:
            log.error(
                "%s: %s/build.xml refused (%s); this run is ignored",
                self.name,
                run_dir,
                exc,
                extra=about(source=self.name, path=run_dir / "build.xml"),
            )
            self._unsafe.add(run_dir)
            return Gone()
        except ParseError as exc:
            return Retry(1.0, f"{run_dir}/build.xml not readable yet: {exc}")
        except OSError as exc:
            return Retry(5.0, f"cannot read {run_dir}/build.xml: {exc.strerror}")
        number = build_dir_number(run_dir.name)
        legacy_start = legacy_build_dir_time(run_dir.name)
        if number is None:
            number = record.number if record is not None else None
            if number is None or not 0 < number < 2**31:  # Jenkins build numbers are Java ints
                return None if record is None else Gone()
        logfacts, log_mtime = _read_log(run_dir)
        base = RunFacts(
            source=self.name,
            job=job.full_name,
            number=number,
            running=True,
            start_ms=0,
            start_is_exact=False,
            dir_ino=_signed64(dir_st.st_ino),
            written_ms=max(dir_st.st_mtime_ns // 1_000_000, log_mtime or 0, record_mtime),
            run_url=f"{self.base_url}{job.url_path}{number}/",
            job_url=f"{self.base_url}{job.url_path}",
            head=self.tree.head_of(job),
        )
        if record is not None:
            start = record.started_ms
            exact = start is not None
            if start is None:
                start = (
                    int(legacy_start.timestamp() * 1000)
                    if legacy_start
                    else _fallback_start(dir_st, log_mtime)
                )
            facts = replace(
                base,
                start_ms=start,
                start_is_exact=exact,
                display_name=record.display_name,
                causes=record.causes or (logfacts.causes if logfacts else ()),
                commit=record.commit or (logfacts.commit if logfacts else None),
                branch=record.branch,
                parameters=record.parameters,
                commits=self._commits.commits(run_dir) if self.changelog else (),
            )
            if not record.finished:
                return facts
            return replace(
                facts,
                running=False,
                result=record.result,
                end_ms=start + max(0, record.duration_ms or 0),
                timed_out=bool(logfacts and logfacts.timed_out),
            )
        if logfacts is None or log_mtime is None:
            return None  # the directory exists but Jenkins has not opened the log yet
        if not logfacts.causes and time.time() - log_mtime / 1000 < 1.0 and _is_empty(run_dir / "log"):
            return Retry(0.1, "the log was just created; waiting for its first line")
        facts = replace(
            base,
            start_ms=_fallback_start(dir_st, log_mtime),
            causes=logfacts.causes,
            commit=logfacts.commit,
            parameters=None,  # kept in build.xml, which a freestyle run writes when it ends
            commits=self._commits.commits(run_dir) if self.changelog else (),
        )
        idle = time.time() - log_mtime / 1000
        if logfacts.finished_result is not None:
            if idle < FINISHED_WITHOUT_RECORD_S:
                return Retry(FINISHED_WITHOUT_RECORD_S - idle + 0.5, "waiting for the final build.xml")
            return replace(
                facts,
                running=False,
                result=logfacts.finished_result,
                timed_out=logfacts.timed_out,
                end_ms=log_mtime,
            )
        if idle > self.cfg.stale_after:
            if not known_open:
                return None
            log.warning(
                "%s: %s #%s: no build.xml and the log idle for %.0fs; reporting it as UNKNOWN",
                self.name,
                job.full_name,
                number,
                idle,
                extra=about(source=self.name, path=run_dir),
            )
            return replace(facts, running=False, result="UNKNOWN", end_ms=log_mtime)
        return facts


def _signed64(value: int) -> int:
    """64-bit inode numbers (NFS, overlayfs) as SQLite's signed integers."""
    return value if value < 2**63 else value - 2**64


def is_run_dir_name(name: str) -> bool:
    """A build number or a legacy date: the only names of run directories in a builds directory."""
    if is_ignored_name(name):
        return False
    return build_dir_number(name) is not None or legacy_build_dir_time(name) is not None


def _is_run_entry(entry: os.DirEntry[str]) -> bool:
    if not is_run_dir_name(entry.name):
        return False
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _is_empty(path: Path) -> bool:
    try:
        return os.stat(path).st_size == 0
    except OSError:
        return False


def _dir_mtime_ms(entry: os.DirEntry[str]) -> int:
    """A run directory's mtime moves whenever Jenkins creates or renames a file in it (log, build.xml)."""
    try:
        return entry.stat(follow_symlinks=False).st_mtime_ns // 1_000_000
    except OSError:
        return 0


def _looks_running(run_dir: Path, pipeline: bool, stale_after: float) -> bool:
    """Cheap first-start triage of a run directory: one stat for most history, no XML parse.

    Freestyle, matrix and Maven runs have no build.xml until they finish; a Pipeline run writes
    one at once and says ``<completed>false</completed>`` near its end while it runs.
    """
    record = run_dir / "build.xml"
    if not pipeline:
        try:
            os.stat(record)
            return False
        except FileNotFoundError:
            pass
        except OSError:
            return False
    else:
        try:
            with open(record, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(max(0, size - 512))
                tail = fh.read()
                if b"<completed>" in tail:
                    return b"<completed>false</completed>" in tail
                fh.seek(0)  # an old Pipeline record without <completed>: read it properly
                return not parse_build_xml(fh.read()).finished
        except FileNotFoundError:
            pass
        except (OSError, ParseError):
            return True  # unreadable now: look at it properly later
    try:
        mtime = os.stat(run_dir / "log").st_mtime
    except OSError:
        return False
    return time.time() - mtime < stale_after


def _fallback_start(dir_st: os.stat_result, log_mtime_ms: int | None) -> int:
    """Jenkins makes the run directory and its log at the start: the earlier of the two is the best guess."""
    candidates = [dir_st.st_mtime_ns // 1_000_000]
    if log_mtime_ms is not None:
        candidates.append(log_mtime_ms)
    return min(candidates)


def _read_log(run_dir: Path) -> tuple[LogFacts | None, int | None]:
    plain = run_dir / "log"
    try:
        with open(plain, "rb") as fh:
            st = os.fstat(fh.fileno())
            head = fh.read(LOG_WINDOW)
            if st.st_size > LOG_WINDOW:
                fh.seek(max(0, st.st_size - LOG_WINDOW))
                tail = fh.read(LOG_WINDOW)
            else:
                tail = head
        return parse_log(head, tail), st.st_mtime_ns // 1_000_000
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.debug("cannot read %s: %s", plain, exc.strerror, extra=about(path=plain))
        return None, None
    packed = run_dir / "log.gz"
    try:
        mtime = os.stat(packed).st_mtime_ns // 1_000_000
        head, tail = _gz_head_tail(packed)
        return parse_log(head, tail), mtime
    except (OSError, EOFError, zlib.error):
        return None, None


def _gz_head_tail(path: Path) -> tuple[bytes, bytes]:
    head = b""
    tail = b""
    total = 0
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(LOG_WINDOW):
            if not head:
                head = chunk
            tail = (tail + chunk)[-LOG_WINDOW:]
            total += len(chunk)
            if total > GZ_TAIL_LIMIT:
                break
    return head, tail
