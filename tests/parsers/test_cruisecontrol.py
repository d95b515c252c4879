from __future__ import annotations

from datetime import datetime

import pytest

from parsers.cruisecontrol import (
    CruiseControlBuild,
    parse_build_time,
    parse_cruisecontrol_log,
    parse_log_name,
)
from parsers.records import ParseError, UnsafeXmlError

SUCCESS_LOG = b"""<?xml version="1.0" encoding="UTF-8"?>
<cruisecontrol>
  <modifications>
    <modification type="svn">
      <file action="modified"><revision>489</revision><filename>src/Main.java</filename></file>
      <date>12/09/2005 12:15:00</date>
      <user>alice</user>
      <comment><![CDATA[Fix the <build> & friends]]></comment>
    </modification>
  </modifications>
  <info>
    <property name="projectname" value="connectfour" />
    <property name="lastbuild" value="20051209110000" />
    <property name="lastsuccessfulbuild" value="20051209110000" />
    <property name="builddate" value="12/09/2005 12:21:03" />
    <property name="cctimestamp" value="20051209122103" />
    <property name="label" value="build.489" />
    <property name="interval" value="300" />
    <property name="lastbuildsuccessful" value="true" />
    <property name="logdir" value="/srv/cc/logs/connectfour" />
    <property name="logfile" value="log20051209122103Lbuild.489.xml" />
  </info>
  <build time="3 minutes 10 seconds">
    <target name="init" time="1 second">
      <task name="mkdir" location="build.xml:12: "><message priority="info">Created dir</message></task>
    </target>
  </build>
</cruisecontrol>
"""

FAILURE_LOG = b"""<?xml version="1.0" encoding="UTF-8"?>
<cruisecontrol>
  <modifications />
  <info>
    <property name="projectname" value="connectfour" />
    <property name="builddate" value="12/09/2005 12:21:04" />
    <property name="cctimestamp" value="20051209122104" />
    <property name="label" value="build.490" />
    <property name="logfile" value="log20051209122104.xml" />
  </info>
  <build error="Compile failed; see the compiler error output for details." time="1 minute 5 seconds">
    <target name="compile" time="1 minute 2 seconds">
      <task name="javac"><message priority="error">Main.java:3: ';' expected</message></task>
    </target>
    <stacktrace>build.xml:30: Compile failed</stacktrace>
  </build>
</cruisecontrol>
"""


# --- file names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("log20051209122103Lbuild.489.xml", (datetime(2005, 12, 9, 12, 21, 3), "build.489")),
        ("log20051209122104.xml", (datetime(2005, 12, 9, 12, 21, 4), None)),
        ("log20051209122104.xml.gz", (datetime(2005, 12, 9, 12, 21, 4), None)),
        ("log20051209122103L42.xml.gz", (datetime(2005, 12, 9, 12, 21, 3), "42")),
        ("log20051209122103Lrelease-1.2_rc3.xml", (datetime(2005, 12, 9, 12, 21, 3), "release-1.2_rc3")),
        ("log20051209122103Lx.xml.xml", (datetime(2005, 12, 9, 12, 21, 3), "x.xml")),
        ("logs/connectfour/log20051209122103L7.xml", (datetime(2005, 12, 9, 12, 21, 3), "7")),
        ("log20240229000000.xml", (datetime(2024, 2, 29), None)),
        # CruiseControl's 2002 releases named logs to the minute
        ("log200204250928L2-2.xml", (datetime(2002, 4, 25, 9, 28), "2-2")),
        ("log200204250928.xml", (datetime(2002, 4, 25, 9, 28), None)),
        ("log200204250928L.xml", (datetime(2002, 4, 25, 9, 28), "")),
        ("log200213250928.xml", None),
        ("log2002042509281.xml", None),
        ("log20230229000000.xml", None),
        ("log20051309122104.xml", None),
        ("log2005120912210.xml", None),
        ("log20051209122.xml", None),
        ("log200512091221044.xml", None),
        ("log20051209122104.xml.bak", None),
        ("log20051209122104.xml.tmp", None),
        ("log20051209122104.XML", None),
        ("Log20051209122104.xml", None),
        ("status.txt", None),
        ("", None),
    ],
)
def test_parse_log_name(name: str, expected: tuple[datetime, str | None] | None) -> None:
    assert parse_log_name(name) == expected


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 minutes 10 seconds", 190.0),
        ("1 hour 2 minutes 5 seconds", 3725.0),
        ("2 hours 0 minutes 1 second", 7201.0),
        ("10 seconds", 10.0),
        ("1 second", 1.0),
        ("1 minute", 60.0),
        ("0 minute(s) 3 second(s)", 3.0),
        ("1 hour, 2 minutes and 5 seconds", 3725.0),
        ("  3 Minutes 10 Seconds ", 190.0),
        ("1 day 1 hour", 90000.0),
        ("2 mins 3 secs", 123.0),
        ("1.5 seconds", 1.5),
        ("garbage", None),
        ("", None),
        ("10", None),
        ("3 minutes and", None),
        ("3 minutes 10", None),
        ("3 minutesx", None),
        ("minutes", None),
        ("-3 seconds", None),
    ],
)
def test_parse_build_time(text: str, expected: float | None) -> None:
    assert parse_build_time(text) == expected


# --- whole logs ----------------------------------------------------------------------------------


def test_successful_build() -> None:
    build = parse_cruisecontrol_log(SUCCESS_LOG, name="log20051209122103Lbuild.489.xml")
    assert build == CruiseControlBuild(
        project="connectfour",
        label="build.489",
        timestamp=datetime(2005, 12, 9, 12, 21, 3),
        duration_s=190.0,
        success=True,
        error=None,
        stamp="20051209122103",
        name_label="build.489",
    )
    assert build.run_id == "build.489"


def test_failed_build() -> None:
    build = parse_cruisecontrol_log(FAILURE_LOG, name="log20051209122104.xml")
    assert build == CruiseControlBuild(
        project="connectfour",
        label="build.490",
        timestamp=datetime(2005, 12, 9, 12, 21, 4),
        duration_s=65.0,
        success=False,
        error="Compile failed; see the compiler error output for details.",
        stamp="20051209122104",
    )
    assert build.run_id == "20051209122104"  # the content label is the one the next build tries


def _log(label: str, error: str | None = None, stamp: str = "20020507010355") -> bytes:
    err = "" if error is None else f' error="{error}"'
    return (
        f'<cruisecontrol><info><property name="label" value="{label}"/>'
        f'<property name="cctimestamp" value="{stamp}"/></info>'
        f'<build time="3 seconds"{err}/></cruisecontrol>'
    ).encode()


@pytest.mark.parametrize(
    ("name", "data", "run_id", "success"),
    [
        # the default label incrementer: three failures logged with the label the success then uses
        ("log20020507010355.xml", _log("1.1", "srcdir does not exist"), "20020507010355", False),
        ("log20020507023858.xml", _log("1.1", "Test failed"), "20020507023858", False),
        ("log20020507152903L1.1.xml", _log("1.1"), "1.1", True),
        # the name's label wins over the content's (2002 logs disagree with themselves)
        ("log200204250928L2-2.xml", _log("15"), "2-2", True),
        ("log200204250928.xml", _log("15", ""), "200204250928", False),
        # a success named with an empty label (an empty label incrementer): the timestamp
        ("log20200101000000L.xml", _log(""), "20200101000000", True),
        # a name CruiseControl did not write: the content decides
        ("connectfour.xml", _log("7", stamp="20200101000000"), "7", True),
        ("connectfour.xml", _log("7", "boom", stamp="20200101000000"), "20200101000000", False),
        ("log20200101000000.xml.gz", _log("8"), "20200101000000", False),
    ],
)
def test_run_ids(name: str, data: bytes, run_id: str, success: bool) -> None:
    build = parse_cruisecontrol_log(data, name=name)
    assert (build.run_id, build.success) == (run_id, success)


def test_a_success_and_a_failure_a_second_later_keep_distinct_ids() -> None:
    success = parse_cruisecontrol_log(_log("5"), name="log20200101000000L5.xml")
    failure = parse_cruisecontrol_log(_log("6", "boom"), name="log20200101000001.xml")
    assert success.run_id != failure.run_id


@pytest.mark.parametrize(
    ("name", "timestamp", "success"),
    [
        # The name wins for the time; a log-form name without a label is not a success.
        ("log20051209130000Lbuild.489.xml", datetime(2005, 12, 9, 13), True),
        ("log20051209130000.xml", datetime(2005, 12, 9, 13), False),
        # Any other name: cctimestamp and the error attribute decide.
        ("connectfour-latest.xml", datetime(2005, 12, 9, 12, 21, 3), True),
    ],
)
def test_name_and_content_together(name: str, timestamp: datetime, success: bool) -> None:
    build = parse_cruisecontrol_log(SUCCESS_LOG, name=name)
    assert (build.timestamp, build.success, build.error) == (timestamp, success, None)


def test_minimal_log_and_missing_details() -> None:
    build = parse_cruisecontrol_log(
        b"<cruisecontrol><build error='' time='a while'/></cruisecontrol>", name="log20200101000000.xml"
    )
    assert build == CruiseControlBuild(
        project=None,
        label=None,
        timestamp=datetime(2020, 1, 1),
        duration_s=None,
        success=False,
        error="",
        stamp="20200101000000",
    )
    only_name_label = parse_cruisecontrol_log(
        b"<cruisecontrol><info/><build/></cruisecontrol>", name="log20200101000000L5.xml.gz"
    )
    assert (only_name_label.label, only_name_label.success, only_name_label.duration_s) == ("5", True, None)


def test_xml11_and_control_characters_in_messages() -> None:
    data = (
        b"<?xml version='1.1' encoding='UTF-8'?><cruisecontrol><info>"
        b"<property name='projectname' value='p&#x1b;[0m'/></info>"
        b"<build error='exit 1 &#x1b;[31mred' time='1 second'/></cruisecontrol>"
    )
    build = parse_cruisecontrol_log(data, name="log20200101000000.xml")
    assert (build.project, build.error) == ("p[0m", "exit 1 [31mred")


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"<cruisecontrol><info/></cruisecontrol>", "log20200101000000.xml", "no <build> element"),
        (
            SUCCESS_LOG.replace(b"<build time", b"<built time").replace(b"</build>", b"</built>"),
            "x.xml",
            "<build>",
        ),
        (SUCCESS_LOG[: len(SUCCESS_LOG) // 2], "log20051209122103Lbuild.489.xml", "malformed XML"),
        (SUCCESS_LOG[:-20], "log20051209122103Lbuild.489.xml", "malformed XML"),
        (b"", "log20200101000000.xml", "empty document"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "log20200101000000.xml.gz", "malformed XML"),
        (b"<build><result>SUCCESS</result></build>", "log20200101000000.xml", "not a CruiseControl log"),
        (b"<cruisecontrol><build/></cruisecontrol>", "build.xml", "no build time"),
        (
            b"<cruisecontrol><info><property name='cctimestamp' value='2005-12-09'/></info>"
            b"<build/></cruisecontrol>",
            "x.xml",
            "no build time",
        ),
    ],
)
def test_unreadable_logs(data: bytes, name: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_cruisecontrol_log(data, name=name)


@pytest.mark.parametrize(
    "data",
    [
        b"""<?xml version="1.0"?>
<!DOCTYPE cruisecontrol [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
]>
<cruisecontrol><build error="&c;"/></cruisecontrol>
""",
        b'<!DOCTYPE cruisecontrol [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<cruisecontrol><build error="&x;"/></cruisecontrol>',
        b'<!DOCTYPE cruisecontrol SYSTEM "http://example.invalid/cc.dtd"><cruisecontrol><build/></cruisecontrol>',
    ],
    ids=["entity-expansion", "external-entity", "external-dtd"],
)
def test_hostile_logs_are_refused(data: bytes) -> None:
    with pytest.raises(UnsafeXmlError):
        parse_cruisecontrol_log(data, name="log20200101000000.xml")
