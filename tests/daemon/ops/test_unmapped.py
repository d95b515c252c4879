"""doctor's warning about jobs that ran lately but map to no component, read from a state database
the real store wrote, while that store (the daemon) still has it open."""

from __future__ import annotations

import textwrap
from pathlib import Path

from daemon.clock import now_ms
from daemon.config import Settings, load_settings
from daemon.ops.unmapped import unmapped_job_lines, unmapped_jobs
from daemon.store import RunRow, Store

DAY_MS = 86_400_000


def settings(tmp_path: Path) -> Settings:
    (tmp_path / "jenkins").mkdir(exist_ok=True)
    path = tmp_path / "buildtail.yaml"
    path.write_text(
        textwrap.dedent(
            """
            state_dir: state
            compass:
              cloud_id: cloud-1
              email: bot@example.com
              site: example.atlassian.net
              api_token: plain
              components:
                - {match: "payments/**", component_id: "ari:cloud:compass:c:component/payments"}
            sources:
              - {type: jenkins, home: jenkins}
              - {type: jenkins, name: other, home: jenkins}
            """
        )
    )
    return load_settings(path)


def run(job: str, number: int, started_ms: int, source: str = "jenkins") -> RunRow:
    return RunRow(
        source=source,
        job=job,
        number=number,
        generation=1,
        pipeline_id=f"{source}:{job}#{number}",
        started_at_ms=started_ms,
        ci_start_ms=started_ms,
        dir_ino=None,
        state="SUCCESSFUL",
        terminal=True,
    )


def record(store: Store, *runs: RunRow) -> None:
    for r in runs:
        assert store.record(r, {"state": r.state}, prior=None) is not None


def test_jobs_that_ran_this_week_without_a_component_busiest_first(tmp_path: Path) -> None:
    s = settings(tmp_path)
    now = now_ms()
    writer = Store(s.state_dir)  # the daemon, still running
    try:
        record(
            writer,
            *(run("app", n, now - n * DAY_MS) for n in range(1, 4)),  # 3 this week
            run("app", 9, now - 9 * DAY_MS),  # too old to count
            run("nightly", 1, now - 2 * DAY_MS, source="other"),
            run("payments/api", 1, now - DAY_MS),  # mapped
            run("archived", 1, now - 30 * DAY_MS),  # ran only long ago
        )
        assert unmapped_jobs(s, now) == [("jenkins", "app", 3), ("other", "nightly", 1)]
        lines = unmapped_job_lines(s, now)
    finally:
        writer.close()
    assert lines[:2] == [
        "warning  job 'app' (source 'jenkins'): 3 run(s) in the last 7 days, mapped to no component",
        "warning  job 'nightly' (source 'other'): 1 run(s) in the last 7 days, mapped to no component",
    ]
    assert len(lines) == 3 and "add a compass.components rule" in lines[2]


def test_many_jobs_are_capped_with_how_many_more(tmp_path: Path) -> None:
    s = settings(tmp_path)
    now = now_ms()
    writer = Store(s.state_dir)
    try:
        record(writer, *(run(f"job-{i:02}", 1, now - DAY_MS) for i in range(25)))
    finally:
        writer.close()
    lines = unmapped_job_lines(s, now, shown=20)
    assert len(lines) == 22
    assert lines[19].startswith("warning  job 'job-19'")
    assert lines[20] == "warning  and 5 more job(s) mapped to no component"


def test_nothing_to_say_without_a_state_database_or_when_every_job_is_mapped(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert unmapped_job_lines(s, now_ms()) == []
    assert not s.state_dir.exists(), "doctor creates no state database"
    writer = Store(s.state_dir)
    try:
        record(writer, run("payments/api", 1, now_ms() - DAY_MS))
    finally:
        writer.close()
    assert unmapped_job_lines(s, now_ms()) == []


def test_a_damaged_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    s = settings(tmp_path)
    s.state_dir.mkdir()
    (s.state_dir / "buildtail.sqlite3").write_bytes(b"not a database at all" * 100)
    [line] = unmapped_job_lines(s, now_ms())
    assert line.startswith("warning  cannot list the jobs that map to no component: ")
