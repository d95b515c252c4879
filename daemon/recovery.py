"""Rebuilding a damaged state database: set the damaged file aside, salvage what can be read.

``buildtail run`` does this by itself when the database it opens is damaged (a power cut on a disk
that lies about flushes, a bad restore), and ``buildtail state recover`` does the same on demand.
A damaged database is never deleted nor written to: it is hard-linked aside as
``buildtail.sqlite3.damaged-<UTC time>`` (its ``-wal`` as ``...-wal`` beside it, or as
``...foreign-wal`` when the log belongs to another database), and read through a read-only
connection. What can be read goes into a fresh database of the current schema, built under a
temporary name and put in place with one rename once it is complete and on disk: a recovery cut
short leaves the damaged database where it was, and the next start recovers again.

Tables are salvaged in order of what matters: undelivered events first, then runs, what each
sink accepted of them, file checkpoints, dead letters, the meta facts (the sequence counter among
them) and the rate budget's sends, each row by row past damaged pages (``daemon.salvage``).

When recovery cannot run (read-only directory, full disk, another process holding the state) the
error is ``StateUnusableError``: the daemon exits with the status its unit does not restart on.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.clock import now_ms
from daemon.delivery.lock import DeliveryLock
from daemon.migrations import prepare
from daemon.salvage import count, open_damaged, rows
from daemon.state_check import FOREIGN_WAL, StateDamagedError, StateUnusableError, new_identity
from daemon.store import Store

__all__ = ["SEQ_MARGIN_MS", "TABLES", "Recovery", "next_seq_floor", "open_store", "recover"]

log = logging.getLogger("buildtail")

# What is salvaged, most important first (the order matters when the disk fills up half-way): the
# queued updates and their outbox rows, then the rest.
TABLES = ("updates", "outbox", "runs", "acks", "checkpoints", "dead_letters", "meta", "sends", "answers")
# Added to the highest sequence number found; see next_seq_floor.
SEQ_MARGIN_MS = 86_400_000
_NOT_COPIED_META = ("schema", "upgraded", "recovered", "last_seq")


@dataclass
class Recovery:
    """What a recovery did: recorded in the new database's meta (``recovered``) for ``status``."""

    at_ms: int
    damaged_file: str
    wal_file: str | None
    problems: list[str]
    salvaged: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int | None] = field(default_factory=dict)  # None: how many is unknown
    rewound: int = 0  # runs whose last event was lost: to be detected and sent again
    last_seq: int = 0
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        return {
            "at_ms": self.at_ms,
            "damaged_file": self.damaged_file,
            "wal_file": self.wal_file,
            "problems": self.problems[:5],
            "salvaged": self.salvaged,
            "lost": self.lost,
            "rewound": self.rewound,
            "last_seq": self.last_seq,
            "seconds": round(self.seconds, 3),
        }


def open_store(state_dir: Path, sinks: Sequence[str] | None = None) -> tuple[Store, Recovery | None]:
    """The daemon's store, the damaged database recovered first if need be (with the recovery).

    ``sinks``: the destinations the settings send to (see ``recover``)."""
    try:
        return Store(state_dir), None
    except StateDamagedError as exc:
        log.error("state database damaged: %s", "; ".join(exc.problems[:3]))
        done = recover(state_dir, exc.problems, sinks)
    try:
        return Store(state_dir), done
    except StateDamagedError as exc:  # the rebuilt one too: the disk itself is failing
        raise StateUnusableError(f"{exc.path} is damaged again right after it was rebuilt ({exc})") from exc


def recover(state_dir: Path, problems: list[str], sinks: Sequence[str] | None = None) -> Recovery:
    """Sets the damaged database aside and builds a new one from what can be read (see the module).

    ``sinks`` are the destinations whose acceptance decides what is sent again and which lost outbox
    rows are queued again: the configured ones, or (``None``, no settings at hand) those the database
    has rows for. Holds the delivery lock meanwhile: no daemon or backfill may have the database open."""
    path = state_dir / "buildtail.sqlite3"
    with DeliveryLock(state_dir).held_quietly() as had:
        if not had:
            raise StateUnusableError(
                f"{path} is damaged, and another buildtail process holds {state_dir / 'delivery.lock'}: "
                "stop it, then run `buildtail state recover --config PATH`"
            )
        try:
            done = _recover(path, problems, sinks)
        except OSError as exc:
            raise StateUnusableError(
                f"{path} is damaged and cannot be rebuilt here ({exc.strerror or exc}): make "
                f"{state_dir} writable with free space, then run `buildtail state recover --config PATH`"
            ) from exc
        except sqlite3.OperationalError as exc:  # the new database cannot be written (full disk)
            raise StateUnusableError(
                f"{path} is damaged and cannot be rebuilt here ({exc}): free space in {state_dir}, "
                "then run `buildtail state recover --config PATH`"
            ) from exc
    log.warning(
        "state database recovered: damaged file set aside as %s; salvaged %s; lost %s; %.2fs",
        done.damaged_file,
        json.dumps(done.salvaged),
        json.dumps(done.lost),
        done.seconds,
    )
    return done


def _recover(path: Path, problems: list[str], sinks: Sequence[str] | None) -> Recovery:
    started = time.monotonic()
    at = now_ms()
    aside = _aside_name(path, at)
    wal = Path(f"{path}-wal")
    wal_aside = Path(f"{aside}{'.foreign-wal' if FOREIGN_WAL in problems else '-wal'}")
    _keep(path, aside)
    has_wal = wal.exists()
    if has_wal:
        _keep(wal, wal_aside)
    done = Recovery(at, str(aside), str(wal_aside) if has_wal else None, problems)
    tmp = path.with_name(f"{path.name}.recovering")
    for stale in (tmp, Path(f"{tmp}-journal")):  # a recovery cut short: a partial copy of ours
        stale.unlink(missing_ok=True)
    try:
        _build(tmp, aside, done, started, sinks)
    except BaseException:
        for partial in (tmp, Path(f"{tmp}-journal")):  # its space back; the damaged file stays aside
            partial.unlink(missing_ok=True)
        raise
    _fsync(tmp)
    for old in (wal, Path(f"{path}-shm")):  # kept under the aside names; must not meet the new file
        old.unlink(missing_ok=True)
    os.replace(tmp, path)
    _fsync(path.parent)
    return done


def _build(tmp: Path, aside: Path, done: Recovery, started: float, sinks: Sequence[str] | None) -> None:
    """The new database under its temporary name: schema, salvaged rows, counter, record."""
    new = sqlite3.connect(tmp, isolation_level=None)
    try:
        new.execute(f"PRAGMA user_version = {new_identity()}")
        new.execute("PRAGMA synchronous=FULL")
        prepare(new, tmp)
        new.execute("BEGIN IMMEDIATE")
        _salvage(aside, new, done)
        destinations = sorted(set(sinks)) if sinks is not None else _sinks_seen(new)
        _drop_orphans(new, done, destinations)
        done.rewound = _rewind_unsent(new, destinations)
        done.last_seq = next_seq_floor(new, _old_last_seq(aside))
        meta = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
        new.execute(meta, ("last_seq", str(done.last_seq)))
        done.seconds = time.monotonic() - started
        new.execute(meta, ("recovered", json.dumps(done.record())))
        new.execute("COMMIT")
    finally:
        new.close()


def _keep(src: Path, dst: Path) -> None:
    """``dst`` becomes a second name of ``src``: nothing copied, nothing written to it. A file system
    without hard links gets a copy."""
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        shutil.copy2(src, dst)


def _drop_orphans(new: sqlite3.Connection, done: Recovery, sinks: list[str]) -> None:
    """Queued updates and their outbox rows, made whole again.

    An outbox row whose update was on a damaged page cannot be rendered: it counts as lost, and its
    run is rewound with the other lost events (an earlier release's rows carry their body and need
    no update). An update whose outbox rows were lost is queued again for every sink seen (an
    update is kept only while some sink has it queued; a sink that had it already is sent it again
    with the same sequence number, which a destination ignores). A sink not in ``sinks`` gets no
    row: nothing would ever send it."""
    orphans = new.execute(
        "DELETE FROM outbox WHERE event IS NULL AND update_id NOT IN (SELECT id FROM updates)"
    ).rowcount
    requeued = 0
    for sink in sinks:
        requeued += new.execute(
            "INSERT INTO outbox (pipeline_id, seq, state, terminal, priority, created_ms, sink, update_id)"
            " SELECT u.pipeline_id, u.seq, u.state, u.terminal, u.priority, u.created_ms, ?, u.id"
            " FROM updates u"
            " WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.update_id = u.id) ORDER BY u.id",
            (sink,),
        ).rowcount
    change = requeued - orphans
    if change:
        done.salvaged["outbox"] = done.salvaged.get("outbox", 0) + change
        lost = done.lost.get("outbox")
        done.lost["outbox"] = None if lost is None else max(0, lost - change)


def _rewind_unsent(new: sqlite3.Connection, sinks: list[str]) -> int:
    """Runs whose last event was lost with the damaged pages are put back to what the sinks last
    accepted, or forgotten when none accepted anything: the source's next look at the run then finds
    it changed and queues its event again, for every sink, with a new sequence number.

    A run's event is lost when it is neither queued nor dead and a sink has not accepted the run's
    state. It goes back to what such a lagging sink accepted (the first by name, when several
    accepted something different), else it is forgotten. With Compass alone: back to what Compass
    accepted, forgotten when it accepted nothing."""
    accepted = "(SELECT a.state FROM acks a WHERE a.sink = s.value AND a.pipeline_id = r.pipeline_id)"
    new.execute(
        "CREATE TEMP TABLE unsent AS SELECT r.pipeline_id,"
        " (SELECT a.state FROM json_each(?) s JOIN acks a ON a.sink = s.value AND a.pipeline_id ="
        "  r.pipeline_id WHERE a.state IS NOT r.state ORDER BY s.value LIMIT 1) AS back"
        " FROM runs r"
        f" WHERE EXISTS (SELECT 1 FROM json_each(?) s WHERE {accepted} IS NOT r.state)"
        " AND r.pipeline_id NOT IN (SELECT pipeline_id FROM outbox)"
        " AND r.pipeline_id NOT IN (SELECT pipeline_id FROM dead_letters)",
        (json.dumps(sinks), json.dumps(sinks)),
    )
    try:
        back = new.execute(
            "UPDATE runs SET state = (SELECT back FROM unsent u WHERE u.pipeline_id = runs.pipeline_id),"
            " terminal = 0 WHERE pipeline_id IN (SELECT pipeline_id FROM unsent WHERE back IS NOT NULL)"
        ).rowcount
        gone = new.execute(
            "DELETE FROM runs WHERE pipeline_id IN (SELECT pipeline_id FROM unsent WHERE back IS NULL)"
        ).rowcount
    finally:
        new.execute("DROP TABLE temp.unsent")
    return back + gone


def _sinks_seen(new: sqlite3.Connection) -> list[str]:
    """Every sink the database knows of: those with rows queued or accepted (what ``state recover``
    goes by, without the settings' sinks at hand)."""
    rows = new.execute("SELECT sink FROM outbox UNION SELECT sink FROM acks").fetchall()
    return sorted({str(r[0]) for r in rows})


def _aside_name(path: Path, at_ms: int) -> Path:
    stamp = datetime.fromtimestamp(at_ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}.{n}")
    return aside


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def next_seq_floor(new: sqlite3.Connection, old_last_seq: int | None) -> int:
    """The new database's ``last_seq``: every event it queues gets a higher sequence number than any
    sent from the damaged one, or Compass would ignore them as stale.

    ``Store.record`` gives each event ``max(last_seq + 1, now)`` and persists it, so every number
    ever handed out is at most the highest one queued, and none exceeds the clock at the time by
    more than the events queued in the same millisecond. The floor is the highest number still
    readable (the old counter, queued events, dead letters, runs' last update), or the clock when
    nothing could be read, plus a day: that covers the counter running ahead of the clock in a
    burst, and a clock that has since stepped back by up to a day while the counter was lost.
    """
    found = [now_ms(), old_last_seq or 0]
    for query in (
        "SELECT MAX(seq) FROM outbox",
        "SELECT MAX(seq) FROM dead_letters",
        "SELECT MAX(updated_ms) FROM runs",
    ):
        found.append(int(new.execute(query).fetchone()[0] or 0))
    return max(found) + SEQ_MARGIN_MS


def _old_last_seq(aside: Path) -> int | None:
    db = open_damaged(aside)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        return None if row is None else int(row[0])
    except (sqlite3.Error, ValueError):
        return None
    finally:
        db.close()


def _salvage(aside: Path, new: sqlite3.Connection, done: Recovery) -> None:
    old = open_damaged(aside)
    try:
        for table in TABLES:
            columns = _common_columns(old, new, table)
            if not columns:
                done.salvaged[table], done.lost[table] = 0, count(old, table)
                continue
            names = ", ".join(columns)
            insert = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
            copied = 0
            for row in rows(old, table, names):
                if table == "meta" and row[0] in _NOT_COPIED_META:
                    continue
                copied += new.execute(insert, row).rowcount
            done.salvaged[table] = copied
            expected = count(old, table)
            if table == "meta" and expected is not None:
                expected -= _count_kept_meta(old)
            done.lost[table] = None if expected is None else max(0, expected - copied)
    finally:
        old.close()


def _common_columns(old: sqlite3.Connection, new: sqlite3.Connection, table: str) -> list[str]:
    """The columns both have (an older schema lacks some; the new one's defaults fill them)."""
    try:
        have = [str(r[1]) for r in old.execute(f"PRAGMA table_info({table})")]
    except sqlite3.DatabaseError:
        return []
    wanted = {str(r[1]) for r in new.execute(f"PRAGMA table_info({table})")}
    return [c for c in have if c in wanted]


def _count_kept_meta(db: sqlite3.Connection) -> int:
    marks = ", ".join("?" * len(_NOT_COPIED_META))
    query = f"SELECT COUNT(*) FROM meta WHERE key IN ({marks})"
    try:
        return int(db.execute(query, _NOT_COPIED_META).fetchone()[0])
    except sqlite3.DatabaseError:
        return 0
