"""Real damaged state databases for the recovery tests: a store filled by the store's own code, then
broken on disk the way power cuts and bad restores break files."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from daemon.store import RunRow, Store

__all__ = ["DAMAGES", "damage", "damage_table", "fill", "foreign_wal"]

DAMAGES = ("pages", "truncated", "garbage")


def _event(pipeline_id: str, state: str) -> dict[str, Any]:
    return {
        "event": {
            "build": {
                "displayName": pipeline_id,
                "updateSequenceNumber": 0,
                "buildProperties": {"state": state, "pipeline": {"pipelineId": pipeline_id}},
                "padding": "x" * 400,  # a few rows a page: a damaged page costs a few, not all
            }
        }
    }


def fill(state_dir: Path, runs: int, *, prefix: str = "app") -> int:
    """``runs`` runs, each with an IN_PROGRESS event queued (undelivered), written by the store's own
    code and closed cleanly; returns the highest sequence number handed out."""
    store = Store(state_dir)
    top = 0
    for n in range(1, runs + 1):
        pid = f"{prefix}#{n}"
        row = RunRow("jenkins", prefix, n, 1, pid, 1_700_000_000_000, None, None, "IN_PROGRESS", False)
        top = store.record(row, _event(pid, "IN_PROGRESS"), prior=None) or top
    store.close()
    return top


def damage(path: Path, how: str, *, seed: int = 7) -> None:
    """Breaks the database file at ``path`` in place."""
    size = path.stat().st_size
    rnd = random.Random(seed)
    if how == "pages":  # three pages in the middle overwritten with random bytes
        with path.open("r+b") as f:
            for page in (size // 4096 // 2 - 1, size // 4096 // 2, size // 4096 // 2 + 3):
                f.seek(page * 4096)
                f.write(rnd.randbytes(4096))
    elif how == "truncated":
        os.truncate(path, size // 2)
    elif how == "garbage":
        path.write_bytes(rnd.randbytes(size))
    else:
        raise ValueError(how)


def damage_table(path: Path, table: str, *, seed: int = 7, middle: int | None = None) -> int:
    """Overwrites every leaf page of ``table`` (or the ``middle`` ones) with random bytes (found
    with SQLite's ``dbstat``); returns how many pages."""
    db = sqlite3.connect(path)
    pages = [
        int(r[0])
        for r in db.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,))
    ]
    db.close()
    if middle is not None:
        start = max(0, len(pages) // 2 - middle // 2)
        pages = pages[start : start + middle]
    rnd = random.Random(seed)
    with path.open("r+b") as f:
        for page in pages:
            f.seek((page - 1) * 4096)
            f.write(rnd.randbytes(4096))
    return len(pages)


def foreign_wal(state_dir: Path, other_dir: Path) -> None:
    """Puts the ``-wal`` of another buildtail database (with its own events) beside ours."""
    store = Store(other_dir)
    for n in range(1, 4):
        pid = f"other#{n}"
        row = RunRow("jenkins", "other", n, 1, pid, 1_700_000_000_000, None, None, "IN_PROGRESS", False)
        store.record(row, _event(pid, "IN_PROGRESS"), prior=None)
    shutil.copy(f"{store.path}-wal", state_dir / "buildtail.sqlite3-wal")
    store.close()
