"""Issue keys as Atlassian's Jenkins plugin finds them, and the false positives kept out.

The cases of ``IssueKeyStringExtractorTest`` and ``BranchNameIssueKeyExtractorTest`` in
jenkinsci/atlassian-jira-software-cloud-plugin (HEAD c2d4804b) are here with their expectations;
the separator and edge cases follow its ``IssueKeyStringExtractor`` regex.
"""

from __future__ import annotations

import re

import pytest

from parsers.issue_keys import MAX_ISSUE_KEYS, IssueKeys, find_keys, issue_keys, project_of

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


def test_order_of_evidence_each_key_once() -> None:
    found = issue_keys(["feature/OPS-7-login", None, "OPS-8 and OPS-7", "", "Merge OPS-9; OPS-8"])
    assert found == IssueKeys(keys=("OPS-7", "OPS-8", "OPS-9"))


def test_allowed_projects_keep_false_positives_out_and_say_so() -> None:
    texts = ["ISO-8859 decoding for OPS-3", "UTF-8, SHA-256 and web-2", "ops-4 Web-5 WEB-6"]
    found = issue_keys(texts, projects=["ops", " WEB "])
    assert found == IssueKeys(keys=("OPS-3", "WEB-6"), ignored=("ISO-8859", "UTF-8", "SHA-256"))


def test_the_cap_reports_what_was_cut() -> None:
    # the plugin's testMaxIssueKeysLimit: 509 keys in one message, the plugin kept 500 of a set
    message = "Commit message" + "".join(f" TEST-TEST-{n}" for n in range(1, 510))
    found = issue_keys([message])
    assert len(found.keys) == MAX_ISSUE_KEYS == 100
    assert found.keys[0] == "TEST-1" and found.keys[-1] == "TEST-100"
    assert found.cut == tuple(f"TEST-{n}" for n in range(101, 510))
    assert issue_keys([message], limit=500).cut == tuple(f"TEST-{n}" for n in range(501, 510))


def test_the_cap_applies_after_the_project_filter() -> None:
    text = " ".join(f"UTF-{n}" for n in range(200)) + " OPS-1"
    found = issue_keys([text], projects=["OPS"], limit=1)
    assert found.keys == ("OPS-1",) and found.cut == () and len(found.ignored) == 200


def test_project_of() -> None:
    assert project_of("A1_B2-9") == "A1_B2"
