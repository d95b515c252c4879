"""Issue keys as Atlassian's Jenkins plugin finds them, and the false positives kept out.

The cases of ``IssueKeyStringExtractorTest`` and ``BranchNameIssueKeyExtractorTest`` in
jenkinsci/atlassian-jira-software-cloud-plugin (HEAD c2d4804b) are here with their expectations;
the separator and edge cases follow its ``IssueKeyStringExtractor`` regex.
"""

from __future__ import annotations

import re

import pytest

from parsers.issue_keys import find_keys, project_of

# Jira's own check of a key in the builds and deployments APIs (Atlassian's OpenAPI, IssueKey);
# Java's \w is ASCII
API_KEY = re.compile(r"^[A-Za-z0-9_]{1,255}-[0-9]{1,255}$")


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        # the plugin's own tests
        ("TEST-123-add-an-awesome-feature", ["TEST-123"]),
        ("TEST-123 TEST-789 Add two awesome features", ["TEST-123", "TEST-789"]),
        ("This commit fixes TEST-89 and TEST-55.", ["TEST-89", "TEST-55"]),
        ("input without any issue key", []),
        ("TEST-123-branch-name", ["TEST-123"]),
        ("DEP-57", ["DEP-57"]),
        # separators: start, end, whitespace, ASCII punctuation
        ("feature/ABC-123-foo", ["ABC-123"]),
        ("ABC-1-DEF-2", ["ABC-1", "DEF-2"]),
        ("[ABC-1](ABC-2){ABC-3}", ["ABC-1", "ABC-2", "ABC-3"]),
        ("fix_ABC-4,ABC-5;ABC-6\tABC-7\nABC-8", ["ABC-4", "ABC-5", "ABC-6", "ABC-7", "ABC-8"]),
        ("TEST-TEST-1", ["TEST-1"]),  # the plugin's 500-key test builds exactly this shape
        ("A1_B2-9", ["A1_B2-9"]),
        # not keys
        ("abc-123", []),
        ("Abc-123", []),
        ("A-1", []),  # the project part has two characters at least
        ("ABC-123x", []),
        ("xABC-1", []),
        ("1ABC-1", []),
        ("ABC-", []),
        ("ABC 123", []),
        ("\u00c4BC-1", []),  # the plugin's \p{Lu} takes it, Jira's ASCII \w would reject the build
        ("AB\u00c7-1", []),
        ("ABC-1\u00e9", []),  # a non-ASCII letter is not a separator
        # looks like a key, is one to the pattern: the project list keeps them out
        ("Fix UTF-8 handling, use SHA-256, PR-24", ["UTF-8", "SHA-256", "PR-24"]),
    ],
)
def test_keys_as_the_plugin_finds_them(text: str, keys: list[str]) -> None:
    assert find_keys(text) == keys
    assert all(API_KEY.match(k) for k in keys)


def test_the_number_and_project_lengths() -> None:
    assert find_keys("ABC-" + "1" * 100) == ["ABC-" + "1" * 100]
    assert find_keys("ABC-" + "1" * 101) == []
    project = "A" * 255
    assert find_keys(f"{project}-1") == [f"{project}-1"]
    assert find_keys(f"{project}B-1") == []  # Jira's key check allows 255 before the hyphen


def test_project_of() -> None:
    assert project_of("A1_B2-9") == "A1_B2"
