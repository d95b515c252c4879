"""The commits a Jenkins run checked out, from the ``changelog*.xml`` files in its build directory.

Jira links a build to issues through the keys in its commit messages, and these files are the only
place Jenkins keeps them. Despite the name, what is inside depends on the SCM that wrote it:

- the git plugin writes **plain text**, not XML: ``git whatchanged``'s raw commit form
  (``commit <sha>``, ``tree``, ``parent``, ``author Name <mail> <time>``, ``committer ...``, then
  the message indented by four spaces, then ``:<modes> <shas> <action>\\t<path>`` file lines). An
  older client wrote the times as epoch seconds and a zone, a newer one as ``2015-09-30 08:21:24
  -0600``. The git plugin reads a line that starts ``commit `` as the start of the next commit,
  skips empty lines, keeps at most 1000 lines per commit and counts a commit id once; so does this;
- a run without an SCM, or a first build the git plugin skipped ("First time build. Skipping
  changelog."), leaves ``<log/>`` (Jenkins core) or an empty file;
- Subversion (and plugins that copied its form: TFS, Synergy) write ``<log><logentry revision=...><author>``,
  ``<date>``, ``<msg>``; scm-api's test SCM writes an XStream ``<list>`` of entries with ``<hash>``
  and ``<message>``.

A pipeline numbers one file per checkout that asked for a changelog (``changelog0.xml``,
``changelog1.xml``, ...: the first name not yet taken); a freestyle run has one ``changelog.xml``.
``changelog_names`` orders them and ``merge`` joins their commits, each id once. Git never records
a branch per commit (its change set's branch is always null), so ``branch`` is only filled by an SCM
that writes one. An XML form this module does not know is reported as such (``format``
``"unknown:<root>"``), with no commits, rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from parsers.xmlsafe import parse_xml

__all__ = ["ChangeLog", "Commit", "changelog_names", "merge", "parse_changelog"]

MAX_LINES_PER_COMMIT = 1000  # the git plugin ignores a commit's lines beyond this (GitChangeLogParser)
MAX_CHANGELOG_BYTES = 16 * 1024 * 1024  # git writes at most 1024 commits per checkout; far below this

_IDENTITY = re.compile(r"^(?:author|committer) ([^<]*)<(.*)> (.*)$")
_NAME = re.compile(r"^changelog(\d*)\.xml$")


@dataclass(frozen=True, slots=True)
class Commit:
    """One change as the SCM recorded it. ``title`` is the message's first line, ``message`` all of it."""

    id: str
    author: str | None
    title: str
    message: str
    committer: str | None = None
    branch: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeLog:
    """A changelog file read: what wrote it (``git``, ``empty``, ``logentry``: Subversion's form,
    ``scm-mock`` or ``unknown:<root tag>``) and its commits in file order, each id once."""

    format: str
    commits: tuple[Commit, ...]


def parse_changelog(data: bytes) -> ChangeLog:
    """The commits in one ``changelog*.xml``. ParseError when an XML form is malformed or unsafe
    (the file may be half-written: try again after its next write)."""
    head = data.lstrip()
    if not head:
        return ChangeLog("empty", ())
    if head.startswith(b"<"):
        return _parse_xml(data)
    # beyond the cap, the commits after it are lost and the ones before it are still read
    text = data[:MAX_CHANGELOG_BYTES].decode("utf-8", errors="replace")
    return ChangeLog("git", _git_commits(text.splitlines()))


def _git_commits(lines: list[str]) -> tuple[Commit, ...]:
    commits: dict[str, Commit] = {}
    block: list[str] | None = None  # lines before the first "commit " belong to nothing
    for line in lines:
        if line.startswith("commit "):
            _add(commits, block)
            block = []
        if block is not None and len(block) < MAX_LINES_PER_COMMIT:
            block.append(line)
    _add(commits, block)
    return tuple(commits.values())


def _add(commits: dict[str, Commit], block: list[str] | None) -> None:
    if block is None:
        return
    commit = _git_commit(block)
    if commit is not None and commit.id not in commits:
        commits[commit.id] = commit


def _git_commit(block: list[str]) -> Commit | None:
    """One ``commit`` block; None when its first line names no id (the git plugin refuses those)."""
    parts = block[0].split(" ")
    if len(parts) < 2 or not parts[1]:
        return None
    names: dict[str, str] = {}
    message: list[str] = []
    for line in block[1:]:
        if not line:
            continue  # as the git plugin: blank lines, inside a message too, are dropped
        if line.startswith(("author ", "committer ")):
            match = _IDENTITY.match(line)
            if match:
                names[line.split(" ", 1)[0]] = match.group(1).strip()
        elif line.startswith("    "):
            message.append(line[4:])
    text = "\n".join(message)
    title = message[0].strip() if message else ""
    return Commit(
        id=parts[1], author=names.get("author"), committer=names.get("committer"), title=title, message=text
    )


def _parse_xml(data: bytes) -> ChangeLog:
    root = parse_xml(data)
    if root.tag == "log" or root.find(".//logentry") is not None:
        entries = [_logentry(e) for e in root.iter("logentry")]
        return ChangeLog("logentry" if entries else "empty", _unique(entries))
    if root.tag == "list" and len(root) and all(child.find("hash") is not None for child in root):
        return ChangeLog("scm-mock", _unique(_mock_entry(e) for e in root))
    return ChangeLog(f"unknown:{root.tag}", ())


def _text(element: Element, tag: str) -> str | None:
    child = element.find(tag)
    return None if child is None else (child.text or "")


def _logentry(entry: Element) -> Commit:
    message = _text(entry, "msg") or ""
    return Commit(
        id=entry.get("revision") or "",
        author=_text(entry, "author"),
        title=message.strip().split("\n", 1)[0].strip() if message.strip() else "",
        message=message,
    )


def _mock_entry(entry: Element) -> Commit:
    message = _text(entry, "message") or ""
    return Commit(
        id=_text(entry, "hash") or "",
        author=None,
        title=message.strip().split("\n", 1)[0].strip() if message.strip() else "",
        message=message,
    )


def _unique(entries: Iterable[Commit]) -> tuple[Commit, ...]:
    seen: dict[str, Commit] = {}
    for commit in entries:
        if commit.id and commit.id not in seen:
            seen[commit.id] = commit
    return tuple(seen.values())


def changelog_names(names: Iterable[str]) -> list[str]:
    """The changelog files among a build directory's entries, in checkout order: a freestyle
    ``changelog.xml`` first, then ``changelog0.xml``, ``changelog1.xml``, ... by number."""
    found = [(m.group(1), name) for name in names if (m := _NAME.match(name))]
    return [name for _, name in sorted(found, key=lambda f: -1 if not f[0] else int(f[0]))]


def merge(logs: Iterable[ChangeLog]) -> tuple[Commit, ...]:
    """The commits of every checkout of one run, each id once, in checkout order (two checkouts of
    the same repository report a shared commit twice)."""
    return _unique(commit for log in logs for commit in log.commits)
