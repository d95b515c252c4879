"""Jira issue keys in free text (branch names, commit messages, build parameters).

Jira links a build or a deployment to the issues whose keys it carries, so the keys are found the
way Atlassian's Jenkins plugin finds them (``IssueKeyStringExtractor`` in
jenkinsci/atlassian-jira-software-cloud-plugin): an uppercase letter, one or more uppercase letters,
digits or ``_``, a ``-``, one to 100 digits; standing at the start of the text or after whitespace or
ASCII punctuation, and followed by the end or by whitespace or ASCII punctuation. So
``feature/ABC-123-login`` gives ``ABC-123``, ``ABC-1-DEF-2`` both, ``TEST-TEST-1`` gives ``TEST-1``,
and ``abc-123``, ``A-1``, ``ABC-123x``, ``xABC-1`` nothing.

Where this differs from the plugin, it is so that Jira's own check of a key
(``^\\w{1,255}-\\d{1,255}$``, ASCII) never rejects the whole build for a key found here: the letters
are ASCII only (the plugin's ``\\p{Lu}`` also takes ``Ä``), and the project part is at most 255
characters. The keys come in order of evidence (the first text first, and within a text from left to
right), each once.

What looks like a key is not always one: ``UTF-8``, ``SHA-256``, ``ISO-8859``, ``PR-24``. Jira names
those in ``unknownIssueKeys`` and a build with only such keys is not stored; a list of the site's
project keys (``projects``) keeps them out, and what it kept out is reported (``ignored``). An
entity carries at most ``MAX_ISSUE_KEYS`` keys (``issueKeys`` maxItems in Atlassian's OpenAPI): the
keys beyond the cap are reported (``cut``), never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

__all__ = ["MAX_ISSUE_KEYS", "IssueKeys", "find_keys", "issue_keys", "project_of"]

MAX_ISSUE_KEYS = 100  # issueKeys per build or deployment (the associations form would allow 500)

# Java's \s and \p{Punct}, both ASCII: whitespace, and !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
_SEPARATOR = r"[ \t\n\x0b\f\r!-/:-@\[-`{-~]"
_KEY = re.compile(rf"(?:(?<={_SEPARATOR})|^)([A-Z][A-Z0-9_]{{1,254}}-[0-9]{{1,100}})(?={_SEPARATOR}|$)")


@dataclass(frozen=True, slots=True)
class IssueKeys:
    """The keys to send (``keys``, at most the cap), the ones over the cap (``cut``) and the ones whose
    project is not among the allowed (``ignored``), each in order of evidence."""

    keys: tuple[str, ...]
    cut: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


def find_keys(text: str) -> list[str]:
    """Every key in one text, left to right, each once."""
    return list(dict.fromkeys(_KEY.findall(text)))


def project_of(key: str) -> str:
    """``ABC`` of ``ABC-123``."""
    return key.rsplit("-", 1)[0]


def issue_keys(
    texts: Iterable[str | None], *, projects: Collection[str] | None = None, limit: int = MAX_ISSUE_KEYS
) -> IssueKeys:
    """The keys in ``texts`` (branch names first, then commit messages, as the caller orders its
    evidence), of the ``projects`` given (any project when None), at most ``limit``."""
    allowed = None if projects is None else {p.strip().upper() for p in projects}
    found: dict[str, None] = {}
    for text in texts:
        if text:
            found.update(dict.fromkeys(_KEY.findall(text)))
    kept = [k for k in found if allowed is None or project_of(k) in allowed]
    ignored = tuple(k for k in found if allowed is not None and project_of(k) not in allowed)
    return IssueKeys(keys=tuple(kept[:limit]), cut=tuple(kept[limit:]), ignored=ignored)
