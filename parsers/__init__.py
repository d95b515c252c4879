"""Pure parsers for Jenkins' on-disk records: bytes and strings in, frozen records out."""

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
from parsers.records import JENKINS_RESULTS, BuildXml, LogFacts, ParseError, UnsafeXmlError
from parsers.xmlsafe import parse_xml

__all__ = [
    "JENKINS_RESULTS",
    "BuildXml",
    "LogFacts",
    "ParseError",
    "UnsafeXmlError",
    "build_dir_number",
    "encode_item_name",
    "expand_builds_dir",
    "is_ignored_name",
    "job_full_name",
    "legacy_build_dir_time",
    "parse_branch_name",
    "parse_build_xml",
    "parse_builds_dir_setting",
    "parse_display_name",
    "parse_log",
    "parse_next_build_number",
    "parse_xml",
    "strip_console_notes",
]
