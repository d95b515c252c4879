"""The result-file source's own decisions: which files are history, what it keeps, what it skips."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from daemon.config import Settings
from daemon.config.sources import LogSourceSettings, ResultFileSourceSettings, SourceSettings, expand_preset
from daemon.sources.files.sources import (
    FIRST_POLL_MARK,
    STARTED_MARK,
    FileBatch,
    LogSource,
    ResultFileSource,
)
from daemon.sources.files.tailer import Problem

CONSOLE = (
    b"17:45:07.452 [go] Job Started: 2016-03-21 17:45:07 UTC\n\n"
    b"17:45:08.573 [go] Current job status: passed.\n\n"
    b"17:45:09.000 [go] Current job status: failed.\n\n"
    b"17:45:26.461 [go] Job completed shop/12/build/1/unit on agent [/w]\n"
)
# what the gocd preset's log source kept before it became a result-file source
LOG_SOURCE_STATE: dict[str, Any] = {
    STARTED_MARK: {"at_ms": 1_700_000_000_000},
    "5f0c3e:1024": {"path": "/x/console.log", "dev": 1, "ino": 2, "offset": 300, "done": True},
}


def _source(settings: dict[str, Any], checkpoints: dict[str, Any] | None = None) -> ResultFileSource:
    cfg = TypeAdapter(SourceSettings).validate_python(expand_preset(settings))
    assert isinstance(cfg, ResultFileSourceSettings)
    return ResultFileSource(cfg, host="ci", checkpoints=checkpoints or {})


def _poll(source: ResultFileSource) -> tuple[list[FileBatch], list[Problem]]:
    """One poll as the runner does it: every batch committed (its checkpoint kept) in order."""
    batches: list[FileBatch] = []
    problems: list[Problem] = []
    for item in source.poll():
        if isinstance(item, Problem):
            problems.append(item)
            continue
        batches.append(item)
        if item.after_commit is not None:
            item.after_commit()
    return batches, problems


def _files(batches: list[FileBatch]) -> dict[str, bool]:
    """File path -> history flag, for the batches about files."""
    return {
        b.checkpoint[0]: not b.arrived
        for b in batches
        if b.checkpoint and not b.checkpoint[0].startswith("#")
    }


def _cc(directory: Path, name: str, error: str | None = None, age_s: float = 3 * 86400) -> Path:
    err = f' error="{error}"' if error else ""
    path = directory / name
    path.write_text(f'<cruisecontrol><info/><build time="5 seconds"{err}/></cruisecontrol>')
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    directory = tmp_path / "cc" / "logs" / "web"
    directory.mkdir(parents=True)
    return directory


def test_files_of_the_first_poll_are_history_later_ones_news_whatever_their_time(
    tmp_path: Path, logs: Path
) -> None:
    old = _cc(logs, "log20200101000000L1.xml")
    source = _source({"preset": "cruisecontrol", "home": str(tmp_path / "cc")})
    batches, _ = _poll(source)
    assert _files(batches) == {str(old): True}
    marks = [b.checkpoint for b in batches if b.checkpoint and b.checkpoint[0] == FIRST_POLL_MARK]
    assert [m[1]["done"] for m in marks if m] == [False, True], "kept before the files and after them"
    moved = _cc(logs, "log20200101000100.xml", "boom")  # moved into place: an old time, after the start
    batches, _ = _poll(source)
    assert _files(batches) == {str(moved): False}
    assert batches[0].facts[0].number == "20200101000100"
    assert _poll(source)[0] == [], "nothing new, nothing read"


def test_a_restarted_source_knows_it_started_before(tmp_path: Path, logs: Path) -> None:
    _cc(logs, "log20200101000000L1.xml")
    first = _source({"preset": "cruisecontrol", "home": str(tmp_path / "cc")})
    saved = {b.checkpoint[0]: b.checkpoint[1] for b in _poll(first)[0] if b.checkpoint}
    moved = _cc(logs, "log20200101000100L2.xml")  # while the daemon was down
    batches, _ = _poll(_source({"preset": "cruisecontrol", "home": str(tmp_path / "cc")}, saved))
    assert _files(batches) == {str(moved): False}


def test_an_installation_from_before_the_mark_has_started_before(tmp_path: Path, logs: Path) -> None:
    kept = _cc(logs, "log20200101000000L1.xml")
    st = kept.stat()
    legacy = {str(kept): {"mtime_ns": st.st_mtime_ns, "size": st.st_size}}  # no first-poll mark yet
    moved = _cc(logs, "log20200101000100L2.xml")
    batches, _ = _poll(_source({"preset": "cruisecontrol", "home": str(tmp_path / "cc")}, legacy))
    assert _files(batches) == {str(moved): False}
    assert not any(b.checkpoint and b.checkpoint[0] == FIRST_POLL_MARK for b in batches)


def test_a_first_poll_cut_short_goes_on_after_a_restart(tmp_path: Path, logs: Path) -> None:
    a = _cc(logs, "log20200101000000L1.xml")
    b = _cc(logs, "log20200101000100L2.xml")
    source = _source({"preset": "cruisecontrol", "home": str(tmp_path / "cc")})
    items = source.poll()
    saved: dict[str, Any] = {}
    for item in items:  # the daemon dies after the first file's commit
        assert isinstance(item, FileBatch) and item.checkpoint is not None
        saved[item.checkpoint[0]] = item.checkpoint[1]
        if item.checkpoint[0] == str(a):
            break
    batches, _ = _poll(_source({"preset": "cruisecontrol", "home": str(tmp_path / "cc")}, saved))
    assert _files(batches) == {str(b): True}


def test_a_compressed_copy_of_a_log_already_read_is_the_same_run(tmp_path: Path, logs: Path) -> None:
    plain = _cc(logs, "log20200101000000L1.xml")
    source = _source({"preset": "cruisecontrol", "home": str(tmp_path / "cc")})
    _poll(source)
    with gzip.open(str(plain) + ".gz", "wb") as fh:  # CruiseControl's GZIPManipulator, days later
        fh.write(plain.read_bytes())
    plain.unlink()
    batches, problems = _poll(source)
    assert problems == [] and [b.facts for b in batches] == [[]]
    assert _files(batches) == {str(plain) + ".gz": False}


def test_a_file_caught_while_being_written_is_read_again_quietly(tmp_path: Path, logs: Path) -> None:
    source = _source({"preset": "cruisecontrol", "home": str(tmp_path / "cc")})
    _poll(source)
    half = logs / "log20200101000000L1.xml"
    half.write_text("<cruisecontrol><info/><build ")  # CruiseControl writes its log in place
    assert _poll(source) == ([], [])
    half.write_text('<cruisecontrol><info/><build time="5 seconds"/></cruisecontrol>')
    batches, problems = _poll(source)
    assert problems == [] and [f.number for b in batches for f in b.facts] == ["1"]
    broken = _cc(logs, "log20200101000200L2.xml", age_s=60)
    broken.write_text("<cruisecontrol")
    os.utime(broken, (time.time() - 60, time.time() - 60))  # left alone: really broken
    batches, problems = _poll(source)
    assert [p.path for p in problems] == [str(broken)] and _files(batches) == {str(broken): False}


def test_the_gocd_preset_reads_consoles_as_result_files(tmp_path: Path) -> None:
    job = tmp_path / "go" / "artifacts" / "pipelines" / "shop" / "12" / "build" / "1" / "unit"
    (job / "cruise-output").mkdir(parents=True)
    source = _source({"preset": "gocd", "home": str(tmp_path / "go"), "timezone": "Europe/Berlin"})
    assert source.cfg.format == "gocd" and source.name == "gocd"
    _poll(source)
    (job / "cruise-output" / "console.log").write_bytes(CONSOLE.replace(b" UTC", b" CET"))
    batches, _ = _poll(source)
    (facts,) = batches[0].facts
    # GoCD's word, as the console says it; the event rules make it a Compass state
    assert (facts.job, facts.number, facts.result, facts.state, facts.running) == (
        "shop/build/unit",
        "12.1",
        "failed",
        None,
        False,
    )
    assert (facts.start_ms, facts.end_ms) == (1458578707452, 1458578726461)  # 16:45 UTC


def test_the_gocd_preset_ignores_what_its_log_source_kept(tmp_path: Path) -> None:
    job = tmp_path / "go" / "artifacts" / "pipelines" / "shop" / "12" / "build" / "1" / "unit"
    (job / "cruise-output").mkdir(parents=True)
    console = job / "cruise-output" / "console.log"
    console.write_bytes(CONSOLE)
    source = _source({"preset": "gocd", "home": str(tmp_path / "go")}, LOG_SOURCE_STATE)
    assert source.seen == {}
    batches, problems = _poll(source)
    assert problems == [] and _files(batches) == {str(console): True}, "its first poll: history"
    assert batches[1].facts[0].result == "failed"


def test_a_log_source_ignores_what_a_result_file_source_kept(tmp_path: Path) -> None:
    cfg = LogSourceSettings.model_validate(
        {
            "type": "log",
            "paths": [str(tmp_path / "*.log")],
            "rules": {"finish": r"(?P<id>\d+) (?P<result>\w+)", "pipeline": "cron"},
        }
    )
    foreign = {str(tmp_path / "a.log"): {"mtime_ns": 1, "size": 2}, FIRST_POLL_MARK: {"done": True}}
    source = LogSource(cfg, host="ci", checkpoints={STARTED_MARK: {"at_ms": 1}, **foreign})
    (tmp_path / "a.log").write_text("7 ok\n")
    facts = [f for item in source.poll() if isinstance(item, FileBatch) for f in item.facts]
    assert [(f.number, f.result) for f in facts] == [("7", "ok")]


@pytest.mark.parametrize("key", ["rules", "path_pattern", "max_line_bytes"])
def test_the_gocd_preset_refuses_the_keys_of_the_log_source_it_was(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValidationError, match=f"preset gocd: {key}: not used any more"):
        Settings.model_validate(
            {"sources": [{"preset": "gocd", "home": str(tmp_path), key: {"finish": "x"}}]}
        )


def test_a_timezone_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        _source({"preset": "cruisecontrol", "home": str(tmp_path), "timezone": "Mars/Olympus"})


def test_a_symlink_loop_under_a_result_directory_is_reported_not_followed(tmp_path: Path) -> None:
    """``**`` does not follow a symlinked directory: a loop would list the same file once per level
    (stdlib ``glob`` does, about 40 times, until the kernel's ELOOP); it is reported instead."""
    results = tmp_path / "results"
    (results / "nightly").mkdir(parents=True)
    (results / "nightly" / "1.json").write_text(
        '{"pipeline": "nightly", "id": 1, "result": "success",'
        ' "started_at": "2026-11-26T01:00:00Z", "completed_at": "2026-11-26T01:04:10Z"}'
    )
    (results / "nightly" / "again").symlink_to(results)  # a loop back to the result directory
    source = _source({"type": "result_file", "name": "r", "paths": [str(results / "**" / "*.json")]})
    batches, problems = _poll(source)
    assert list(_files(batches)) == [str(results / "nightly" / "1.json")]
    assert [f.number for b in batches for f in b.facts] == ["1"]
    assert [p.path for p in problems] == [str(results / "nightly" / "again")]
    assert "symlink loop" in problems[0].message
    assert source.watched_dirs() == {results, results / "nightly"}
    assert _poll(source) == ([], [])  # nothing new, and the loop is reported once
