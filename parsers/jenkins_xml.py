"""Readers for Jenkins' XStream files (build.xml, job and global config.xml).

Only direct children of the root are trusted for build facts: a running Pipeline carries a nested
<execution><result>SUCCESS</result> and matrix parents embed their children's results, and either
would report a build wrongly if searched for anywhere in the tree.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from parsers.branch_head import branch_element
from parsers.records import BuildXml
from parsers.xmlsafe import parse_xml

_INT = re.compile(r"-?[0-9]+")
_MAX_CAUSE = 200
_CAUSE_ACTION = "hudson.model.CauseAction"
_SCM_REVISION_ACTION = "jenkins.scm.api.SCMRevisionAction"
_GIT_BUILD_DATA = "hudson.plugins.git.util.BuildData"
_PARAMETERS_ACTION = "hudson.model.ParametersAction"
_MAX_PARAMETERS = 200
_MAX_PARAMETER = 1000
_REMOTE_BRANCH_PREFIXES = ("refs/remotes/origin/", "origin/")


def _text(el: ET.Element | None) -> str | None:
    # itertext() also joins text split by an XML comment inside the element.
    if el is None:
        return None
    text = "".join(el.itertext()).strip()
    return text or None


def _int(el: ET.Element | None) -> int | None:
    text = _text(el)
    if text is None or not _INT.fullmatch(text):
        return None
    return int(text)


def _positive_ms(el: ET.Element | None) -> int | None:
    # Jenkins uses 0 for "unknown" times; a negative epoch is just as meaningless.
    value = _int(el)
    return value if value is not None and value > 0 else None


def _bool(el: ET.Element | None) -> bool | None:
    text = _text(el)
    if text is None:
        return None
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return None


def _short_class_name(tag: str) -> str:
    # XStream writes nested classes as Outer_-Inner and escapes "_" as "__".
    name = tag.rsplit(".", 1)[-1]
    name = name.rsplit("_-", 1)[-1]
    return name.replace("__", "_")


def _cause_text(cause: ET.Element) -> str:
    """Render a cause the way Jenkins prints it at the top of the console log."""
    name = _short_class_name(cause.tag)
    if name == "UserIdCause":
        user = _text(cause.find("userName")) or _text(cause.find("userId"))
        text = f"Started by user {user}" if user else "Started by user"
    elif name == "UserCause":
        user = _text(cause.find("authenticationName"))
        text = f"Started by user {user}" if user else "Started by user"
    elif name == "UpstreamCause":
        project = _text(cause.find("upstreamProject")) or ""
        build = _text(cause.find("upstreamBuild")) or ""
        text = f'Started by upstream project "{project}" build number {build}'.rstrip()
    elif name == "SCMTriggerCause":
        text = "Started by an SCM change"
    elif name == "TimerTriggerCause":
        text = "Started by timer"
    elif name == "RemoteCause":
        addr = _text(cause.find("addr"))
        text = f"Started by remote host {addr}" if addr else "Started by remote host"
    elif name == "BranchIndexingCause":
        text = "Branch indexing"
    elif name == "BranchEventCause":
        text = "Branch event"
    else:
        text = name
    return text[:_MAX_CAUSE]


def _cause_elements(action: ET.Element) -> list[ET.Element]:
    found: list[ET.Element] = []
    bag = action.find("causeBag")
    if bag is not None:
        # New form: <entry><SomeCause/><int>count</int></entry>.
        for entry in bag.findall("entry"):
            found.extend(child for child in entry if child.tag != "int")
    old = action.find("causes")
    if old is not None:
        found.extend(old)
    return found


def _causes(actions: ET.Element | None) -> tuple[str, ...]:
    if actions is None:
        return ()
    texts: dict[str, None] = {}
    for action in actions.findall(_CAUSE_ACTION):
        for cause in _cause_elements(action):
            texts.setdefault(_cause_text(cause), None)
    return tuple(texts)


def _strip_remote_prefix(branch: str) -> str:
    for prefix in _REMOTE_BRANCH_PREFIXES:
        if branch.startswith(prefix):
            return branch[len(prefix) :]
    return branch


def _git_build_data(actions: ET.Element) -> tuple[str | None, str | None]:
    """First sha1 recorded by the git plugin, with the branch it was built for."""
    for data in actions.findall(_GIT_BUILD_DATA):
        by_branch = data.find("buildsByBranchName")
        if by_branch is None:
            continue
        for entry in by_branch.findall("entry"):
            # Repeated objects are XStream references without text; skip to a real sha1.
            sha = next((t for t in map(_text, entry.iter("sha1")) if t), None)
            if sha is not None:
                name = _text(entry.find("string"))
                return sha, _strip_remote_prefix(name) if name else None
    return None, None


def _scm(actions: ET.Element | None) -> tuple[str | None, str | None]:
    if actions is None:
        return None, None
    commit: str | None = None
    branch: str | None = None
    for action in actions.findall(_SCM_REVISION_ACTION):
        commit = commit or _text(action.find("revision/hash"))
        branch = branch or _text(action.find("revision/head/name"))
    if commit is None or branch is None:
        git_commit, git_branch = _git_build_data(actions)
        commit = commit or git_commit
        branch = branch or git_branch
    return commit, branch


def parse_build_xml(data: bytes) -> BuildXml:
    """Read a build record of any type; the root tag is reported but never relied upon."""
    root = parse_xml(data)
    actions = root.find("actions")
    commit, branch = _scm(actions)
    return BuildXml(
        root_tag=root.tag,
        result=_text(root.find("result")),
        completed=_bool(root.find("completed")),
        number=_int(root.find("number")),
        legacy_id=_text(root.find("id")),
        start_time_ms=_positive_ms(root.find("startTime")),
        timestamp_ms=_positive_ms(root.find("timestamp")),
        duration_ms=_int(root.find("duration")),
        display_name=_text(root.find("displayName")),
        description=_text(root.find("description")),
        built_on=_text(root.find("builtOn")),
        causes=_causes(actions),
        commit=commit,
        branch=branch,
        parameters=_parameters(actions),
    )


def _parameters(actions: ET.Element | None) -> tuple[tuple[str, str], ...]:
    """``ParametersAction``'s values, as the run was started with them.

    String, choice (kept as a string), boolean and text values are read; a password's value (a
    secret, stored encrypted) and a file parameter (no value) are not. A name seen twice keeps its
    first value, as Jenkins' own ``getParameter`` does.
    """
    if actions is None:
        return ()
    out: dict[str, str] = {}
    for action in actions.findall(_PARAMETERS_ACTION):
        for param in action.findall("parameters/*"):
            if "Password" in param.tag or len(out) >= _MAX_PARAMETERS:
                continue
            name, value = _text(param.find("name")), param.find("value")
            if name is None or value is None:
                continue
            out.setdefault(name[:_MAX_PARAMETER], "".join(value.itertext()).strip()[:_MAX_PARAMETER])
    return tuple(out.items())


def parse_builds_dir_setting(global_config_xml: bytes) -> str | None:
    """The raw (unexpanded) build record root from $JENKINS_HOME/config.xml."""
    return _text(parse_xml(global_config_xml).find("buildsDir"))


def parse_branch_name(job_config_xml: bytes) -> str | None:
    """The unmangled branch name, since multibranch directory names may be encoded: the branch
    property's ``<head><name>`` (``parsers.branch_head`` finds the property and reads the rest)."""
    branch = branch_element(parse_xml(job_config_xml))
    return None if branch is None else _text(branch.find("head/name"))


def parse_display_name(job_config_xml: bytes) -> str | None:
    """A human label for a job or folder, shown instead of its directory name when set."""
    return _text(parse_xml(job_config_xml).find("displayName"))
