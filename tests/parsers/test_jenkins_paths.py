from __future__ import annotations

from datetime import datetime

import pytest

from parsers import (
    build_dir_number,
    encode_item_name,
    expand_builds_dir,
    is_ignored_name,
    job_full_name,
    legacy_build_dir_time,
    parse_next_build_number,
)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["app"], "app"),
        (["folder", "jobs", "sub", "jobs", "app"], "folder/sub/app"),
        (["mb", "branches", "dev"], "mb/dev"),
        (["mb", "branches", "feature-x.abc123"], "mb/feature-x.abc123"),
        (["org", "jobs", "repo", "branches", "main"], "org/repo/main"),
        (["p", "configurations", "axis-X", "1", "axis-Y", "y"], "p/X=1,Y=y"),
        (["mymatrix", "configurations", "axis-ONE", "1", "axis-TWO", "A"], "mymatrix/ONE=1,TWO=A"),
        (["f", "jobs", "p", "configurations", "axis-label", "linux"], "f/p/label=linux"),
        (["m", "modules", "org.example$core"], "m/org.example$core"),
        (("tuple", "jobs", "ok"), "tuple/ok"),
        ([], None),
        ([""], None),
        (["app", "jobs"], None),
        (["app", "jobs", ""], None),
        (["folder", "jobs", "sub", "jobs"], None),
        (["app", "builds", "1"], None),
        (["app", "workspace", "x"], None),
        ([".app"], None),
        (["folder", "jobs", ".sub"], None),
        (["folder", "jobs", ".."], None),
        (["..", "jobs", "x"], None),
        (["a/b"], None),
        (["p", "configurations"], None),
        (["p", "configurations", "axis-X"], None),
        (["p", "configurations", "X", "1"], None),
        (["p", "configurations", "axis-", "1"], None),
        (["p", "configurations", "axis-X", "1", "jobs", "y"], None),
    ],
)
def test_job_full_name(parts: list[str], expected: str | None) -> None:
    assert job_full_name(parts) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("42", 42),
        ("1", 1),
        ("2147483647", 2147483647),
        ("2147483648", None),
        (".42", None),
        ("0", None),
        ("-1", None),
        ("042", None),
        ("+4", None),
        (" 4", None),
        ("4\n", None),
        ("\u0664\u0662", None),
        ("lastSuccessfulBuild", None),
        ("42x", None),
        ("2013-01-08_12-00-18", None),
        ("build.xml-atomic1tmp", None),
        ("", None),
    ],
)
def test_build_dir_number(name: str, expected: int | None) -> None:
    assert build_dir_number(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2013-01-08_12-00-18", datetime(2013, 1, 8, 12, 0, 18)),
        ("1999-12-31_23-59-59", datetime(1999, 12, 31, 23, 59, 59)),
        ("2013-02-30_12-00-18", None),
        ("2013-01-08_25-00-00", None),
        ("2013-01-08 12-00-18", None),
        ("2013-01-08_12-00-18x", None),
        (".2013-01-08_12-00-18", None),
        ("13-01-08_12-00-18", None),
        ("42", None),
        ("", None),
    ],
)
def test_legacy_build_dir_time(name: str, expected: datetime | None) -> None:
    parsed = legacy_build_dir_time(name)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (".42", True),
        (".hidden", True),
        ("build.xml-atomic123tmp", True),
        ("atomic456tmp", True),
        ("atomic789.tmp", True),
        ("nextBuildNumber-atomic1tmp", True),
        ("lastBuild", True),
        ("lastStableBuild", True),
        ("lastSuccessfulBuild", True),
        ("lastFailedBuild", True),
        ("lastUnstableBuild", True),
        ("lastUnsuccessfulBuild", True),
        ("lastCompletedBuild", True),
        ("lastStable", True),
        ("lastSuccessful", True),
        ("permalinks", True),
        ("legacyIds", True),
        ("42", False),
        ("2013-01-08_12-00-18", False),
        ("build.xml", False),
        ("log", False),
        ("atomic", False),
        ("tmp", False),
        ("lastbuild", False),
        ("lastBuildX", False),
        ("", False),
    ],
)
def test_is_ignored_name(name: str, expected: bool) -> None:
    assert is_ignored_name(name) is expected


_HOME = "/var/lib/jenkins"
_ROOT = "/var/lib/jenkins/jobs/f/jobs/a:b"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${ITEM_ROOTDIR}/builds", "/var/lib/jenkins/jobs/f/jobs/a:b/builds"),
        ("${JENKINS_HOME}/builds/${ITEM_FULL_NAME}", "/var/lib/jenkins/builds/f/a$b"),
        ("${JENKINS_HOME}/builds/${ITEM_FULLNAME}", "/var/lib/jenkins/builds/f/a:b"),
        ("/mnt/ci/$ITEM_FULL_NAME/x", "/mnt/ci/f/a$b/x"),
        ("${UNKNOWN}/${ITEM_FULL_NAME}", "${UNKNOWN}/f/a$b"),
        ("$HOME/${ITEM_ROOTDIR}", "$HOME//var/lib/jenkins/jobs/f/jobs/a:b"),
        ("/static/path", "/static/path"),
        ("${ITEM_FULL_NAME}${ITEM_FULL_NAME}", "f/a$bf/a$b"),
        ("${JENKINS_HOME", "${JENKINS_HOME"),
    ],
)
def test_expand_builds_dir(template: str, expected: str) -> None:
    assert (
        expand_builds_dir(template, jenkins_home=_HOME, item_rootdir=_ROOT, item_full_name="f/a:b")
        == expected
    )


def test_expansion_is_single_pass() -> None:
    result = expand_builds_dir(
        "${ITEM_FULL_NAME}", jenkins_home="/h", item_rootdir="/r", item_full_name="${JENKINS_HOME}"
    )
    assert result == "${JENKINS_HOME}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"43\n", 43),
        (b"43", 43),
        (b"  7 \r\n", 7),
        (b"1\n", 1),
        (b"", None),
        (b"\n", None),
        (b"0\n", None),
        (b"-1\n", None),
        (b"4 2\n", None),
        (b"abc", None),
        (b"\xff\xfe", None),
    ],
)
def test_parse_next_build_number(data: bytes, expected: int | None) -> None:
    assert parse_next_build_number(data) == expected


@pytest.mark.parametrize(
    ("name", "item"),
    [
        ("main", "main"),
        ("feature/login", "feature%2Flogin"),
        ("100%", "100%25"),
        ("a:b?c#d", "a%3Ab%3Fc%23d"),
        ("release-1.2_x y", "release-1.2_x y"),
    ],
)
def test_encode_item_name(name: str, item: str) -> None:
    assert encode_item_name(name) == item
