"""A large home fast: one finished build per kind written by this package, then copied as a
template (only the numbers, times and results vary) into every build of every job, several jobs
at a time. For the benchmarks' homes of 100,000 builds, which the real writer would take minutes for.

Used by the benchmarks (``bench/``) through ``generate_home``; ``verify_sample`` reads a generated build
back with the repository's own parsers.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.fake_jenkins._home import JenkinsHome
from tools.fake_jenkins._permalinks import _PERMALINKS
from tools.fake_jenkins._run import Run

PLACEHOLDER_JOB = "qqbenchjobqq"


T_START = 1_111_111_111_111


T_DURATION = 2_222_222


BULK_KINDS = ("freestyle", "pipeline")  # what a generated home alternates


@dataclass(frozen=True)
class Template:
    """One build of each kind as tools/fake_jenkins writes it, with markers for what varies."""

    kind: str
    config: bytes
    build_xml: str  # markers: @QID@ @TS@ @START@ @DUR@ @RESULT@ @JOB@
    log: str  # latin-1 text (the log holds ConsoleNote bytes); markers: @RESULT@ @JOB@


def make_templates(kinds: Iterable[str] = BULK_KINDS) -> dict[str, Template]:
    """Writes one finished build per kind with the real writer, then turns it into a template."""
    out: dict[str, Template] = {}
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="buildtail-bench-tmpl-") as d:
            home = JenkinsHome(Path(d))
            job = home.job(PLACEHOLDER_JOB, kind)
            run = job.start(start_ms=T_START)
            run.log("+ make")
            run.log("make: nothing to be done for 'all'")
            run.checkpoint()
            run.finish("SUCCESS", duration_ms=T_DURATION)
            xml = run.build_xml.read_text(encoding="utf-8")
            log = run.log_path.read_bytes().decode("latin-1")
            config = (job.dir / "config.xml").read_bytes()
        for needle in (str(T_START), str(T_DURATION), "SUCCESS", f"<queueId>{run.queue_id}</queueId>"):
            if needle not in xml:
                raise RuntimeError(f"template {kind}: {needle!r} not in build.xml; fake_jenkins changed?")
        xml = xml.replace(f"<queueId>{run.queue_id}</queueId>", "<queueId>@QID@</queueId>")
        xml = xml.replace(f"<timestamp>{T_START - 4}</timestamp>", "<timestamp>@TS@</timestamp>")
        xml = xml.replace(str(T_START), "@START@").replace(str(T_DURATION), "@DUR@")
        xml = xml.replace("SUCCESS", "@RESULT@").replace(PLACEHOLDER_JOB, "@JOB@")
        if "Finished: SUCCESS" not in log:
            raise RuntimeError(f"template {kind}: no 'Finished: SUCCESS' in the log")
        log = log.replace("SUCCESS", "@RESULT@").replace(PLACEHOLDER_JOB, "@JOB@")
        out[kind] = Template(kind, config, xml, log)
    return out


def result_of(number: int) -> str:
    """A deterministic, plausible mix: mostly SUCCESS, some FAILURE and UNSTABLE."""
    if number % 10 == 0:
        return "FAILURE"
    if number % 17 == 0:
        return "UNSTABLE"
    return "SUCCESS"


def duration_of(number: int) -> int:
    return 30_000 + (number * 7919) % 300_000


def _put(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _JobSpec:
    index: int
    name: str
    kind: str


def _permalinks(numbers_results: list[tuple[int, str]]) -> bytes:
    current: dict[str, int] = {}
    for name, results in _PERMALINKS.items():
        current[name] = max((n for n, r in numbers_results if r in results), default=-1)
    return "".join(f"{k} {current[k]}\n" for k in sorted(current)).encode()


def _write_jobs(
    args: tuple[str, list[_JobSpec], int, int, int, bool, dict[str, Template]],
) -> int:
    """Worker: writes whole jobs (config, numbering, builds/N/{build.xml,log}, permalinks)."""
    root, specs, first, builds, now_ms, backdate, templates = args
    written = 0
    for spec in specs:
        t = templates[spec.kind]
        jdir = f"{root}/jobs/{spec.name}"
        bdir = f"{jdir}/builds"
        os.makedirs(bdir, exist_ok=True)
        if not os.path.exists(f"{jdir}/config.xml"):
            _put(f"{jdir}/config.xml", t.config)
        last = first + builds - 1
        _put(f"{jdir}/nextBuildNumber", f"{last + 1}\n".encode())
        if not os.path.exists(f"{bdir}/legacyIds"):
            _put(f"{bdir}/legacyIds", b"")
        xml_job = t.build_xml.replace("@JOB@", spec.name)
        log_job = t.log.replace("@JOB@", spec.name)
        history: list[tuple[int, str]] = []
        newest_ns = 0
        for n in range(first, last + 1):
            result = result_of(n)
            dur = duration_of(n)
            if backdate:  # history: build n ended (last - n) hours (plus a little) ago
                end_ms = now_ms - ((last - n) * 3600 + 600 + spec.index) * 1000
            else:  # news: finished just now
                end_ms = now_ms - (last - n)
            start_ms = end_ms - dur
            rdir = f"{bdir}/{n}"
            os.mkdir(rdir)
            xml = (
                xml_job.replace("@QID@", str(spec.index * 100_000 + n))
                .replace("@TS@", str(start_ms - 4))
                .replace("@START@", str(start_ms))
                .replace("@DUR@", str(dur))
                .replace("@RESULT@", result)
            )
            _put(f"{rdir}/log", log_job.replace("@RESULT@", result).encode("latin-1"))
            _put(f"{rdir}/build.xml", xml.encode("utf-8"))
            if backdate:
                ns = end_ms * 1_000_000
                for p in (f"{rdir}/log", f"{rdir}/build.xml", rdir):
                    os.utime(p, ns=(ns, ns))
                newest_ns = max(newest_ns, ns)
            history.append((n, result))
            written += 1
        if history:
            _put(f"{bdir}/permalinks", _permalinks(history))
        if backdate and newest_ns:
            for p in (f"{bdir}/permalinks", f"{bdir}/legacyIds", f"{jdir}/nextBuildNumber", bdir):
                os.utime(p, ns=(newest_ns, newest_ns))
    return written


@dataclass
class HomeInfo:
    root: Path
    jobs: int
    builds: int
    running: int = 0
    job_names: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total_builds(self) -> int:
        return self.jobs * self.builds + self.running

    @property
    def params(self) -> dict[str, Any]:
        """The home's size as the reports print it."""
        return {
            "jobs": self.jobs,
            "builds_per_job": self.builds,
            "running": self.running,
            "build_dirs": self.total_builds,
        }


def job_name(i: int) -> str:
    return f"job-{i:05d}"


def generate_home(
    root: Path,
    jobs: int,
    builds: int,
    *,
    first: int = 1,
    running: int = 0,
    backdate: bool = True,
    kinds: Sequence[str] = BULK_KINDS,
    workers: int | None = None,
) -> HomeInfo:
    """``jobs`` jobs (alternating kinds) with builds ``first``..``first+builds-1`` each, all finished.

    Files are written directly from a template made by tools/fake_jenkins, so the format is the
    real writer's. With ``backdate`` every build's files get the modification time of its end (hours
    to days ago), as a real history has. ``running`` builds are then started with the real writer
    (fake_jenkins ``Job.start``) on the first jobs and left running.
    """
    t0 = time.monotonic()
    root = Path(root)
    JenkinsHome(root)  # jobs/ and nothing else, as a fresh Jenkins has
    templates = make_templates(kinds)
    specs = [_JobSpec(i, job_name(i), kinds[i % len(kinds)]) for i in range(jobs)]
    now_ms = time.time_ns() // 1_000_000
    workers = workers or min(4, os.cpu_count() or 1)
    chunks = [specs[i::workers] for i in range(workers)] if builds * jobs > 2000 else [specs]
    payload = [(str(root), c, first, builds, now_ms, backdate, templates) for c in chunks if c]
    if len(payload) > 1:
        with multiprocessing.get_context("fork").Pool(len(payload)) as pool:
            pool.map(_write_jobs, payload)
    else:
        for p in payload:
            _write_jobs(p)
    if backdate:
        ns = (now_ms - 60_000) * 1_000_000
        os.utime(root / "jobs", ns=(ns, ns))
    start_running_builds(root, [s.name for s in specs[:running]])
    if builds:
        verify_sample(root, specs[0].name, first + builds - 1)
    return HomeInfo(root, jobs, builds, running, [s.name for s in specs], seconds=time.monotonic() - t0)


def start_running_builds(root: Path, names: Sequence[str]) -> list[Run]:
    """Starts one build on each named job with the real writer and leaves it running."""
    home = JenkinsHome(root)
    runs = []
    for name in names:
        run = home.job(name).start(start_ms=time.time_ns() // 1_000_000 - 60_000)
        run.log("+ make")
        runs.append(run)
    return runs


def verify_sample(root: Path, name: str, number: int) -> None:
    """The repository's own parsers read a generated build as the finished build it claims to be."""
    from parsers import parse_build_xml, parse_log

    rdir = root / "jobs" / name / "builds" / str(number)
    rec = parse_build_xml((rdir / "build.xml").read_bytes())
    logb = (rdir / "log").read_bytes()
    facts = parse_log(logb, logb)
    want = result_of(number)
    if not (rec.finished and rec.result == want and rec.duration_ms == duration_of(number)):
        raise RuntimeError(f"generated {rdir}/build.xml does not parse as {want}: {rec}")
    if facts.finished_result != want:
        raise RuntimeError(f"generated {rdir}/log does not end with Finished: {want}")
