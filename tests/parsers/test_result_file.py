from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from parsers.records import ParseError, UnsafeXmlError
from parsers.result_file import (
    ResultFileError,
    ResultRecord,
    TestSummary,
    parse_junit,
    parse_result_file,
)

YAML_DOC = b"""\
pipeline: nightly-backup
id: "2026-11-26.1"
state: SUCCESSFUL
started_at: 2026-11-26T01:00:00Z
completed_at: 2026-11-26T01:12:30Z
url: https://ci.example.com/runs/42
description: "backup of db01"
junit: [reports/*.xml]
"""

EXPECTED = ResultRecord(
    pipeline="nightly-backup",
    id="2026-11-26.1",
    state="SUCCESSFUL",
    result=None,
    started_at=datetime(2026, 11, 26, 1, 0, tzinfo=UTC),
    completed_at=datetime(2026, 11, 26, 1, 12, 30, tzinfo=UTC),
    url="https://ci.example.com/runs/42",
    description="backup of db01",
    junit=("reports/*.xml",),
)

BASE: dict[str, Any] = {
    "pipeline": "nightly-backup",
    "id": "2026-11-26.1",
    "state": "SUCCESSFUL",
    "started_at": "2026-11-26T01:00:00Z",
    "completed_at": "2026-11-26T01:12:30Z",
}


def as_json(**changes: Any) -> bytes:
    doc = dict(BASE)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def test_yaml_document() -> None:
    assert parse_result_file(YAML_DOC, name="result.yaml") == EXPECTED


def test_json_document() -> None:
    data = as_json(url=EXPECTED.url, description=EXPECTED.description, junit=["reports/*.xml"])
    assert parse_result_file(data, name="result.json") == EXPECTED


def test_minimal_yaml_with_result_and_epoch_times() -> None:
    record = parse_result_file(
        b"pipeline: deploy\nid: 42\nresult: success\nstarted_at: 1764118800\ncompleted_at: 1764118860.5\n",
        name="r.yml",
    )
    assert record == ResultRecord(
        pipeline="deploy",
        id="42",
        state=None,
        result="success",
        started_at=datetime(2025, 11, 26, 1, 0, tzinfo=UTC),
        completed_at=datetime(2025, 11, 26, 1, 1, 0, 500000, tzinfo=UTC),
        url=None,
        description=None,
        junit=(),
    )


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"started_at": "2026-11-26T02:00:00+01:00"}, "started_at", datetime(2026, 11, 26, 1, tzinfo=UTC)),
        (
            {"started_at": "2026-11-26 01:00:00.5Z"},
            "started_at",
            datetime(2026, 11, 26, 1, 0, 0, 500000, UTC),
        ),
        ({"started_at": 1764118800}, "started_at", datetime(2025, 11, 26, 1, tzinfo=UTC)),
        ({"started_at": "1764118800"}, "started_at", datetime(2025, 11, 26, 1, tzinfo=UTC)),
        ({"id": 7}, "id", "7"),
        ({"state": "failed"}, "state", "FAILED"),
        ({"state": "IN_PROGRESS", "completed_at": None}, "completed_at", None),
        ({"state": "IN_PROGRESS", "completed_at": ...}, "state", "IN_PROGRESS"),
        ({"state": ..., "result": "UNSTABLE"}, "result", "UNSTABLE"),
        ({"state": None, "result": "ok"}, "state", None),
        ({"url": None, "description": None, "junit": None}, "junit", ()),
        ({"junit": "out/TEST-*.xml"}, "junit", ("out/TEST-*.xml",)),
        ({"junit": ["a/*.xml", "b/**/*.xml"]}, "junit", ("a/*.xml", "b/**/*.xml")),
        ({"url": "http://ci/x"}, "url", "http://ci/x"),
    ],
)
def test_accepted_variants(changes: dict[str, Any], field: str, expected: object) -> None:
    record = parse_result_file(as_json(**changes), name="r.json")
    assert getattr(record, field) == expected


def test_yaml_times_with_offsets_and_yaml_specifics() -> None:
    record = parse_result_file(
        b"pipeline: p\nid: '1'\nresult: ok\n"
        b"started_at: 2026-11-26 02:00:00 +01:00\ncompleted_at: '2026-11-26T01:00:01Z'\n",
        name="r.yaml",
    )
    assert record.started_at == datetime(2026, 11, 26, 1, tzinfo=UTC)
    assert record.completed_at == datetime(2026, 11, 26, 1, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pipeline": ...}, "r.json: pipeline: missing"),
        ({"pipeline": ""}, "pipeline: must not be empty"),
        ({"pipeline": 5}, "pipeline: must be a string"),
        ({"pipeline": ["a"]}, "pipeline: must be a string"),
        ({"id": ...}, "id: missing"),
        ({"id": ""}, "id: must not be empty"),
        ({"id": True}, "id: must be a string or an integer"),
        ({"id": 1.5}, "id: must be a string or an integer"),
        ({"id": {"n": 1}}, "id: must be a string or an integer"),
        ({"state": ...}, "state and result: give exactly one"),
        ({"result": "ok"}, "state and result: give exactly one"),
        ({"state": "GREEN"}, "state: 'GREEN' is not one of"),
        ({"state": 1}, "state: must be a string"),
        ({"state": ..., "result": ""}, "result: must not be empty"),
        ({"started_at": ...}, "started_at: missing"),
        ({"started_at": "yesterday"}, "started_at: not a date-time"),
        ({"started_at": "2026-11-26"}, "started_at: not a date-time"),
        ({"started_at": "2026-02-30T00:00:00Z"}, "started_at: not a date-time"),
        ({"started_at": "2026-11-26T01:00:00"}, "started_at: no UTC offset"),
        ({"started_at": True}, "started_at: not a date-time"),
        ({"started_at": 1e20}, "started_at: not a date-time"),
        ({"started_at": [1]}, "started_at: not a date-time"),
        ({"completed_at": ...}, "completed_at: missing .required unless state is IN_PROGRESS"),
        ({"completed_at": "2026-11-26T00:59:59Z"}, "completed_at: before started_at"),
        ({"completed_at": "soon"}, "completed_at: not a date-time"),
        ({"state": "IN_PROGRESS"}, "completed_at: must be absent while state is IN_PROGRESS"),
        ({"state": ..., "result": "ok", "completed_at": ...}, "completed_at: missing"),
        ({"url": "ci.example.com/x"}, "url: not an http"),
        ({"url": "javascript:alert(1)"}, "url: not an http"),
        ({"url": 3}, "url: must be a string"),
        ({"description": 3}, "description: must be a string"),
        ({"junit": {"a": 1}}, "junit: must be a list"),
        ({"junit": [1]}, "junit: every entry"),
        ({"junit": [""]}, "junit: every entry"),
        ({"junit": ["/etc/*.xml"]}, "junit: '/etc/\\*.xml' must stay inside"),
        ({"junit": ["../other/*.xml"]}, "junit: .* must stay inside"),
        ({"junit": ["a/../../x.xml"]}, "junit: .* must stay inside"),
        ({"junit": ["C:\\reports\\*.xml"]}, "junit: .* must stay inside"),
        ({"junit": ["~/r.xml"]}, "junit: .* must stay inside"),
        ({"colour": "blue"}, "r.json: unknown key 'colour'"),
        ({"x" * 500: 1}, "unknown key 'xxxxx.*\\.\\.\\.$"),
    ],
)
def test_invalid_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ResultFileError, match=message):
        parse_result_file(as_json(**changes), name="r.json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "must be a JSON object or YAML mapping, not NoneType"),
        (b"   \n", "must be a JSON object or YAML mapping"),
        (b"[1, 2]", "not list"),
        (b"just a string", "not str"),
        (b"42", "not int"),
        (b"pipeline: [unclosed\n", "neither a JSON object nor valid YAML"),
        (b'{"pipeline": ', "neither a JSON object nor valid YAML"),
        (b"a: 1\n---\nb: 2\n", "neither a JSON object nor valid YAML"),
        (b"pipeline: x\npipeline\xff: y\n", "neither a JSON object nor valid YAML"),
        (b"\x00\x01\x02\x03garbage", "neither a JSON object nor valid YAML"),
        (b"? [a, b]\n: 1\n", "neither a JSON object nor valid YAML"),
        (b"[" * 100_000, "r.yaml: "),
        (b"x" * (2 << 20), "file too large"),
    ],
)
def test_garbage_files(data: bytes, message: str) -> None:
    with pytest.raises(ResultFileError, match=message):
        parse_result_file(data, name="r.yaml")


@pytest.mark.parametrize(
    "data",
    [
        b"!!python/object/apply:os.system ['touch /tmp/pwned']\n",
        b"pipeline: !!python/object/apply:os.system ['id']\nid: 1\n",
        b"pipeline: !!python/name:os.system\nid: 1\n",
        b'!!python/object/new:subprocess.Popen [["true"]]\n',
    ],
)
def test_hostile_yaml_tags_are_refused(data: bytes) -> None:
    with pytest.raises(ResultFileError, match="neither a JSON object nor valid YAML"):
        parse_result_file(data, name="r.yaml")


def test_yaml_alias_bomb_stays_cheap() -> None:
    lines = [b"a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 30):
        ref = b"*a%d" % (i - 1)
        lines.append(b"a%d: &a%d [%s]" % (i, i, b", ".join([ref] * 10)))
    data = b"\n".join(lines) + b"\n"
    with pytest.raises(ResultFileError, match="unknown key 'a0'"):
        parse_result_file(data, name="bomb.yaml")
    bomb_id = b"\n".join([*lines, b"pipeline: p", b"id: *a29"]) + b"\n"
    with pytest.raises(ResultFileError, match="unknown key"):
        parse_result_file(bomb_id, name="bomb.yaml")


def test_json_with_unicode_and_bom() -> None:
    data = b"\xef\xbb\xbf" + as_json(pipeline="sauvegarde-\u00e9t\u00e9", description="\u2713 ok")
    record = parse_result_file(data, name="r.json")
    assert record.pipeline == "sauvegarde-\u00e9t\u00e9"
    assert record.description == "\u2713 ok"


# --- JUnit ----------------------------------------------------------------------------------------

PYTEST_JUNIT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5"
 time="1.234" timestamp="2026-11-26T01:00:00.123456+00:00" hostname="ci-7">
<testcase classname="tests.test_a" name="test_ok" time="0.001" />
<testcase classname="tests.test_a" name="test_bad" time="0.010"><failure message="assert 1 == 2">
def test_bad():
&gt;       assert 1 == 2
E       assert 1 == 2</failure></testcase>
<testcase classname="tests.test_a" name="test_err" time="0.002">
<error message="failed on setup">fixture</error></testcase>
<testcase classname="tests.test_a" name="test_skip" time="0.000"><skipped type="pytest.skip" message="no db">
/x.py:3: no db</skipped></testcase>
<testcase classname="tests.test_b" name="test_ok2" time="0.100"><system-out>hi</system-out></testcase>
</testsuite></testsuites>
"""

SUREFIRE_JUNIT = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xsi:noNamespaceSchemaLocation="https://maven.apache.org/surefire/maven-surefire-plugin/xsd/surefire-test-report.xsd"
 version="3.0" name="com.example.FooTest" time="1,234.5" tests="4" errors="0" skipped="1" failures="1">
  <properties>
    <property name="java.version" value="17.0.9"/>
    <property name="user.dir" value="/srv/build"/>
  </properties>
  <testcase name="adds" classname="com.example.FooTest" time="0.01"/>
  <testcase name="subtracts" classname="com.example.FooTest" time="0.02">
    <failure message="expected: &lt;1&gt; but was: &lt;2&gt;" type="org.opentest4j.AssertionFailedError">
      <![CDATA[org.opentest4j.AssertionFailedError: expected: <1> but was: <2>]]>
    </failure>
    <system-out><![CDATA[log output]]></system-out>
  </testcase>
  <testcase name="flaky" classname="com.example.FooTest" time="0.03">
    <flakyFailure message="boom" type="java.lang.IllegalStateException"/>
  </testcase>
  <testcase name="ignored" classname="com.example.FooTest" time="0">
    <skipped message="@Disabled"/>
  </testcase>
</testsuite>
"""


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(PYTEST_JUNIT, TestSummary(5, 1, 1, 1, 1.234), id="pytest"),
        pytest.param(SUREFIRE_JUNIT, TestSummary(4, 1, 0, 1, 1234.5), id="surefire"),
        pytest.param(
            b"<testsuites>"
            b"<testsuite name='a' tests='3' failures='1' errors='0' skipped='0' time='1.5'/>"
            b"<testsuite name='b' tests='2' failures='0' errors='1' skipped='1' time='0.5'/>"
            b"</testsuites>",
            TestSummary(5, 1, 1, 1, 2.0),
            id="testsuites-without-totals",
        ),
        pytest.param(
            b"<testsuites tests='9' failures='2' errors='0' time='3'>"
            b"<testsuite name='a' tests='3' failures='1'/><testsuite name='b' tests='2' failures='0'/>"
            b"</testsuites>",
            TestSummary(9, 2, 0, 0, 3.0),
            id="root-totals-win",
        ),
        pytest.param(
            b"<testsuite name='counted'>"
            b"<testcase name='a' time='0.5'/>"
            b"<testcase name='b' time='0.25'><failure/></testcase>"
            b"<testcase name='c'><error/></testcase>"
            b"<testcase name='d'><skipped/></testcase>"
            b"<testcase name='e'><failure/><error/></testcase>"
            b"</testsuite>",
            TestSummary(5, 2, 1, 1, 0.75),
            id="counted-from-testcases",
        ),
        pytest.param(
            b"<testsuite name='outer' tests='bogus' failures='-1'>"
            b"<testsuite name='inner'><testcase name='a'/>"
            b"<testcase name='b'><failure/></testcase></testsuite>"
            b"<testcase name='c'><skipped/></testcase>"
            b"</testsuite>",
            TestSummary(3, 1, 0, 1, None),
            id="nested-and-bad-attributes",
        ),
        pytest.param(
            b"<testsuite name='nose' tests='2' errors='0' failures='0' skip='1'/>",
            TestSummary(2, 0, 0, 1, None),
            id="nose-skip",
        ),
        pytest.param(
            b"<t:testsuite xmlns:t='urn:x' tests='1'>"
            b"<t:testcase name='a'><t:failure/></t:testcase></t:testsuite>",
            TestSummary(1, 1, 0, 0, None),
            id="namespaced",
        ),
        pytest.param(b"<testsuites/>", TestSummary(0, 0, 0, 0, None), id="empty"),
        pytest.param(b"<testsuite time='0,5'/>", TestSummary(0, 0, 0, 0, 0.5), id="decimal-comma"),
        pytest.param(b"<testsuite time='nan'/>", TestSummary(0, 0, 0, 0, None), id="nan-time"),
    ],
)
def test_parse_junit(data: bytes, expected: TestSummary) -> None:
    assert parse_junit(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty document"),
        (b"not xml at all", "malformed XML"),
        (PYTEST_JUNIT[: len(PYTEST_JUNIT) // 2], "malformed XML"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "malformed XML"),
        (b"<build><result>SUCCESS</result></build>", "not a JUnit report: root element <build>"),
        (b"<testsuite>" * 50_000 + b"</testsuite>" * 50_000, "JUnit|XML"),
    ],
)
def test_parse_junit_garbage(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_junit(data)


@pytest.mark.parametrize(
    "data",
    [
        b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<testsuite name="&lol3;" tests="1"/>
""",
        b'<!DOCTYPE testsuite [<!ENTITY x SYSTEM "file:///etc/passwd">]><testsuite name="&x;"/>',
    ],
    ids=["billion-laughs", "external-entity"],
)
def test_parse_junit_hostile(data: bytes) -> None:
    with pytest.raises(UnsafeXmlError):
        parse_junit(data)
