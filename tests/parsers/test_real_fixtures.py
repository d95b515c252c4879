"""Conformance against real Jenkins records kept in ../shared next to the checkout (never copied in)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from parsers import (
    build_dir_number,
    is_ignored_name,
    job_full_name,
    legacy_build_dir_time,
    parse_branch_name,
    parse_build_xml,
    parse_builds_dir_setting,
    parse_log,
    parse_next_build_number,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "jenkins-real"
WINDOW = 64 * 1024
_LEGACY_DIR_NOTE = re.compile(r"legacy date dir (\S+)")
_DUPLICATE_NOTE = re.compile(r"duplicated dir: same build number also in builds/([^;\s]+)")
_PERMALINK_NOTE = re.compile(r'permalink dir "([^"]+)"')

pytestmark = pytest.mark.skipif(
    not (FIXTURES / "EXPECTED.csv").is_file(), reason="real fixtures (../shared next to the checkout) absent"
)


@dataclass(frozen=True)
class Row:
    sample: str
    job: str
    number: str
    running: bool
    result: str | None
    start_ms: int | None
    started_ms: int | None
    duration_ms: int
    notes: str


def _opt_int(value: str) -> int | None:
    return None if value == "none" else int(value)


def _rows() -> list[Row]:
    with (FIXTURES / "EXPECTED.csv").open(newline="", encoding="utf-8") as handle:
        return [
            Row(
                sample=raw["sample"],
                job=raw["job"],
                number=raw["number"],
                running={"true": True, "false": False}[raw["running"]],
                result=None if raw["result"] == "none" else raw["result"],
                start_ms=_opt_int(raw["start_ms"]),
                started_ms=_opt_int(raw["started_ms"]),
                duration_ms=int(raw["duration_ms"]),
                notes=raw["notes"],
            )
            for raw in csv.DictReader(handle)
        ]


def _job_parts(sample: Path, job: str) -> list[str]:
    """Map a full name back to directory segments below jobs/, probing the sample's tree."""
    names = job.split("/")
    parts = [names[0]]
    for name in names[1:]:
        here = sample.joinpath("jobs", *parts)
        if "=" in name:
            parts.append("configurations")
            for pair in name.split(","):
                axis, _, value = pair.partition("=")
                parts += [f"axis-{axis}", value]
        elif (here / "branches" / name).is_dir():
            parts += ["branches", name]
        else:
            parts += ["jobs", name]
    return parts


def _build_dirs(row: Row, job_dir: Path) -> list[Path]:
    legacy = _LEGACY_DIR_NOTE.search(row.notes)
    names = [legacy.group(1) if legacy else row.number]
    duplicate = _DUPLICATE_NOTE.search(row.notes)
    if duplicate:
        names.append(duplicate.group(1))
    return [job_dir / "builds" / name for name in names]


def _head_tail(log: bytes) -> tuple[bytes, bytes]:
    return log[:WINDOW], log[-WINDOW:]


def test_every_expected_row() -> None:
    rows = _rows()
    checked = 0
    logs_checked = 0
    for row in rows:
        sample = FIXTURES / row.sample
        parts = _job_parts(sample, row.job)
        job_dir = sample.joinpath("jobs", *parts)
        context = f"{row.sample} {row.job} #{row.number}"
        assert job_full_name(parts) == row.job, context
        if row.number == "none":
            # A permalink copy next to builds/: the watcher must skip it by name.
            permalink = _PERMALINK_NOTE.search(row.notes)
            assert permalink is not None, context
            assert is_ignored_name(permalink.group(1)), context
            assert (job_dir / permalink.group(1) / "build.xml").is_file(), context
            continue
        for build_dir in _build_dirs(row, job_dir):
            where = f"{context} ({build_dir.name})"
            record = parse_build_xml((build_dir / "build.xml").read_bytes())
            assert record.result == row.result, where
            assert (not record.finished) is row.running, where
            assert record.start_time_ms == row.start_ms, where
            assert record.started_ms == row.started_ms, where
            assert record.duration_ms == row.duration_ms, where
            assert not is_ignored_name(build_dir.name), where
            number = build_dir_number(build_dir.name)
            if number is None:
                assert legacy_build_dir_time(build_dir.name) is not None, where
                assert record.number == int(row.number), where
            else:
                assert number == int(row.number), where
            log_path = build_dir / "log"
            if log_path.is_file():
                log = log_path.read_bytes()
                facts = parse_log(*_head_tail(log))
                has_finished_line = re.search(rb"(?m)^Finished: ", log) is not None
                if row.running:
                    assert facts.finished_result is None, where
                elif has_finished_line:
                    assert facts.finished_result == row.result, where
                    logs_checked += 1
            checked += 1
    assert checked >= 100
    assert logs_checked >= 90


def test_every_build_xml_is_covered_by_expected() -> None:
    listed = len(_rows())
    on_disk = sum(1 for _ in FIXTURES.glob("*/jobs/**/build.xml"))
    assert on_disk == listed


def test_multibranch_sample() -> None:
    sample = FIXTURES / "git-multibranch-migration"
    branches = sample / "jobs" / "job" / "branches"
    assert parse_builds_dir_setting((sample / "config.xml").read_bytes()) == "${ITEM_ROOTDIR}/builds"
    for branch in ("dev", "master", "second", "v4"):
        config = (branches / branch / "config.xml").read_bytes()
        assert parse_branch_name(config) == (branches / branch / "name-utf8.txt").read_text().strip()
    dev = branches / "dev" / "builds" / "1"
    record = parse_build_xml((dev / "build.xml").read_bytes())
    assert record.causes == ("Branch indexing",)
    assert (record.commit, record.branch) == ("82de19a0a55e29e34cbab90b9b59e4aac379a155", "dev")
    facts = parse_log(*_head_tail((dev / "log").read_bytes()))
    assert facts.causes == ("Branch indexing",)
    # The shared Pipeline lib is checked out first; the Jenkinsfile revision is the project's commit.
    assert facts.commit == "82de19a0a55e29e34cbab90b9b59e4aac379a155"


@pytest.mark.parametrize(
    ("relative", "causes"),
    [
        ("cause-test/jobs/upstream/builds/1", ("Started by an SCM change",)),
        ("cause-test/jobs/downstream/builds/1", ('Started by upstream project "upstream" build number 1',)),
        ("cause-test/jobs/fs/builds/1", ("Started by remote host <img src=x onerror=alert(1)>",)),
        (
            "matrix-unmarshal-run/jobs/p/configurations/axis-x/1/builds/1",
            ('Started by upstream project "p" build number 1',),
        ),
        ("file-parameter-csp/jobs/SECURITY-1793/builds/4", ("Started by user admin",)),
        ("flowgraph-corrupted/jobs/test0/builds/1", ()),
    ],
)
def test_real_causes(relative: str, causes: tuple[str, ...]) -> None:
    assert parse_build_xml((FIXTURES / relative / "build.xml").read_bytes()).causes == causes


@pytest.mark.parametrize(
    ("relative", "causes"),
    [
        ("fingerprinter-action-serialization/jobs/j/builds/2", ("Started by user anonymous",)),
        ("bfa-old-failure-cause-line-numbers/jobs/MyProject/builds/1", ("Started by user Tomas",)),
        ("workflow-run-max-resumption-age/jobs/p/builds/1", ("Started",)),
        (
            "bfa-matrix120/jobs/mymatrix/configurations/axis-ONE/1/axis-TWO/A/builds/1",
            ('Started by upstream project "mymatrix" build number 1',),
        ),
    ],
)
def test_real_log_causes(relative: str, causes: tuple[str, ...]) -> None:
    log = (FIXTURES / relative / "log").read_bytes()
    assert parse_log(*_head_tail(log)).causes == causes


def test_next_build_numbers() -> None:
    files = sorted(FIXTURES.glob("*/jobs/**/nextBuildNumber"))
    assert files
    for path in files:
        number = parse_next_build_number(path.read_bytes())
        assert number is not None and number >= 1, path


def test_real_parameters() -> None:
    record = FIXTURES / "parameters-action2-backcompat/jobs/parameterized/builds/1/build.xml"
    assert parse_build_xml(record.read_bytes()).parameters == (
        ("FOO", "foo"),
        ("BAR", "bar"),
        ("UNDEF", "undef"),
    )
    files = FIXTURES / "file-parameter-csp/jobs/SECURITY-1793/builds/4/build.xml"
    assert parse_build_xml(files.read_bytes()).parameters == ()  # a file parameter has no value to read
