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
those in ``unknownIssueKeys`` and a build with only such keys is not stored. Which keys a run's
update carries (the site's project keys, at most ``MAX_ISSUE_KEYS``: ``issueKeys`` maxItems in
Atlassian's OpenAPI) is the Jira sink's decision, in ``daemon.sinks.jira.keys``.
"""

from __future__ import annotations

import re

__all__ = ["MAX_ISSUE_KEYS", "find_keys", "project_of"]

MAX_ISSUE_KEYS = 100  # issueKeys per build or deployment (the associations form would allow 500)

# Java's \s and \p{Punct}, both ASCII: whitespace, and !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
_SEPARATOR = r"[ \t\n\x0b\f\r!-/:-@\[-`{-~]"
_KEY = re.compile(rf"(?:(?<={_SEPARATOR})|^)([A-Z][A-Z0-9_]{{1,254}}-[0-9]{{1,100}})(?={_SEPARATOR}|$)")


def find_keys(text: str) -> list[str]:
    """Every key in one text, left to right, each once."""
    return list(dict.fromkeys(_KEY.findall(text)))


def project_of(key: str) -> str:
    """``ABC`` of ``ABC-123``."""
    return key.rsplit("-", 1)[0]
