"""``buildtail state check`` and ``buildtail state recover``: the state database's health on demand.

``check`` only reads (a read-only connection, safe beside a running daemon) and runs SQLite's full
``integrity_check``. ``recover`` does what ``buildtail run`` does by itself on a damaged database,
and refuses while a daemon or backfill holds the delivery lock: the database is theirs then.
"""

from __future__ import annotations

import sys
from pathlib import Path

from daemon.state_check import StateUnusableError, find_damage

__all__ = ["EXIT_DAMAGED", "check", "recover"]

EXIT_DAMAGED = 1


def check(state_dir: Path) -> int:
    """One line per problem; exit 0 sound, 1 damaged, 2 no database."""
    path = state_dir / "buildtail.sqlite3"
    if not path.exists():
        print(f"buildtail state check: no state database at {path}", file=sys.stderr)
        return 2
    problems = find_damage(path, thorough=True)
    for problem in problems:
        print(f"{path}: {problem}")
    if problems:
        print(
            f"{path}: DAMAGED ({len(problems)} problem(s)): run `buildtail state recover` (the daemon "
            "does the same when it starts)"
        )
        return EXIT_DAMAGED
    print(f"{path}: ok")
    return 0


def recover(state_dir: Path, sinks: tuple[str, ...] | None = None) -> int:
    """Recovers a damaged database (a sound one is left alone); prints what was salvaged."""
    from daemon.delivery.lock import DeliveryLock
    from daemon.recovery import recover as rebuild

    path = state_dir / "buildtail.sqlite3"
    if not path.exists():
        print(f"buildtail state recover: no state database at {path}", file=sys.stderr)
        return 2
    if DeliveryLock(state_dir).is_held():
        print(
            f"buildtail state recover: a buildtail process holds {state_dir / 'delivery.lock'} "
            "(stop the daemon or backfill first)",
            file=sys.stderr,
        )
        return EXIT_DAMAGED
    problems = find_damage(path, thorough=True)
    if not problems:
        print(f"{path}: ok, nothing to recover")
        return 0
    try:
        done = rebuild(state_dir, problems, sinks)
    except StateUnusableError as exc:
        print(f"buildtail state recover: {exc}", file=sys.stderr)
        return EXIT_DAMAGED
    print(
        f"damaged database set aside as {done.damaged_file}"
        + (f" (log: {done.wal_file})" if done.wal_file else "")
    )
    for table, n in done.salvaged.items():
        lost = done.lost.get(table)
        print(f"  {table:<13} {n} salvaged, {'an unknown number' if lost is None else lost} lost")
    if done.rewound:
        print(f"  {done.rewound} run(s) whose last event was lost will be sent again when next seen")
    print(f"new sequence numbers start above {done.last_seq}; recovered in {done.seconds:.2f}s")
    return 0
