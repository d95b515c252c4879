"""A damaged state database (real files, broken on disk) is set aside and salvaged, never a crash loop."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from daemon.delivery.lock import DeliveryLock
from daemon.migrations import prepare
from daemon.recovery import SEQ_MARGIN_MS, open_store
from daemon.state_check import FOREIGN_WAL, StateDamagedError, find_damage
from daemon.store import Store
from tests.daemon.test_store import event, run_row
from tests.damage import DAMAGES, damage, damage_table, fill, foreign_wal

REPO = Path(__file__).resolve().parents[2]
QUEUED = 200
# The fewest of the 200 queued events each damage must leave salvageable (measured: see README).
# Cut to half, a small file keeps fewer of its outbox pages as the schema gains tables: 54 with
# schema 5's record of answers (more than 60 before it).
AT_LEAST = {"pages": 150, "truncated": 50, "garbage": 0, "foreign": QUEUED, "foreign-old": QUEUED}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _break(state: Path, how: str, tmp: Path) -> None:
    if how == "foreign-old":  # a database from before identities: its header's identity is 0
        db = sqlite3.connect(state / "buildtail.sqlite3")
        db.execute("PRAGMA user_version = 0")
        db.close()  # the last connection: the log goes into the file
    if how.startswith("foreign"):
        foreign_wal(state, tmp / "other")
    else:
        damage(state / "buildtail.sqlite3", how)


@pytest.mark.parametrize("how", [*DAMAGES, "foreign", "foreign-old"])
def test_a_damaged_database_is_set_aside_and_salvaged(tmp_path: Path, how: str) -> None:
    state = tmp_path / "state"
    top = fill(state, QUEUED)
    ahead = top + 5 * 86_400_000  # the counter ran ahead of the clock (the clock stepped back since)
    bumped = Store(state)
    bumped.set_meta_int("last_seq", ahead)
    bumped.close()
    _break(state, how, tmp_path)
    before = _digest(state / "buildtail.sqlite3")
    assert find_damage(state / "buildtail.sqlite3"), "the damage must be seen on open"
    with pytest.raises(StateDamagedError):
        Store(state, readonly=True)  # what status meets

    started = time.monotonic()
    store, done = open_store(state, sinks=("compass",))
    took = time.monotonic() - started
    try:
        assert done is not None
        aside = Path(done.damaged_file)
        assert aside.name.startswith("buildtail.sqlite3.damaged-") and _digest(aside) == before
        if how.startswith("foreign"):
            assert done.wal_file is not None and done.wal_file.endswith(".foreign-wal")
            assert done.problems == [FOREIGN_WAL]
        salvaged = store.outbox_depth()
        assert salvaged == done.salvaged["outbox"] >= AT_LEAST[how]
        pipelines = {r[0] for r in store._db.execute("SELECT pipeline_id FROM outbox")}
        assert all(p.startswith("app#") for p in pipelines), "another database's events must not creep in"
        if done.lost["outbox"] is not None:
            assert done.lost["outbox"] == QUEUED - salvaged
        assert store.get_meta_json("recovered")["damaged_file"] == str(aside)
        seq = store.record(run_row("new", 1), event("new#1", "IN_PROGRESS"), prior=None)
        assert seq is not None and seq > top, "new numbers must be above every one sent before"
        if how != "garbage":  # the counter itself was readable: above it, by the margin
            assert seq > ahead + SEQ_MARGIN_MS
    finally:
        store.close()
    assert find_damage(state / "buildtail.sqlite3") == []
    print(f"\n{how}: {salvaged}/{QUEUED} events, {done.salvaged['runs']} runs salvaged in {took:.3f}s")


def test_the_error_path_of_prepare_names_the_damage(tmp_path: Path) -> None:
    path = tmp_path / "buildtail.sqlite3"
    path.write_bytes(b"not a database at all" * 500)
    db = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        prepare(db, path)  # once an UnboundLocalError
    db.close()


def test_a_salvaged_table_with_a_bad_page_keeps_the_rows_after_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    fill(state, QUEUED)
    assert damage_table(state / "buildtail.sqlite3", "updates", middle=3) == 3
    store, done = open_store(state, sinks=("compass",))
    store.close()
    assert done is not None
    with closing(sqlite3.connect(state / "buildtail.sqlite3")) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM updates ORDER BY id")]
        queued = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert ids[-1] == QUEUED, "the rows after the damaged pages were salvaged too"
    assert len(ids) < QUEUED, "three pages in the middle cost some events (or nothing was damaged)"
    assert queued == len(ids), "an outbox row whose update was lost is dropped (its run is rewound)"


def test_runs_whose_last_event_was_lost_are_put_back_to_what_compass_has(tmp_path: Path) -> None:
    state = tmp_path / "state"
    fill(state, 10)
    store = Store(state)
    for n in range(1, 6):  # 1-5: IN_PROGRESS delivered, then finished: their terminal event queued
        item, _ = store.next_due(exclude_pipelines={f"app#{k}" for k in range(1, n)})
        assert item is not None
        store.ack(item)
        assert item.pipeline_id == f"app#{n}"
        prior = store.latest_run("jenkins", "app", n)
        done_row = run_row("app", n, state="SUCCESSFUL", terminal=True, pipeline_id=f"app#{n}")
        assert store.record(done_row, event(f"app#{n}", "SUCCESSFUL"), prior=prior) is not None
    store.close()
    assert damage_table(state / "buildtail.sqlite3", "outbox") >= 1
    assert damage_table(state / "buildtail.sqlite3", "updates") >= 1

    store, done = open_store(state, sinks=("compass",))
    try:
        assert done is not None and done.salvaged["outbox"] == 0 and done.rewound == 10
        back = store.latest_run("jenkins", "app", 1)
        assert back is not None and back.state == "IN_PROGRESS" and not back.terminal  # seen finished again
        assert store.latest_run("jenkins", "app", 6) is None  # Compass never heard of it: seen new again
    finally:
        store.close()


def test_each_sinks_acceptance_decides_what_is_sent_again(tmp_path: Path) -> None:
    """Two sinks: a run Compass has in full but the board does not is put back to what the board
    accepted (Compass alone would have left it), one the board accepted nothing of is seen new
    again, and one both have stays as it is."""
    state = tmp_path / "state"
    store = Store(state)
    both = ("compass", "board")
    for n in (1, 2, 3):
        store.record(
            run_row("app", n, pipeline_id=f"app#{n}"),
            event(f"app#{n}", "IN_PROGRESS"),
            prior=None,
            sinks=both,
        )
    for sink, runs in (("compass", {"app#1", "app#2", "app#3"}), ("board", {"app#1", "app#3"})):
        while (item := store.next_due(sink=sink, exclude_pipelines=_others(runs))[0]) is not None:
            store.ack(item)
    prior = store.latest_run("jenkins", "app", 1)
    done_row = run_row("app", 1, state="SUCCESSFUL", terminal=True, pipeline_id="app#1")
    assert store.record(done_row, event("app#1", "SUCCESSFUL"), prior=prior, sinks=both) is not None
    item, _ = store.next_due(sink="compass")
    assert item is not None and item.pipeline_id == "app#1"
    store.ack(item)
    assert store.acked_state("app#1") == "SUCCESSFUL" and store.acked_state("app#1", "board") == "IN_PROGRESS"
    store.close()
    assert damage_table(state / "buildtail.sqlite3", "outbox") >= 1
    assert damage_table(state / "buildtail.sqlite3", "updates") >= 1

    store, done = open_store(state, sinks=both)
    try:
        assert done is not None and done.rewound == 2
        back = store.latest_run("jenkins", "app", 1)
        assert back is not None and back.state == "IN_PROGRESS" and not back.terminal  # the board's
        assert store.latest_run("jenkins", "app", 2) is None  # the board never had it: seen new again
        kept = store.latest_run("jenkins", "app", 3)
        assert kept is not None and kept.state == "IN_PROGRESS"
        assert store.acked_state("app#1") == "SUCCESSFUL"  # what each sink accepted is salvaged
    finally:
        store.close()


def _others(runs: set[str]) -> set[str]:
    return {f"app#{n}" for n in (1, 2, 3)} - runs


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args, "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_state_check_status_and_recover_commands(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"host": "h", "state_dir": str(state), "sources": []}))
    fill(state, 50)
    assert _cli(config, "state", "check").returncode == 0
    damage(state / "buildtail.sqlite3", "truncated")

    check = _cli(config, "state", "check")
    assert check.returncode == 1 and "DAMAGED" in check.stdout, check.stdout + check.stderr
    status = _cli(config, "status")
    assert status.returncode == 2
    assert "state check" in status.stderr and "state recover" in status.stderr
    assert "has buildtail run ever started" not in status.stderr

    lock = DeliveryLock(state)
    assert lock.try_acquire()
    try:
        refused = _cli(config, "state", "recover")
        assert refused.returncode == 1 and "holds" in refused.stderr
    finally:
        lock.release()

    recover = _cli(config, "state", "recover")
    assert recover.returncode == 0, recover.stderr
    assert "set aside as" in recover.stdout and "outbox" in recover.stdout
    assert _cli(config, "state", "check").returncode == 0
    again = _cli(config, "state", "recover")
    assert again.returncode == 0 and "nothing to recover" in again.stdout

    report = json.loads(_cli(config, "status", "--json").stdout)
    assert report["recovery"]["damaged_file"].startswith(str(state / "buildtail.sqlite3.damaged-"))
    assert report["recovery"]["salvaged"]["outbox"] == report["queue"]["depth"]
    assert "recovered" in _cli(config, "status").stdout


def test_updates_whose_outbox_rows_were_lost_are_queued_again(tmp_path: Path) -> None:
    """Each queued update is kept once and each sink's outbox row points at it: with every outbox
    page lost, the updates that were read are queued again, in their order, and nothing is rewound."""
    state = tmp_path / "state"
    fill(state, 30)
    store = Store(state)
    before = [(r[0], r[1]) for r in store._db.execute("SELECT pipeline_id, seq FROM outbox ORDER BY id")]
    store.close()
    assert damage_table(state / "buildtail.sqlite3", "outbox") >= 1

    store, done = open_store(state, sinks=("compass",))
    try:
        assert done is not None and done.rewound == 0
        assert done.salvaged["outbox"] == 30 and done.lost["outbox"] in (0, None)
        after = [(r[0], r[1]) for r in store._db.execute("SELECT pipeline_id, seq FROM outbox ORDER BY id")]
        assert after == before
        item, _ = store.next_due()
        assert item is not None and item.update is not None and item.pipeline_id == "app#1"
    finally:
        store.close()


@pytest.mark.parametrize("sinks", [("jira",), None])
def test_a_jira_only_setup_recovers_without_compass(tmp_path: Path, sinks: tuple[str, ...] | None) -> None:
    """Jira alone (given, or as the database has it): runs Jira has in full stay as they are, and an
    update whose outbox rows were lost is queued again for Jira only, never for a Compass that
    nothing sends to (its row would stay queued, and readiness fail, for good)."""
    state = tmp_path / "state"
    store = Store(state)
    for n in (1, 2, 3):
        store.record(
            run_row("app", n, pipeline_id=f"app#{n}"),
            event(f"app#{n}", "IN_PROGRESS"),
            prior=None,
            sinks=("jira",),
        )
    while (item := store.next_due(sink="jira")[0]) is not None:
        store.ack(item)
    prior = store.latest_run("jenkins", "app", 1)
    done_row = run_row("app", 1, state="SUCCESSFUL", terminal=True, pipeline_id="app#1")
    assert store.record(done_row, event("app#1", "SUCCESSFUL"), prior=prior, sinks=("jira",)) is not None
    store.close()
    assert damage_table(state / "buildtail.sqlite3", "outbox") >= 1

    store, done = open_store(state, sinks=sinks)
    try:
        assert done is not None
        for n in (2, 3):  # Jira accepted all of them: nothing to send again
            kept = store.latest_run("jenkins", "app", n)
            assert kept is not None and kept.state == "IN_PROGRESS"
        last = store.latest_run("jenkins", "app", 1)
        assert last is not None and last.state == "SUCCESSFUL"  # its update is queued again, for Jira
        assert done.rewound == 0
        assert store.next_due(sink="compass")[0] is None
        item, _ = store.next_due(sink="jira")
        assert item is not None and item.pipeline_id == "app#1"
    finally:
        store.close()


def test_state_recover_goes_by_the_configured_destinations(tmp_path: Path) -> None:
    """``buildtail state recover --config`` recovers for the sinks the configuration sends to, as the
    daemon does: a database that once sent to Compass too, now configured for Jira alone, gets no
    Compass row back (nothing would ever send it)."""
    from daemon.cli import main

    state = tmp_path / "state"
    store = Store(state)
    for n in (1, 2):
        store.record(
            run_row("app", n, pipeline_id=f"app#{n}"),
            event(f"app#{n}", "IN_PROGRESS"),
            prior=None,
            sinks=("compass", "jira"),
        )
    for sink in ("compass", "jira"):
        while (item := store.next_due(sink=sink)[0]) is not None:
            store.ack(item)
    prior = store.latest_run("jenkins", "app", 1)
    done_row = run_row("app", 1, state="SUCCESSFUL", terminal=True, pipeline_id="app#1")
    store.record(done_row, event("app#1", "SUCCESSFUL"), prior=prior, sinks=("compass", "jira"))
    store.close()
    assert damage_table(state / "buildtail.sqlite3", "outbox") >= 1
    config = tmp_path / "config.yaml"
    jira = {"site": "example.atlassian.net", "client_id": "c", "client_secret": "s"}
    config.write_text(yaml.safe_dump({"state_dir": str(state), "jira": jira, "sources": []}))

    assert main(["state", "recover", "--config", str(config)]) == 0
    store = Store(state)
    try:
        assert store.next_due(sink="compass")[0] is None
        item, _ = store.next_due(sink="jira")
        assert item is not None and item.pipeline_id == "app#1"
    finally:
        store.close()
