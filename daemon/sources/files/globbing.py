"""Path patterns -> the files they match now, and the directories worth watching for new ones.

Like ``glob`` with ``**``, with two differences a tailer needs: a wildcard does not follow a
symlinked directory (a loop would never end; it is reported instead), and every directory a
pattern reaches is remembered, so the service can watch it for files yet to come.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from pathlib import Path

from daemon.sources.files.tailed import Problem, Problems

__all__ = ["PatternWalker"]

_MAGIC = frozenset("*?[")


def _name_matches(name: str, pattern: str) -> bool:
    if name.startswith(".") and not pattern.startswith("."):
        return False  # as glob: hidden names only match a pattern that asks for them
    return fnmatch.fnmatchcase(name, pattern)


class PatternWalker:
    def __init__(self, patterns: list[Path], problems: Problems) -> None:
        self._patterns = patterns
        self._problems = problems
        self.dirs: set[Path] = set()

    def glob(self) -> tuple[list[Path], list[Problem]]:
        """Every path the patterns match, in pattern order then name order; symlinked directories are not
        followed by wildcards (a loop is reported), symlinks to files are."""
        found: dict[Path, None] = {}
        problems: list[Problem] = []
        dirs: set[Path] = set()
        for pattern in self._patterns:
            parts = pattern.parts
            first = next((i for i, part in enumerate(parts) if _MAGIC & set(part)), len(parts))
            matches: list[Path] = []
            if first == len(parts):
                if os.path.lexists(pattern):
                    matches.append(pattern)
                dirs.add(pattern.parent)
            else:
                root = Path(*parts[:first])
                if root.is_dir():
                    dirs.add(root)
                self._walk(root, parts[first:], matches, problems)
            for path in matches:
                found.setdefault(path, None)
                dirs.add(path.parent)
        self.dirs = dirs
        return list(found), problems

    def _walk(self, directory: Path, rest: tuple[str, ...], out: list[Path], problems: list[Problem]) -> None:
        head, tail = rest[0], rest[1:]
        if not _MAGIC & set(head):
            nxt = directory / head
            if tail:
                if nxt.is_dir():
                    self._walk(nxt, tail, out, problems)
            elif os.path.lexists(nxt):
                out.append(nxt)
            return
        if head == "**":
            if tail:
                self._walk(directory, tail, out, problems)
            for entry in self._scan(directory, problems):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    self._walk(Path(entry.path), rest, out, problems)
                elif entry.is_symlink() and self._dir_link(entry, problems):
                    continue
                elif not tail:
                    out.append(Path(entry.path))
            return
        for entry in self._scan(directory, problems):
            if not _name_matches(entry.name, head):
                continue
            if not tail:
                out.append(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                self._walk(Path(entry.path), tail, out, problems)

    def _scan(self, directory: Path, problems: list[Problem]) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as it:
                return sorted(it, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            problem = self._problems.os_error(str(directory), exc, "vanished before it could be listed")
            if problem is not None:
                problems.append(problem)
            return []

    def _dir_link(self, entry: os.DirEntry[str], problems: list[Problem]) -> bool:
        """True for a symlink that a recursive glob must not follow (to a directory, or a loop)."""
        try:
            st = os.stat(entry.path)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                return False  # dangling: the open reports it
            problem = self._problems.report(entry.path, "loop", "symlink loop")
        else:
            if not stat.S_ISDIR(st.st_mode):
                return False
            target = os.path.realpath(entry.path)
            here = os.path.realpath(os.path.dirname(entry.path))
            if here != target and not here.startswith(target.rstrip(os.sep) + os.sep):
                return True
            problem = self._problems.report(
                entry.path, "loop", "symlink loop (links to its own ancestor; not followed)"
            )
        if problem is not None:
            problems.append(problem)
        return True
