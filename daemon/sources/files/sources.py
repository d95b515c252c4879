"""Sources for CI servers that are not Jenkins: tailed log files and per-run result files.

Both turn files into the same ``RunFacts`` the Jenkins source produces, so the event rules, the
store and the sender are shared. Each batch they yield carries the checkpoint that must be
committed in the same transaction as the events it produced: a crash before the commit re-reads
the same bytes and makes the same decisions, a crash after it never reads them again.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import tz as dateutil_tz

from daemon.clock import now_ms
from daemon.config import LogSourceSettings, ResultFileSourceSettings
from daemon.events import RunFacts
from daemon.ops.logs import ReportOnce, about
from daemon.sources.files.globbing import PatternWalker
from daemon.sources.files.tailed import Problems
from daemon.sources.files.tailer import Checkpoint, Chunk, Problem, Tailer
from parsers import (
    GoCDConsole,
    LineEvent,
    ParseError,
    ResultFileError,
    ResultRecord,
    RuleSet,
    parse_console_path,
    parse_cruisecontrol_log,
    parse_junit,
    parse_result_file,
    render_template,
)

__all__ = [
    "FIRST_POLL_MARK",
    "STARTED_MARK",
    "FileBatch",
    "LogSource",
    "ResultFileSource",
    "checkpoint_value",
]

STARTED_MARK = "#started"  # a log source's checkpoint that says its first start is behind it
FIRST_POLL_MARK = "#first_poll"  # a result-file source's: {"done": bool}, written before and after it
SETTLE_S = 2.0  # an unreadable file written this recently is most likely still being written
READ_PIECE = 4 << 20  # GoCD consoles are read in pieces of this size

log = logging.getLogger("buildtail.files")


@dataclass
class FileBatch:
    """What one piece of input produced, and the checkpoint to commit together with it."""

    facts: list[RunFacts]
    checkpoint: tuple[str, Any] | None  # (key, JSON-able value) in this source's checkpoint space
    after_commit: Callable[[], None] | None = None
    # seen to appear after the source started looking; False for a file there at its very first
    # poll, whose runs the history policy judges by their times
    arrived: bool = True


def _zone(name: str | None) -> tzinfo:
    """The named zone, else this machine's as the process sees it now (``TZ``), with its
    daylight-saving rules rather than today's offset."""
    return ZoneInfo(name) if name else dateutil_tz.tzlocal()


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _url(template: str | None, fields: Mapping[str, str], fallback: str) -> str:
    return render_template(template, fields) if template else fallback


class LogSource:
    """``type: log``: lines that say a run started or finished, in files matched by globs."""

    def __init__(self, cfg: LogSourceSettings, *, host: str, checkpoints: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.host = host
        rules = cfg.rules
        self.rules = RuleSet(
            start=rules.start,
            finish=rules.finish,
            time_format=rules.time_format,
            tz=_zone(rules.timezone),
            ids_from_lines=rules.id is None,
        )
        self.path_pattern = re.compile(cfg.path_pattern) if cfg.path_pattern else None
        first_start = STARTED_MARK not in checkpoints  # kept even when no file existed back then
        self.tailer = Tailer(cfg.paths, max_line_bytes=cfg.max_line_bytes, start_at_end_for_new=first_start)
        loaded = (_checkpoint(k, v) for k, v in checkpoints.items() if k != STARTED_MARK)
        self.tailer.load(cp for cp in loaded if cp is not None)
        self._first_poll = first_start

    def watched_dirs(self) -> set[Path]:
        return self.tailer.watched_dirs()

    def first_look(self) -> None:
        """The source is new (the history policy says so): what its files hold now is history."""
        self._first_poll = True
        self.tailer.start_at_end_for_new = True

    def poll(self) -> Iterator[FileBatch | Problem]:
        """Everything new in the files; at the source's first poll existing content is not read: the
        history policy would keep it out, and a log of a busy server is large."""
        for item in self.tailer.poll():
            if isinstance(item, Problem):
                yield item
                continue
            facts = self._facts(item)
            cp = item.checkpoint
            yield FileBatch(facts, (cp.key, checkpoint_value(cp)), partial(self.tailer.commit, cp))
        if self._first_poll:
            self._first_poll = False
            self.tailer.start_at_end_for_new = False

    def _facts(self, chunk: Chunk) -> list[RunFacts]:
        path_fields: dict[str, str] = {}
        if self.path_pattern is not None and (m := self.path_pattern.search(chunk.path)):
            path_fields = {k: v for k, v in m.groupdict().items() if v is not None}
        try:
            mtime_ms = int(os.stat(chunk.path).st_mtime * 1000)
        except OSError:
            mtime_ms = now_ms()
        events = self.rules.scan(chunk.buffer, chunk.length)  # the lines where they were read, not a copy
        return [self._one(ev, path_fields, chunk.path, mtime_ms) for ev in events]

    def _one(self, ev: LineEvent, path_fields: dict[str, str], path: str, mtime_ms: int) -> RunFacts:
        fields = {**path_fields, **ev.fields}
        run_id = render_template(self.cfg.rules.id, fields) if self.cfg.rules.id else ev.id
        fields.setdefault("id", run_id)
        job = render_template(self.cfg.rules.pipeline, fields).removesuffix(f"#{run_id}")
        fields["pipeline"] = job
        when = _ms(ev.time) if ev.time is not None else mtime_ms
        url = _url(self.cfg.url, fields, f"file://{self.host}{path}")
        base = RunFacts(
            source=self.name,
            job=job,
            number=run_id,
            running=ev.kind == "start",
            start_ms=when,
            start_is_exact=ev.time is not None,
            run_url=url,
            written_ms=mtime_ms,
            parameters=tuple(ev.fields.items()),  # the line's named groups
        )
        if ev.kind == "start":
            return base
        return replace(base, running=False, result=ev.result, end_ms=when)  # the event rules map it


def checkpoint_value(cp: Checkpoint) -> dict[str, Any]:
    """How a tailer checkpoint is kept in the state database."""
    return {"path": cp.path, "dev": cp.dev, "ino": cp.ino, "offset": cp.offset, "done": cp.done}


def _checkpoint(key: str, value: Any) -> Checkpoint | None:
    """A tailer checkpoint from the store; None for another kind of source's value under the same name."""
    if not isinstance(value, dict) or not {"path", "dev", "ino", "offset", "done"} <= value.keys():
        return None
    return Checkpoint(
        key=key,
        path=value["path"],
        dev=value["dev"],
        ino=value["ino"],
        offset=value["offset"],
        done=value["done"],
    )


@dataclass
class _Seen:
    mtime_ns: int
    size: int


def _seen(value: Any) -> _Seen | None:
    """A result file's checkpoint; None for anything else kept under the source's name (a ``log``
    source's offsets, when a preset changed what it expands to)."""
    if not isinstance(value, dict):
        return None
    mtime_ns, size = value.get("mtime_ns"), value.get("size")
    if isinstance(mtime_ns, int) and isinstance(size, int):
        return _Seen(mtime_ns, size)
    return None


_READ_ERRORS = (OSError, EOFError, zlib.error, ParseError, ResultFileError, ValueError, OverflowError)


class ResultFileSource:
    """``type: result_file``: one small file per run (JSON/YAML, a CruiseControl log, a GoCD console).

    Files present at the source's very first poll are reported as not ``arrived`` (the history
    policy decides by their times); a file that appears later has arrived, news whatever its
    modification time, because CI servers, rsync and restores move files into place with old times.
    Patterns are matched by ``PatternWalker``: a wildcard never follows a symlinked directory.
    """

    def __init__(self, cfg: ResultFileSourceSettings, *, host: str, checkpoints: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.host = host
        self.seen: dict[str, _Seen] = {}
        for key, value in checkpoints.items():
            if (mark := _seen(value)) is not None:
                self.seen[key] = mark
        first = checkpoints.get(FIRST_POLL_MARK)
        # files remembered without the mark: an installation from before the mark, started long ago
        self._started = (isinstance(first, dict) and first.get("done") is True) or (
            first is None and bool(self.seen)
        )
        self._history: set[str] | None = None  # the paths found by the very first poll
        self._problems = ReportOnce()  # keyed by (path, error)
        self._walker = PatternWalker([Path(p) for p in cfg.paths], Problems())

    def watched_dirs(self) -> set[Path]:
        """The directories the last poll's patterns reached (the first poll comes before any watch)."""
        return {d for d in self._walker.dirs if d.is_dir()}

    def first_look(self) -> None:
        """The source is new (the history policy says so): the files there now were not seen arrive."""
        self._started = False

    def _paths(self) -> Iterator[str | Problem]:
        found, problems = self._walker.glob()
        for problem in problems:
            yield Problem(problem.path, f"{problem.path}: {problem.message}")
        for path in found:
            yield str(path)

    def poll(self) -> Iterator[FileBatch | Problem]:
        paths = list(self._paths())
        if not self._started and self._history is None:
            self._history = {p for p in paths if isinstance(p, str)}
            # kept before any file: a first poll cut short goes on as one after a restart
            yield FileBatch([], (FIRST_POLL_MARK, {"done": False, "at_ms": now_ms()}))
        for path in paths:
            if isinstance(path, Problem):
                yield path
            else:
                yield from self._file(path)
        if not self._started:
            done = {"done": True, "at_ms": now_ms()}
            yield FileBatch([], (FIRST_POLL_MARK, done), self._first_poll_done)

    def _first_poll_done(self) -> None:
        self._started = True
        self._history = None

    def _file(self, path: str) -> list[FileBatch | Problem]:
        try:
            st = os.stat(path)
        except OSError:
            return []
        seen = self.seen.get(path)
        if seen is not None and (seen.mtime_ns, seen.size) == (st.st_mtime_ns, st.st_size):
            return []
        if not os.path.isfile(path):
            return []
        mark = _Seen(st.st_mtime_ns, st.st_size)
        value = {"mtime_ns": mark.mtime_ns, "size": mark.size}
        arrived = self._history is None or path not in self._history
        remember = partial(self.seen.__setitem__, path, mark)
        if path.endswith(".gz") and path[:-3] in self.seen:
            # a log compressed after it was read (CruiseControl's GZIPManipulator): the same run
            return [FileBatch([], (path, value), remember, arrived=arrived)]
        items: list[FileBatch | Problem] = []
        try:
            facts = self._read(path, st)
        except _READ_ERRORS as exc:
            if time.time() - st.st_mtime < SETTLE_S:
                return []  # still being written (CruiseControl writes its logs in place): next poll
            if self._problems.fresh((path, str(exc))):
                items.append(Problem(path, f"{path}: {exc}"))
            facts = []
        items.append(FileBatch(facts, (path, value), remember, arrived=arrived))
        return items

    def _read(self, path: str, st: os.stat_result) -> list[RunFacts]:
        written = st.st_mtime_ns // 1_000_000
        if self.cfg.format == "gocd":
            return [self._gocd(path, written)]
        with open(path, "rb") as fh:
            data = fh.read(16 << 20)
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if self.cfg.format == "cruisecontrol":
            return [self._cruisecontrol(path, data, written)]
        return [self._record(path, parse_result_file(data, name=os.path.basename(path)), written)]

    def _record(self, path: str, rec: ResultRecord, written: int) -> RunFacts:
        running = rec.state == "IN_PROGRESS"
        fields = {"pipeline": rec.pipeline, "id": rec.id}
        notes = tuple(filter(None, [rec.description, self._junit(path, rec.junit)]))
        return RunFacts(
            source=self.name,
            job=rec.pipeline,
            number=rec.id,
            running=running,
            start_ms=_ms(rec.started_at),
            start_is_exact=True,
            result=rec.result or rec.state,
            state=None if running else rec.state,  # a state the file names; a result the event rules map
            end_ms=None if rec.completed_at is None else _ms(rec.completed_at),
            written_ms=written,
            run_url=rec.url or _url(self.cfg.url, fields, f"file://{self.host}{path}"),
            causes=notes,
            parameters=rec.parameters,
        )

    def _junit(self, path: str, patterns: tuple[str, ...]) -> str | None:
        if not patterns:
            return None
        tests = failures = errors = skipped = 0
        base = os.path.dirname(path)
        for pattern in patterns:
            reports, _ = PatternWalker([Path(base, pattern)], Problems()).glob()
            for report in reports:
                try:
                    with open(report, "rb") as fh:
                        summary = parse_junit(fh.read(16 << 20))
                except (OSError, ParseError) as exc:
                    log.warning(
                        "%s: JUnit report %s not read: %s",
                        self.name,
                        report,
                        exc,
                        extra=about(source=self.name, path=report),
                    )
                    continue
                tests += summary.tests
                failures += summary.failures
                errors += summary.errors
                skipped += summary.skipped
        if not tests:
            return None
        passed = tests - failures - errors - skipped
        return f"tests: {passed} passed, {failures} failed, {errors} errors, {skipped} skipped"

    def _cruisecontrol(self, path: str, data: bytes, written: int) -> RunFacts:
        build = parse_cruisecontrol_log(data, name=os.path.basename(path))
        project = build.project or os.path.basename(os.path.dirname(path))
        started = build.timestamp.replace(tzinfo=_zone(self.cfg.timezone))  # the server's local time
        ended = started + timedelta(seconds=build.duration_s or 0)
        fields = {"pipeline": project, "id": build.run_id}
        return RunFacts(
            source=self.name,
            job=project,
            number=build.run_id,
            running=False,
            start_ms=_ms(started),
            start_is_exact=True,
            result="success" if build.success else "failure",
            end_ms=_ms(ended),
            written_ms=written,
            run_url=_url(self.cfg.url, fields, f"file://{self.host}{path}"),
            causes=(build.error,) if build.error else (),
        )

    def _gocd(self, path: str, written: int) -> RunFacts:
        where = parse_console_path(path)
        if where is None:
            raise ParseError("not where GoCD keeps a console (pipelines/.../<job>/cruise-output/console.log)")
        console = GoCDConsole(_zone(self.cfg.timezone))
        with open(path, "rb") as fh:
            while piece := fh.read(READ_PIECE):
                console.feed(piece)
        job = console.close(datetime.fromtimestamp(written / 1000, tz=UTC))
        end_ms = _ms(job.completed) if job.completed is not None else written
        start_ms = _ms(job.started) if job.started is not None else end_ms
        fields = {
            "pipeline": where.job_name,
            "id": where.run_id,
            "pipeline_name": where.pipeline,
            "pipeline_counter": where.counter,
            "stage_name": where.stage,
            "stage_counter": where.stage_counter,
            "job_name": where.job,
        }
        return RunFacts(
            source=self.name,
            job=where.job_name,
            number=where.run_id,
            running=False,
            start_ms=start_ms,
            start_is_exact=job.started is not None,
            result=job.result,
            end_ms=max(end_ms, start_ms),
            written_ms=written,
            run_url=_url(self.cfg.url, fields, f"file://{self.host}{path}"),
            causes=(job.note,) if job.note else (),
        )
