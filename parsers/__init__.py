"""Pure parsers for what CI servers write to disk: bytes and strings in, frozen records out.

Jenkins' ``build.xml``, console logs and path names; line rules for any CI's log; result files (the
documented JSON/YAML shape, JUnit XML summaries); CruiseControl build logs; GoCD job consoles. No
I/O of their own, no asyncio, nothing from ``daemon``: each is a function of its input, tested on
real and hostile bytes.
"""

from parsers.branch_head import BranchHead, parse_branch_head
from parsers.cruisecontrol import (
    CruiseControlBuild,
    parse_build_time,
    parse_cruisecontrol_log,
    parse_log_name,
)
from parsers.gocd import GoCDConsole, GoCDJob, GoCDPath, console_zone, parse_console_path, parse_gocd_console
from parsers.jenkins_log import parse_log, strip_console_notes
from parsers.jenkins_paths import (
    build_dir_number,
    encode_item_name,
    expand_builds_dir,
    is_ignored_name,
    job_full_name,
    legacy_build_dir_time,
    parse_next_build_number,
)
from parsers.jenkins_xml import (
    parse_branch_name,
    parse_build_xml,
    parse_builds_dir_setting,
    parse_display_name,
)
from parsers.log_rules import LineEvent, RuleError, RuleSet, check_template, parse_time, render_template
from parsers.records import BuildXml, LogFacts, ParseError, UnsafeXmlError
from parsers.result_file import ResultFileError, ResultRecord, TestSummary, parse_junit, parse_result_file
from parsers.vocabulary import JENKINS_RESULTS
from parsers.xmlsafe import parse_xml

__all__ = [
    "JENKINS_RESULTS",
    "BranchHead",
    "BuildXml",
    "CruiseControlBuild",
    "GoCDConsole",
    "GoCDJob",
    "GoCDPath",
    "LineEvent",
    "LogFacts",
    "ParseError",
    "ResultFileError",
    "ResultRecord",
    "RuleError",
    "RuleSet",
    "TestSummary",
    "UnsafeXmlError",
    "build_dir_number",
    "check_template",
    "console_zone",
    "encode_item_name",
    "expand_builds_dir",
    "is_ignored_name",
    "job_full_name",
    "legacy_build_dir_time",
    "parse_branch_head",
    "parse_branch_name",
    "parse_build_time",
    "parse_build_xml",
    "parse_builds_dir_setting",
    "parse_console_path",
    "parse_cruisecontrol_log",
    "parse_display_name",
    "parse_gocd_console",
    "parse_junit",
    "parse_log",
    "parse_log_name",
    "parse_next_build_number",
    "parse_result_file",
    "parse_time",
    "parse_xml",
    "render_template",
    "strip_console_notes",
]
