"""Whether the state database is damaged: one answer, asked the same way by every command.

A database is damaged when SQLite says so (``database disk image is malformed``, ``file is not a
database``), when ``PRAGMA quick_check`` (on every open: about 60 ms with the page cache warm, under
a second cold, for 100k runs and their events) or ``PRAGMA integrity_check`` (``buildtail state
check``) finds a problem, or when the ``-wal`` file beside it belongs to another database.

That last one SQLite cannot see: a write-ahead log carries no mark of the database it belongs to,
and a valid foreign log is applied over ours page by page, so ours reads as the other database (or
as a mix) and the next checkpoint writes that over our file for good. buildtail therefore stamps
each database it creates with a random identity in the file header's ``user_version`` (written
before the database goes into WAL mode, so it is in the main file from the start; the schema
version lives in ``meta``, not there). When the main file's own bytes carry an identity and the
database as SQLite shows it (log applied) carries another, the log is foreign. A database from a
release before this check has identity 0 there; for it, a log that shows a database smaller than
the main file is taken as foreign (buildtail never shrinks its database). A foreign log from a
larger database over such an old one is not recognised: it is new databases that are protected.

Every look here goes through a read-only connection: a read-only connection never checkpoints, so
looking cannot write a foreign log into the main file. Light imports only: ``status`` uses this.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

__all__ = [
    "FOREIGN_WAL",
    "StateDamagedError",
    "StateUnusableError",
    "file_identity",
    "find_damage",
    "is_damage",
    "new_identity",
]

FOREIGN_WAL = "the -wal file beside it belongs to another database"
_DAMAGE_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_MAX_PROBLEMS = 20


class StateDamagedError(Exception):
    """The state database is damaged; ``problems`` says how (one line each)."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path} is damaged: {problems[0] if problems else 'unknown damage'}")
        self.path = path
        self.problems = problems


class StateUnusableError(Exception):
    """The state cannot be used and this process cannot repair it (read-only directory, full disk,
    another process holding it): restarting would not help, an operator has to act. The message is
    one line naming the file and what to do."""


def is_damage(exc: BaseException) -> bool:
    """An SQLite error that means the file's content is broken (not a lock, a full disk or a
    permission: those are not repaired by rebuilding the database)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.DatabaseError) and code is not None:
        return code & 0xFF in _DAMAGE_CODES
    text = str(exc)
    return "malformed" in text or "not a database" in text


def new_identity() -> int:
    """A random identity for a new database's header (positive 31-bit; 0 means "none")."""
    return secrets.randbelow(2**31 - 1) + 1


def file_identity(path: Path) -> int:
    """The identity in the main file's own header bytes (``user_version``, offset 60), log not
    applied; 0 when there is none or the header cannot be read."""
    try:
        with path.open("rb") as f:
            f.seek(60)
            raw = f.read(4)
    except OSError:
        return 0
    return int.from_bytes(raw, "big") if len(raw) == 4 else 0


def find_damage(path: Path, *, thorough: bool = False) -> list[str]:
    """The problems with the database at ``path``, one line each; empty when it is sound.

    ``thorough`` runs ``integrity_check`` (also compares indexes with their tables) instead of
    ``quick_check``. Errors that are not damage (the file cannot be opened, it is locked) are
    raised: rebuilding would not fix them.
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10.0)
    try:
        db.execute("PRAGMA busy_timeout=10000")
        pragma = "integrity_check" if thorough else "quick_check"
        try:
            rows = db.execute(f"PRAGMA {pragma}({_MAX_PROBLEMS})").fetchall()
            problems = [str(r[0]) for r in rows if r[0] != "ok"]
            if problems:
                return problems
            shown = int(db.execute("PRAGMA user_version").fetchone()[0])
            pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                return [str(exc)]
            raise
    finally:
        db.close()
    if Path(f"{path}-wal").exists() and _foreign(path, shown, pages * page_size):
        return [FOREIGN_WAL]
    return []


def _foreign(path: Path, shown_identity: int, shown_bytes: int) -> bool:
    """The log applied, the database is another one: its identity differs from the main file's own,
    or (for a database from before identities) it is smaller than the main file. buildtail never
    shrinks its database (no VACUUM), and a log of its own can only add pages to the file's."""
    raw = file_identity(path)
    if raw:
        return shown_identity != raw
    try:
        return path.stat().st_size > shown_bytes
    except OSError:
        return False
