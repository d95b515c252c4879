"""The commits of a run from its changelog files, in the shapes the SCM plugins really write.

The git shapes follow jenkinsci/git-plugin: ``GitChangeLogParser``/``GitChangeSet`` (HEAD add6e4dc)
for the rules, ``src/test/resources/hudson/plugins/git/browser/rawchangelog`` (last changed in
6741c910) for the older client's form with epoch times, ``src/test/java/hudson/plugins/git/
GitChangeSetUtil.java`` (e3ffd8aa) for header junk, an empty ``parent`` and non-indented lines, and
git-client-plugin's ``CliGitAPIImpl`` changelog format (``%ai`` times, ``%w(0,4,4)%B`` message) for
the newer one. The contents below are made up in those shapes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from parsers.changelog import ChangeLog, Commit, changelog_names, merge, parse_changelog
from parsers.records import ParseError, UnsafeXmlError

# the older client: `git whatchanged --format=raw`-like, epoch-second times, raw file lines
OLD_CLIENT = b"""\
commit 1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a
tree 2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c
parent 3b5d7f9b1d3f5b7d9f1b3d5f7b9d1f3b5d7f9b1d
author Ada Lovelace <ada@example.com> 1277411790 +0200
committer Charles Babbage <cb@example.com> 1277411799 +0200

    PAY-12 keep the engine's carry when a column overflows

:100644 100644 4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e 5d7f9b1d3f5b7d9f1b3d5f7b9d1f3b5d7f9b1d3f M\ta.py
:000000 100644 0000000000000000000000000000000000000000 6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a A\tb
"""

# the newer client: %ai times, a multi-line message (blank line inside), a merge with two parents
NEW_CLIENT = b"""\
commit aaaa1111bbbb2222cccc3333dddd4444eeee5555
tree ffff6666aaaa7777bbbb8888cccc9999dddd0000
parent 1111aaaa2222bbbb3333cccc4444dddd5555eeee 6666ffff7777aaaa8888bbbb9999cccc0000dddd
author Grace Hopper <grace@example.com> 2026-11-30 09:15:02 -0500
committer Grace Hopper <grace@example.com> 2026-11-30 09:15:02 -0500

    Merge branch 'feature/OPS-7-compiler' into main

    Fixes OPS-7 and OPS-8.

commit bbbb2222cccc3333dddd4444eeee5555ffff6666
tree 0000aaaa1111bbbb2222cccc3333dddd4444eeee
parent 1111aaaa2222bbbb3333cccc4444dddd5555eeee
author Grace Hopper <grace@example.com> 2026-11-30 09:10:00 -0500
committer Build Bot <bot@example.com> 2026-11-30 09:12:00 -0500

    OPS-7: first pass of the compiler

:100644 100644 aaaa1111bbbb2222cccc3333dddd4444eeee5555 bbbb2222cccc3333dddd4444eeee5555ffff6666 M\tcompiler.c
"""


def test_old_client_form() -> None:
    log = parse_changelog(OLD_CLIENT)
    assert log == ChangeLog(
        "git",
        (
            Commit(
                id="1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a",
                author="Ada Lovelace",
                committer="Charles Babbage",
                title="PAY-12 keep the engine's carry when a column overflows",
                message="PAY-12 keep the engine's carry when a column overflows",
            ),
        ),
    )


def test_new_client_form_keeps_every_message_line() -> None:
    log = parse_changelog(NEW_CLIENT)
    assert [c.id[:8] for c in log.commits] == ["aaaa1111", "bbbb2222"]
    merge_commit, first = log.commits
    assert merge_commit.title == "Merge branch 'feature/OPS-7-compiler' into main"
    # as the git plugin: the blank line between paragraphs is dropped, the text is kept
    assert merge_commit.message == "Merge branch 'feature/OPS-7-compiler' into main\nFixes OPS-7 and OPS-8."
    assert (first.author, first.committer) == ("Grace Hopper", "Build Bot")
    assert first.branch is None  # git records no branch per commit


def test_header_junk_empty_parent_and_unindented_lines_are_ignored() -> None:
    data = (
        b"Some header junk\nheader line 2\n"
        b"commit 123abc456def\ntree 789ghi012jkl\nparent \n"
        b"author John Author <ja@example.com> 1234568 -0600\n"
        b"committer John Committer <jc@example.com> 1234566 -0600\n\n"
        b"    Commit title.\n    Commit extended description.\n\n"
        b"123abc456def\n create mode 100644 some/file1\n"
    )
    (commit,) = parse_changelog(data).commits
    assert commit == Commit(
        id="123abc456def",
        author="John Author",
        committer="John Committer",
        title="Commit title.",
        message="Commit title.\nCommit extended description.",
    )


def test_a_commit_id_counts_once_the_first_wins() -> None:
    # GitChangeLogParserTest.generateDuplicateChanges: the same id twice, the first message stays
    data = b"commit 123abc456def\n    first message\ncommit 123abc456def\n    second message"
    (commit,) = parse_changelog(data).commits
    assert commit.title == "first message"


def test_a_commit_without_id_is_skipped_not_fatal() -> None:
    data = b"commit \n    lost\ncommit abc123\n    kept\n"
    assert [c.title for c in parse_changelog(data).commits] == ["kept"]


def test_lines_beyond_the_per_commit_limit_are_ignored() -> None:
    body = b"".join(b"    line %d\n" % i for i in range(1500))
    (commit,) = parse_changelog(b"commit abc\n" + body).commits
    assert commit.message.count("\n") == 998  # 999 message lines after the commit line


def test_a_huge_file_is_read_up_to_the_cap() -> None:
    one = b"commit %d\n    OPS-1 " + b"x" * 1000 + b"\n"
    data = b"".join(one % n for n in range(20_000))  # about 20 MB
    commits = parse_changelog(data).commits
    assert 15_000 < len(commits) < 20_000 and commits[0].id == "0"


def test_invalid_utf8_does_not_stop_the_parse() -> None:
    (commit,) = parse_changelog(b"commit abc\n    caf\xe9 ABC-1\n").commits
    assert commit.title == "caf\ufffd ABC-1"


@pytest.mark.parametrize("data", [b"", b"\n", b"<log/>", b"<?xml version='1.0'?>\n<log/>\n"])
def test_empty_forms(data: bytes) -> None:
    # an empty file: the git plugin's first build ("Skipping changelog"); <log/>: a run without SCM
    assert parse_changelog(data) == ChangeLog("empty", ())


def test_subversion_form() -> None:
    # SubversionChangeLogParser's digester rules: */logentry (revision attribute), author, date, msg
    data = b"""<?xml version="1.0" encoding="UTF-8"?>
<log>
  <logentry revision="1042">
    <author>alice</author><date>2026-11-30T10:00:00.000000Z</date>
    <paths><path action="M" kind="file">/trunk/app.c</path></paths>
    <msg>WEB-3 fix the header
and the footer</msg>
  </logentry>
  <logentry revision="1043"><author>bob</author><msg></msg></logentry>
</log>"""
    log = parse_changelog(data)
    assert log.format == "logentry"
    assert log.commits == (
        Commit("1042", "alice", title="WEB-3 fix the header", message="WEB-3 fix the header\nand the footer"),
        Commit(id="1043", author="bob", title="", message=""),
    )


def test_unknown_xml_is_named_not_guessed() -> None:
    log = parse_changelog(b"<changesets><changeset node='x'/></changesets>")
    assert log == ChangeLog("unknown:changesets", ())


def test_unsafe_and_half_written_xml_are_refused() -> None:
    with pytest.raises(UnsafeXmlError):
        parse_changelog(b'<!DOCTYPE log [<!ENTITY x "y">]><log>&x;</log>')
    with pytest.raises(ParseError):
        parse_changelog(b"<log><logentry revision='1'>")


def test_names_in_checkout_order() -> None:
    names = ["build.xml", "changelog10.xml", "changelog2.xml", "changelog0.xml", "changelog.xml", "log"]
    assert changelog_names(names) == ["changelog.xml", "changelog0.xml", "changelog2.xml", "changelog10.xml"]


def test_checkouts_merge_each_commit_once_in_checkout_order() -> None:
    # two checkouts in one pipeline run: changelog0.xml and changelog1.xml, one commit in both
    first = parse_changelog(NEW_CLIENT)
    second = parse_changelog(OLD_CLIENT + b"\n" + NEW_CLIENT.split(b"\n\ncommit ")[0])
    merged = merge([first, second, parse_changelog(b"")])
    assert [c.id[:8] for c in merged] == ["aaaa1111", "bbbb2222", "1f3a5c7e"]


SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


# The one real changelog with commits: scm-api's test SCM (MockSCMController) in a multibranch
# pipeline's first build, the same file under the build and its lastStable/lastSuccessful copies.
MOCK_SCM_RUN = "ci-corpus/jenkins/wmb-removed-property/jobs/org/jobs/repo/branches/master"
MOCK_SCM_COMMITS = (
    Commit(id="2851c9369a8d81120227b8dd250f01e4e20c39cf", author=None, title="First!", message="First!"),
    Commit(id="798290637d5581473c6aafd0538673ea8d2d7060", author=None, title="", message=""),
)


@pytest.mark.skipif(not SHARED.is_dir(), reason="real fixtures (../shared next to the checkout) absent")
def test_every_changelog_in_the_shared_fixtures_reads() -> None:
    """Real Jenkins homes: every ``<log/>`` (runs without SCM) reads as no commits, and the mock
    SCM's changelog as exactly its two entries, the second one without a message."""
    empty: list[Path] = []
    with_commits: dict[str, ChangeLog] = {}
    for path in sorted(SHARED.rglob("changelog*.xml")):
        if not path.is_file():
            continue
        log = parse_changelog(path.read_bytes())
        if log.commits:
            with_commits[path.relative_to(SHARED).as_posix()] = log
        else:
            assert path.read_bytes().strip() == b"<log/>", path
            empty.append(path)
    assert len(empty) == 274
    assert sorted(with_commits) == sorted(
        f"{MOCK_SCM_RUN}/{where}/changelog0.xml"
        for where in (
            "builds/1",
            "builds/lastStableBuild",
            "builds/lastSuccessfulBuild",
            "lastStable",
            "lastSuccessful",
        )
    )
    for log in with_commits.values():
        assert log == ChangeLog(format="scm-mock", commits=MOCK_SCM_COMMITS)
