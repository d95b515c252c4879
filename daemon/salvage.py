"""Reading the rows out of a damaged SQLite file, as many as can be read, in plain Python.

sqlite3's ``.recover`` is not always installed, and ``VACUUM INTO`` stops at the first bad page.
Here a table is read three ways, each through the table's own b-tree (``NOT INDEXED``: an index
may be what is damaged, and the query planner likes covering indexes):

1. a scan in rowid order; where it hits a damaged page, a search jumps ahead (1, 2, 4, ... rowids,
   then halving back when it overshoots) to the next rowid it can reach, and the scan goes on;
2. every rowid the table's indexes still list (an index is a second copy of the rowids, on other
   pages), each looked up on its own: a lookup walks one path from the root to one leaf, so it
   reaches rows a scan could not get past a broken neighbour to;
3. nothing else: a damaged page high in the tree (the root, an interior page) hides every row
   under it from all of these. sqlite3's ``.recover`` reads leaf pages directly and can do more,
   by hand, on the file set aside.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["count", "open_damaged", "rows"]

_MAX_ROWID = 2**63 - 1


def open_damaged(path: Path) -> sqlite3.Connection:
    """Read-only. ``writable_schema`` (nothing can be written on a read-only connection) makes SQLite
    read a file shorter than its header says, as a cut-off one is, instead of refusing all of it."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    db.execute("PRAGMA busy_timeout=10000")
    db.execute("PRAGMA writable_schema=ON")
    return db


def count(db: sqlite3.Connection, table: str) -> int | None:
    """The table's rows as its own b-tree counts them; None when that cannot be read."""
    try:
        return int(db.execute(f"SELECT COUNT(*) FROM {table} NOT INDEXED").fetchone()[0])
    except sqlite3.DatabaseError:
        return None


def rows(db: sqlite3.Connection, table: str, names: str) -> Iterator[tuple[Any, ...]]:
    """Every row of ``table`` (columns ``names``) that can be read, each once."""
    seen: set[int] = set()
    for rowid, row in _scan(db, table, names):
        seen.add(rowid)
        yield row
    for rowid in sorted(_indexed_rowids(db, table) - seen):
        try:
            row = db.execute(f"SELECT {names} FROM {table} NOT INDEXED WHERE rowid = ?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row is not None:
            yield tuple(row)


def _scan(db: sqlite3.Connection, table: str, names: str) -> Iterator[tuple[int, tuple[Any, ...]]]:
    pos = -1
    query = f"SELECT rowid, {names} FROM {table} NOT INDEXED WHERE rowid > ? ORDER BY rowid"
    while True:
        try:
            for row in db.execute(query, (pos,)):
                pos = int(row[0])
                yield pos, tuple(row[1:])
            return
        except sqlite3.DatabaseError:
            found = _next_reachable(db, table, pos)
            if found is None:
                return
            pos = found - 1  # the scan goes on from there (or fails again and jumps further)
            try:
                single = db.execute(f"SELECT {names} FROM {table} NOT INDEXED WHERE rowid = ?", (found,))
                row = single.fetchone()
            except sqlite3.DatabaseError:
                row = None
            pos = found
            if row is not None:
                yield found, tuple(row)


def _search(db: sqlite3.Connection, table: str, at: int) -> int | None:
    """The first rowid at or after ``at``: None when there is none; raises past a damaged page."""
    query = f"SELECT rowid FROM {table} NOT INDEXED WHERE rowid >= ? ORDER BY rowid LIMIT 1"
    hit = db.execute(query, (at,)).fetchone()
    return None if hit is None else int(hit[0])


def _next_reachable(db: sqlite3.Connection, table: str, pos: int) -> int | None:
    """A rowid after ``pos`` that a search reaches: jumping 1, 2, 4, ... ahead past the damage, and
    when a jump lands beyond the last row, halving back towards the last search that failed."""
    failed, step = pos, 1
    while pos + step <= _MAX_ROWID:
        at = pos + step
        try:
            hit = _search(db, table, at)
        except sqlite3.DatabaseError:
            failed, step = at, step * 2
            continue
        if hit is not None:
            return hit
        beyond = at  # nothing at or after it: look between the last failure and here
        while beyond - failed > 1:
            middle = (failed + beyond) // 2
            try:
                hit = _search(db, table, middle)
            except sqlite3.DatabaseError:
                failed = middle
                continue
            if hit is None:
                beyond = middle
            else:
                return hit
        return None
    return None


def _indexed_rowids(db: sqlite3.Connection, table: str) -> set[int]:
    """The rowids the table's (full) indexes list, as far as each can be read."""
    found: set[int] = set()
    try:
        indexes = [str(r[1]) for r in db.execute(f"PRAGMA index_list({table})") if not r[4]]
    except sqlite3.DatabaseError:
        return found
    for index in indexes:
        try:
            for (rowid,) in db.execute(f'SELECT rowid FROM {table} INDEXED BY "{index}"'):
                found.add(int(rowid))
        except sqlite3.DatabaseError:
            continue
    return found
