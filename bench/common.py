"""Shared pieces of the benchmark scripts: the real daemon process, /proc readings, a fast Jenkins-home
generator, configuration, statistics, machine information and result reporting.

Only the Python stdlib, the repository's own ``tools/fake_jenkins`` and
``tools/fake_compass`` (which needs aiohttp and jsonschema, both in the test extras) and PyYAML
are used. Nothing here needs psutil: RSS, CPU time and inotify watches are read from /proc.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
# The daemon code measured: this checkout, or a snapshot given with $BUILDTAIL_BENCH_CODE (e.g.
# ``git archive HEAD | tar -x -C DIR``), so a working tree in the middle of an edit can be left alone.
CODE = Path(os.environ.get("BUILDTAIL_BENCH_CODE") or REPO).resolve()
for _p in (REPO, CODE):
    if str(_p) in sys.path:
        sys.path.remove(str(_p))
    sys.path.insert(0, str(_p))

from tools import fake_jenkins  # noqa: E402
from tools.daemon_process import SYSTEMD_ENV, DaemonProcess  # noqa: E402
from tools.fake_compass import FakeCompass  # noqa: E402
from tools.fake_jenkins import JenkinsHome  # noqa: E402

__all__ = [
    "BIG_HOME",
    "CLK_TCK",
    "CODE",
    "HOME_MARKER",
    "KINDS",
    "QUICK_HOME",
    "REPO",
    "TOKEN",
    "Arrivals",
    "Check",
    "Daemon",
    "FakeCompass",
    "HomeInfo",
    "Report",
    "Template",
    "add_home_args",
    "base_parser",
    "code_version",
    "count_inotify_watches",
    "cpu_seconds",
    "drop_caches",
    "duration_of",
    "event_state",
    "fake_compass",
    "finish",
    "free_port",
    "generate_home",
    "home_for",
    "job_name",
    "machine_info",
    "make_config",
    "make_templates",
    "median",
    "ms",
    "parse_ready",
    "percentile",
    "pipeline_id",
    "proc_status_kb",
    "python_start_baseline",
    "result_of",
    "runs_of",
    "start_running_builds",
    "temp_dir",
    "time_find",
    "verify_sample",
    "wait_quiet",
    "wait_until",
    "write_marker",
]

TOKEN = "bench-token-not-a-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------------
# statistics


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    s = sorted(values)
    if len(s) == 1:
        return float(s[0])
    k = (len(s) - 1) * p / 100.0
    lo = math.floor(k)
    hi = math.ceil(k)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# --------------------------------------------------------------------------------------------------
# /proc readings


def proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status, e.g. VmRSS or VmHWM (peak RSS)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        data = fh.read()
    fields = data[data.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def count_inotify_watches(pid: int) -> int:
    """Watches on every inotify descriptor of the process (``inotify wd:`` lines of fdinfo)."""
    total = 0
    base = f"/proc/{pid}/fdinfo"
    for name in os.listdir(base):
        try:
            with open(f"{base}/{name}") as fh:
                total += sum(1 for line in fh if line.startswith("inotify wd:"))
        except OSError:
            continue
    return total


# --------------------------------------------------------------------------------------------------
# the daemon process


class Daemon(DaemonProcess):
    """The real daemon process (``tools/daemon_process.py``) plus what the benchmarks read of it:
    /proc figures, an optional core of its own, and py-spy sampling from ``ready`` on.

    ``ready_s`` is the time from just before the process is spawned to the moment its ``ready:`` log
    line reaches us (interpreter start and imports included: that is what an operator waits for).
    """

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        *,
        name: str = "daemon",
        python_args: Sequence[str] = ("-m", "daemon"),
        cpus: set[int] | None = None,
    ) -> None:
        pin = (lambda pid: pin_threads(pid, cpus)) if cpus else None
        super().__init__(
            workdir,
            config,
            token=TOKEN,
            name=name,
            code=CODE,
            python_args=python_args,
            on_spawn=pin,
            env_drop=SYSTEMD_ENV,
        )
        self.cpus = cpus
        self._pyspy: subprocess.Popen[bytes] | None = None

    def wait_ready(self, timeout: float = 120.0) -> float:
        try:
            ready = super().wait_ready(timeout)
        except AssertionError as exc:
            raise RuntimeError(str(exc)) from None
        self._maybe_profile()
        return ready

    def _maybe_profile(self) -> None:
        """With $BUILDTAIL_BENCH_PYSPY=DIR, py-spy samples the daemon from ready until it exits
        (collapsed stacks in DIR/<name>.pyspy.txt; see bench/profiling.py)."""
        out_dir = os.environ.get("BUILDTAIL_BENCH_PYSPY")
        if not out_dir or self._pyspy is not None:
            return
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        out = Path(out_dir) / f"{self.name}.pyspy.txt"
        cmd = [pyspy, "record", "--format", "raw", "--rate", "250", "--nonblocking", "-o", str(out)]
        self._pyspy = subprocess.Popen(
            [*cmd, "--pid", str(self.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.3)  # let it attach

    def rss_mb(self) -> float:
        return proc_status_kb(self.pid, "VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        return proc_status_kb(self.pid, "VmHWM") / 1024

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)

    def inotify_watches(self) -> int:
        return count_inotify_watches(self.pid)

    def stop(self, timeout: float = 60.0) -> int:
        try:
            return super().stop(timeout)
        except subprocess.TimeoutExpired:
            assert self.proc is not None
            return self.proc.returncode

    def finish(self) -> None:
        if self._pyspy is not None:
            try:
                self._pyspy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._pyspy.kill()
            self._pyspy = None
        super().finish()

    def __enter__(self) -> Daemon:
        self.start()
        return self


def make_config(
    tmp: Path,
    home: Path,
    compass: FakeCompass | None,
    *,
    state_dir: Path | None = None,
    log_level: str = "info",
    **source: Any,
) -> dict[str, Any]:
    """The keys of tests/e2e/conftest.make_config, with the rate budget off (limit 0, burst 1).

    Unlike the e2e tests, the reconcile interval keeps its default (5 min) unless given: a 2 s
    reconcile on a 100,000-build home would be a benchmark of the reconcile scan.
    """
    cfg: dict[str, Any] = {
        "host": "build01.example.com",
        "state_dir": str(state_dir or tmp / "state"),
        "log_level": log_level,
        "sources": [
            {
                "type": "jenkins",
                "home": str(home),
                "url": "https://jenkins.example.com/",
                **source,
            }
        ],
    }
    if _supports_metrics():  # served on a free loopback port, so parallel runs never collide
        cfg["metrics"] = {"listen": f"127.0.0.1:{free_port()}"}
    if compass is not None:
        cfg["compass"] = {
            "base_url": compass.base_url,
            "cloud_id": compass.cloud_id,
            "email": compass.email,
            "api_token": "${COMPASS_API_TOKEN}",
            "timeout": "10s",
            "rate_limit_per_minute": 0,  # pacing off: the benchmarks measure buildtail, not the budget
            "burst": 1,
        }
    return cfg


def _supports_metrics() -> bool:
    """Whether this checkout's configuration has a ``metrics`` section (it listens by default)."""
    from daemon.config import Settings

    return "metrics" in getattr(Settings, "model_fields", {})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def code_version() -> str:
    """The commit measured, and whether the working tree had uncommitted changes."""
    if CODE != REPO:
        rev = CODE / ".bench-rev"
        return f"snapshot {rev.read_text().strip() if rev.exists() else CODE.name}"
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "daemon", "parsers"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return rev + (" + uncommitted changes in daemon/ or parsers/" if dirty else "")


def fake_compass(*, defer_validation: bool = False) -> FakeCompass:
    return FakeCompass(token=TOKEN, defer_validation=defer_validation)


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` restricted to ``cpus`` (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, PermissionError):
            pass


def split_cpus() -> tuple[set[int], set[int]] | None:
    """(harness CPUs, daemon CPUs): the daemon gets a core of its own, so the harness' own work
    (the Jenkins writer's threads, the fake Compass) does not queue in front of it. None with one core."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return set(cpus[:-1]), {cpus[-1]}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")


def pipeline_id(request_body: Any) -> str | None:
    try:
        return str(request_body["event"]["build"]["buildProperties"]["pipeline"]["pipelineId"])
    except (KeyError, TypeError):
        return None


def event_state(request_body: Any) -> str | None:
    try:
        return str(request_body["event"]["build"]["buildProperties"]["state"])
    except (KeyError, TypeError):
        return None


class Arrivals:
    """Incremental view of a FakeCompass' accepted events: first arrival time per (pipelineId, kind)."""

    def __init__(self, compass: FakeCompass) -> None:
        self.compass = compass
        self.seen = 0
        self.in_progress: dict[str, float] = {}
        self.terminal: dict[str, float] = {}
        self.terminal_states: dict[str, str] = {}
        self.bad: list[str] = []

    def update(self) -> None:
        reqs = self.compass.requests
        for r in reqs[self.seen :]:
            if r.status != 202:
                self.bad.append(f"HTTP {r.status}: {r.raw[:200]}")
                continue
            pid, state = pipeline_id(r.body), event_state(r.body)
            if pid is None or state is None:
                continue
            if state == "IN_PROGRESS":
                self.in_progress.setdefault(pid, r.at)
            else:
                self.terminal.setdefault(pid, r.at)
                self.terminal_states.setdefault(pid, state)
        self.seen = len(reqs)


# --------------------------------------------------------------------------------------------------
# Jenkins home generator


PLACEHOLDER_JOB = "qqbenchjobqq"
T_START = 1_111_111_111_111
T_DURATION = 2_222_222
KINDS = ("freestyle", "pipeline")


@dataclass(frozen=True)
class Template:
    """One build of each kind as tools/fake_jenkins writes it, with markers for what varies."""

    kind: str
    config: bytes
    build_xml: str  # markers: @QID@ @TS@ @START@ @DUR@ @RESULT@ @JOB@
    log: str  # latin-1 text (the log holds ConsoleNote bytes); markers: @RESULT@ @JOB@


def make_templates(kinds: Iterable[str] = KINDS) -> dict[str, Template]:
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
    for name, results in fake_jenkins._PERMALINKS.items():
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
    kinds: Sequence[str] = KINDS,
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


def start_running_builds(root: Path, names: Sequence[str]) -> list[fake_jenkins.Run]:
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


def time_find(home: Path, repeats: int = 3) -> tuple[float, int]:
    """Median wall time of ``find <home> -name build.xml`` (output discarded) and its match count."""
    times = []
    for _ in range(repeats):
        t0 = time.monotonic()
        subprocess.run(["find", str(home), "-name", "build.xml"], stdout=subprocess.DEVNULL, check=True)
        times.append(time.monotonic() - t0)
    out = subprocess.run(["find", str(home), "-name", "build.xml"], capture_output=True, check=True).stdout
    return median(times), out.count(b"\n")


def python_start_baseline(repeats: int = 3) -> float:
    """Wall time of a bare interpreter start that imports the daemon's modules (no work)."""
    times = []
    for _ in range(repeats):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import daemon.cli, daemon.service"], cwd=CODE, check=True)
        times.append(time.monotonic() - t0)
    return median(times)


# --------------------------------------------------------------------------------------------------
# machine


def _filesystem_of(path: Path) -> str:
    best = ("", "?", "?")
    p = str(path.resolve())
    with open("/proc/mounts") as fh:
        for line in fh:
            dev, mnt, fstype = line.split()[:3]
            mnt = mnt.replace("\\040", " ")
            if (p == mnt or p.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                best = (mnt, fstype, dev)
    return f"{best[1]} ({best[2]} on {best[0]})"


def machine_info(tmp: Path | None = None) -> dict[str, str]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "filesystem": _filesystem_of(tmp or Path(tempfile.gettempdir())),
        "code": code_version(),
    }


# --------------------------------------------------------------------------------------------------
# command line and reporting


def base_parser(description: str, *, full_runs: int = 3) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--quick", action="store_true", help="smoke size: proves the script works, measures nothing"
    )
    p.add_argument("--runs", type=int, default=None, help=f"repetitions, median reported (full: {full_runs})")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--tmp", type=Path, default=None, help="parent of the temporary directory")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, home, state)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed (full size only)")
    p.set_defaults(full_runs=full_runs)
    return p


def runs_of(args: argparse.Namespace) -> int:
    if args.runs is not None:
        return max(1, int(args.runs))
    return 1 if args.quick else int(args.full_runs)


@contextmanager
def temp_dir(args: argparse.Namespace, prefix: str) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=f"buildtail-bench-{prefix}-", dir=args.tmp))
    try:
        yield d
    finally:
        if args.keep:
            print(f"(kept {d})")
        else:
            shutil.rmtree(d, ignore_errors=True)


@dataclass
class Check:
    what: str
    value: str
    goal: str
    ok: bool | None  # None: reported, no goal

    @property
    def verdict(self) -> str:
        return "-" if self.ok is None else ("PASS" if self.ok else "MISS")


@dataclass
class Report:
    bench: str
    title: str
    quick: bool
    params: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)

    def check(self, what: str, value: str, goal: str, ok: bool | None) -> None:
        self.checks.append(Check(what, value, goal, ok))

    def missed(self) -> bool:
        return any(c.ok is False for c in self.checks)

    def print(self, out: TextIO = sys.stdout) -> None:
        mode = "QUICK (smoke size: not a measurement)" if self.quick else "full size"
        print(f"\n== {self.bench}: {self.title} [{mode}]", file=out)
        print("params: " + ", ".join(f"{k}={v}" for k, v in self.params.items()), file=out)
        for i, run in enumerate(self.runs, 1):
            print(f"run {i}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in run.items()), file=out)
        w = max([len(c.what) for c in self.checks] + [10])
        v = max([len(c.value) for c in self.checks] + [8])
        g = max([len(c.goal) for c in self.checks] + [4])
        print(f"{'figure':<{w}}  {'median':<{v}}  {'goal':<{g}}  verdict", file=out)
        for c in self.checks:
            print(f"{c.what:<{w}}  {c.value:<{v}}  {c.goal:<{g}}  {c.verdict}", file=out)
        for n in self.notes:
            print(f"note: {n}", file=out)
        print("machine: " + ", ".join(f"{k}={v}" for k, v in self.machine.items()), file=out)

    def write_json(self, path: Path | None) -> None:
        if path is None:
            return
        data = asdict(self)
        data["checks"] = [dict(asdict(c), verdict=c.verdict) for c in self.checks]
        path.write_text(json.dumps(data, indent=2, default=str))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def finish(report: Report, args: argparse.Namespace) -> int:
    report.print()
    report.write_json(args.json)
    if args.quick:
        return 0
    return 1 if (args.strict and report.missed()) else 0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


_RE_READY = re.compile(r"ready: (\d+) job\(s\) in \d+ source\(s\), (\d+) run\(s\) in progress, (\d+) watch")


def parse_ready(line: str) -> tuple[int, int, int] | None:
    """(jobs, runs in progress, watches) from the daemon's ``ready:`` line."""
    m = _RE_READY.search(line)
    return None if m is None else (int(m[1]), int(m[2]), int(m[3]))


# --------------------------------------------------------------------------------------------------
# the shared large home of B3, B4 and B5

HOME_MARKER = "bench-home.json"  # next to jobs/; Jenkins and buildtail ignore it
BIG_HOME = (2000, 50, 20)  # jobs, finished builds per job, running builds
QUICK_HOME = (50, 10, 3)


def add_home_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, default=None, help="reuse a home written by bench/make_home.py")
    p.add_argument("--jobs", type=int, default=None, help=f"jobs (full: {BIG_HOME[0]})")
    p.add_argument("--builds", type=int, default=None, help=f"finished builds per job (full: {BIG_HOME[1]})")
    p.add_argument("--running", type=int, default=None, help=f"running builds (full: {BIG_HOME[2]})")


def write_marker(info: HomeInfo) -> None:
    data = {"jobs": info.jobs, "builds": info.builds, "running": info.running, "seconds": info.seconds}
    (info.root / HOME_MARKER).write_text(json.dumps(data))


def home_for(args: argparse.Namespace, tmp: Path) -> HomeInfo:
    """The home given with --home (as bench/make_home.py wrote it), or a new one in ``tmp``."""
    if args.home is not None:
        marker = args.home / HOME_MARKER
        if not marker.exists():
            raise SystemExit(f"{args.home} has no {HOME_MARKER}: write it with bench/make_home.py")
        data = json.loads(marker.read_text())
        return HomeInfo(args.home.resolve(), data["jobs"], data["builds"], data["running"], [], 0.0)
    jobs, builds, running = QUICK_HOME if args.quick else BIG_HOME
    jobs = args.jobs if args.jobs is not None else jobs
    builds = args.builds if args.builds is not None else builds
    running = args.running if args.running is not None else running
    print(f"writing a Jenkins home of {jobs} jobs x {builds} builds + {running} running ...", flush=True)
    info = generate_home(tmp / "home", jobs, builds, running=running)
    print(f"  written in {info.seconds:.1f}s", flush=True)
    write_marker(info)
    return info


def wait_quiet(compass: FakeCompass, quiet_s: float, timeout: float = 120.0) -> int:
    """Waits until no request has arrived for ``quiet_s``; returns the number of requests so far."""
    deadline = time.monotonic() + timeout
    last_n, last_change = len(compass.requests), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n = len(compass.requests)
        if n != last_n:
            last_n, last_change = n, time.monotonic()
        elif time.monotonic() - last_change >= quiet_s:
            return n
    raise RuntimeError(f"requests still arriving after {timeout:g}s")


def drop_caches() -> bool:
    """Empties the page cache (root only): for --cold measurements."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False
