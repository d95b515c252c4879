"""The commits of a run's checkouts (``changelog*.xml``), where the Jira sink finds issue keys.

A run in progress is looked at many times (each change of its log or ``build.xml``), and its
changelogs are written once, when its checkout is done: parsing them again at every look would
cost a large changelog's parse per log line. So a source keeps each run's commits while it
watches the run, keyed on the changelog files' names, modification times and sizes: a file that
changed (or appeared, or went) is read again, an unchanged set is not. The entry goes when the
run is finished or forgotten.
"""

from __future__ import annotations

import os
from pathlib import Path

from daemon.events import bounded_commits
from parsers import ParseError, UnsafeXmlError
from parsers.changelog import MAX_CHANGELOG_BYTES, ChangeLog, Commit, changelog_names, merge, parse_changelog

__all__ = ["CommitCache", "read_commits"]

_Stamp = tuple[tuple[str, int, int], ...]  # (name, mtime_ns, size) of each changelog file


def read_commits(run_dir: Path, names: list[str]) -> tuple[Commit, ...]:
    """The commits of the changelog files ``names``, bounded; a file that cannot be read or parsed
    yet (half-written) counts as none: the run's next look reads it again (its stamp changes)."""
    logs: list[ChangeLog] = []
    for name in names:
        try:
            with open(run_dir / name, "rb") as fh:
                logs.append(parse_changelog(fh.read(MAX_CHANGELOG_BYTES)))
        except (OSError, ParseError, UnsafeXmlError):
            continue
    return bounded_commits(merge(logs))


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1  # gone between the listing and now: read_commits skips it
    return st.st_mtime_ns, st.st_size


class CommitCache:
    """Each watched run's commits, read again only when its changelog files changed."""

    def __init__(self) -> None:
        self._runs: dict[Path, tuple[_Stamp, tuple[Commit, ...]]] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def commits(self, run_dir: Path) -> tuple[Commit, ...]:
        try:
            names = changelog_names(os.listdir(run_dir))
        except OSError:
            self._runs.pop(run_dir, None)
            return ()
        stamp = tuple((name, *_stat(run_dir / name)) for name in names)
        kept = self._runs.get(run_dir)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        commits = read_commits(run_dir, names)
        self._runs[run_dir] = (stamp, commits)
        return commits

    def forget(self, run_dir: Path) -> None:
        self._runs.pop(run_dir, None)
