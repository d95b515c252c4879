from __future__ import annotations

import pytest

from parsers import (
    BuildXml,
    ParseError,
    UnsafeXmlError,
    parse_branch_name,
    parse_build_xml,
    parse_builds_dir_setting,
    parse_display_name,
)
from tests.parsers.samples import (
    FREESTYLE,
    HOSTILE,
    LEGACY_WINDOWS_1252,
    MATRIX_PARENT_RUNNING,
    OLD_PIPELINE,
    RUNNING_PIPELINE,
)


def _build(children: str, root: str = "build") -> bytes:
    return f"<?xml version='1.1' encoding='UTF-8'?>\n<{root}>{children}</{root}>".encode()


def _with_causes(inner: str) -> bytes:
    return _build(f"<actions><hudson.model.CauseAction>{inner}</hudson.model.CauseAction></actions>")


def _bag(*causes: str) -> str:
    entries = "".join(f"<entry>{cause}<int>1</int></entry>" for cause in causes)
    return f'<causeBag class="linked-hash-map">{entries}</causeBag>'


def test_freestyle_record_fields() -> None:
    assert parse_build_xml(FREESTYLE) == BuildXml(
        root_tag="build",
        result="UNSTABLE",
        completed=None,
        number=None,
        legacy_id=None,
        start_time_ms=1700000000005,
        timestamp_ms=1700000000000,
        duration_ms=65432,
        display_name="release 1.2 [1m",
        description="nightly & manual",
        built_on="agent-7",
        causes=("Started by user admin",),
        commit="0123456789abcdef0123456789abcdef01234567",
        branch="main",
    )


@pytest.mark.parametrize(
    ("data", "result", "completed", "finished", "started_ms", "duration_ms"),
    [
        (FREESTYLE, "UNSTABLE", None, True, 1700000000005, 65432),
        (RUNNING_PIPELINE, None, False, False, 1770000000003, 0),
        (OLD_PIPELINE, "FAILURE", None, True, 1521734312842, 2241),
        (MATRIX_PARENT_RUNNING, None, None, False, 1359531807000, 0),
        (LEGACY_WINDOWS_1252, "ABORTED", None, True, None, 3253844),
        (
            _build("<result>SUCCESS</result><completed>true</completed>", "flow-build"),
            "SUCCESS",
            True,
            True,
            None,
            None,
        ),
        (
            _build("<result>SUCCESS</result><completed>false</completed>", "flow-build"),
            "SUCCESS",
            False,
            False,
            None,
            None,
        ),
        (_build("<completed>true</completed>", "flow-build"), None, True, False, None, None),
        (_build("<result>  NOT_BUILT \n</result>"), "NOT_BUILT", None, True, None, None),
        (_build("<result></result>"), None, None, False, None, None),
        (_build("<result/>"), None, None, False, None, None),
        (_build("<completed>maybe</completed><result>FAILURE</result>"), "FAILURE", None, True, None, None),
    ],
    ids=[
        "freestyle",
        "running-pipeline",
        "old-pipeline-no-completed",
        "matrix-parent-nested-results",
        "legacy-windows-1252",
        "completed-pipeline",
        "result-but-not-completed",
        "completed-without-result",
        "result-whitespace",
        "empty-result",
        "self-closing-result",
        "garbage-completed",
    ],
)
def test_state_comes_from_direct_children_only(
    data: bytes,
    result: str | None,
    completed: bool | None,
    finished: bool,
    started_ms: int | None,
    duration_ms: int | None,
) -> None:
    record = parse_build_xml(data)
    assert record.result == result
    assert record.completed is completed
    assert record.finished is finished
    assert record.started_ms == started_ms
    assert record.duration_ms == duration_ms


@pytest.mark.parametrize(
    ("children", "start", "timestamp", "started"),
    [
        ("<startTime>5</startTime><timestamp>3</timestamp>", 5, 3, 5),
        ("<startTime>5</startTime> <!-- comment --><timestamp>3</timestamp>", 5, 3, 5),
        ("<startTime>12<!-- split -->34</startTime>", 1234, None, 1234),
        ("<startTime>0</startTime><timestamp>3</timestamp>", None, 3, 3),
        ("<startTime>-7</startTime><timestamp>3</timestamp>", None, 3, 3),
        ("<startTime>soon</startTime><timestamp>3</timestamp>", None, 3, 3),
        ("<startTime>1.5</startTime>", None, None, None),
        ("<startTime></startTime><timestamp>0</timestamp>", None, None, None),
        ("<timestamp>1272423360000</timestamp>", None, 1272423360000, 1272423360000),
        ("<number>2</number>", None, None, None),
        ("<actions><x><startTime>9</startTime><timestamp>9</timestamp></x></actions>", None, None, None),
    ],
)
def test_start_times(children: str, start: int | None, timestamp: int | None, started: int | None) -> None:
    record = parse_build_xml(_build(children))
    assert (record.start_time_ms, record.timestamp_ms, record.started_ms) == (start, timestamp, started)


@pytest.mark.parametrize(
    ("children", "field", "expected"),
    [
        ("<number>2</number>", "number", 2),
        ("<number>two</number>", "number", None),
        ("<id>2013-06-05_14-30-12</id>", "legacy_id", "2013-06-05_14-30-12"),
        ("<duration>x</duration>", "duration_ms", None),
        ("<duration> 178 </duration>", "duration_ms", 178),
        ("<builtOn></builtOn>", "built_on", None),
        ("<builtOn>  </builtOn>", "built_on", None),
        ("<builtOn>slave1</builtOn>", "built_on", "slave1"),
        ("<displayName>#42 hotfix</displayName>", "display_name", "#42 hotfix"),
        ("<description>&lt;b&gt;bold&lt;/b&gt;</description>", "description", "<b>bold</b>"),
        ("<description>&#x1b;[31mred&#27;[0m</description>", "description", "[31mred[0m"),
        ("<actions><a><displayName>nested</displayName></a></actions>", "display_name", None),
    ],
)
def test_simple_fields(children: str, field: str, expected: object) -> None:
    assert getattr(parse_build_xml(_build(children)), field) == expected


@pytest.mark.parametrize("root", ["build", "flow-build", "matrix-run", "hudson.maven.MavenModuleSetBuild"])
def test_any_root_tag(root: str) -> None:
    record = parse_build_xml(_build("<result>SUCCESS</result>", root))
    assert (record.root_tag, record.result) == (root, "SUCCESS")


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        (
            _bag("<hudson.model.Cause_-UserIdCause><userId>admin</userId></hudson.model.Cause_-UserIdCause>"),
            ("Started by user admin",),
        ),
        (
            _bag(
                "<hudson.model.Cause_-UserIdCause><userId>jd</userId><userName>Jane Doe</userName>"
                "</hudson.model.Cause_-UserIdCause>"
            ),
            ("Started by user Jane Doe",),
        ),
        ("<causes><hudson.model.Cause_-UserIdCause/></causes>", ("Started by user",)),
        (
            "<causes><hudson.model.Cause_-UserCause><authenticationName>auser</authenticationName>"
            "</hudson.model.Cause_-UserCause></causes>",
            ("Started by user auser",),
        ),
        (
            _bag(
                "<hudson.model.Cause_-UpstreamCause><upstreamProject>folder/up</upstreamProject>"
                "<upstreamUrl>job/folder/job/up/</upstreamUrl><upstreamBuild>7</upstreamBuild>"
                "<upstreamCauses><hudson.model.Cause_-UserIdCause><userId>root</userId>"
                "</hudson.model.Cause_-UserIdCause></upstreamCauses></hudson.model.Cause_-UpstreamCause>"
            ),
            ('Started by upstream project "folder/up" build number 7',),
        ),
        (_bag("<hudson.triggers.SCMTrigger_-SCMTriggerCause/>"), ("Started by an SCM change",)),
        (_bag("<hudson.triggers.TimerTrigger_-TimerTriggerCause/>"), ("Started by timer",)),
        (
            _bag(
                "<hudson.model.Cause_-RemoteCause><addr>10.0.0.1</addr><note>ci</note></hudson.model.Cause_-RemoteCause>"
            ),
            ("Started by remote host 10.0.0.1",),
        ),
        (
            "<causes><jenkins.branch.BranchIndexingCause plugin='branch-api@2.0'/></causes>",
            ("Branch indexing",),
        ),
        (
            _bag(
                "<jenkins.branch.BranchEventCause><description>push</description></jenkins.branch.BranchEventCause>"
            ),
            ("Branch event",),
        ),
        (
            _bag(
                "<com.cloudbees.jenkins.GitHubPushCause><pushedBy>me</pushedBy></com.cloudbees.jenkins.GitHubPushCause>"
            ),
            ("GitHubPushCause",),
        ),
        (_bag("<org.example.Outer_-My__Cause/>"), ("My_Cause",)),
        (
            _bag(
                "<hudson.triggers.TimerTrigger_-TimerTriggerCause/>",
                "<hudson.triggers.SCMTrigger_-SCMTriggerCause/>",
                "<hudson.triggers.TimerTrigger_-TimerTriggerCause/>",
            ),
            ("Started by timer", "Started by an SCM change"),
        ),
        ("<causeBag/>", ()),
        ("", ()),
    ],
    ids=[
        "user-id",
        "user-name-preferred",
        "user-id-absent-old-form",
        "legacy-user-cause",
        "upstream-nested-skipped",
        "scm",
        "timer",
        "remote",
        "branch-indexing",
        "branch-event",
        "unknown-plugin-cause",
        "xstream-escaped-name",
        "order-kept-duplicates-dropped",
        "empty-bag",
        "no-causes",
    ],
)
def test_causes(inner: str, expected: tuple[str, ...]) -> None:
    assert parse_build_xml(_with_causes(inner)).causes == expected


def test_cause_text_is_capped() -> None:
    user = "u" * 500
    inner = _bag(
        f"<hudson.model.Cause_-UserIdCause><userId>{user}</userId></hudson.model.Cause_-UserIdCause>"
    )
    (cause,) = parse_build_xml(_with_causes(inner)).causes
    assert len(cause) == 200
    assert cause.startswith("Started by user uuu")


def test_causes_outside_cause_action_are_ignored() -> None:
    data = _build(
        "<actions><jenkins.model.InterruptedBuildAction><causes>"
        "<jenkins.model.CauseOfInterruption_-UserInterruption><user>x</user>"
        "</jenkins.model.CauseOfInterruption_-UserInterruption></causes></jenkins.model.InterruptedBuildAction>"
        "</actions>"
    )
    assert parse_build_xml(data).causes == ()


_SHA_A = "a" * 40
_SHA_B = "b" * 40
_SCM_ACTION = (
    "<jenkins.scm.api.SCMRevisionAction><revision class='x'><head><name>feature/x</name></head>"
    f"<hash>{_SHA_A}</hash></revision></jenkins.scm.api.SCMRevisionAction>"
)


def _git(branch: str, sha: str) -> str:
    return (
        "<hudson.plugins.git.util.BuildData><buildsByBranchName><entry>"
        f"<string>{branch}</string><hudson.plugins.git.util.Build><marked><sha1>{sha}</sha1>"
        "<branches><hudson.plugins.git.Branch><sha1 reference='../../../sha1'/>"
        f"<name>{branch}</name></hudson.plugins.git.Branch></branches></marked>"
        "<revision reference='../marked'/></hudson.plugins.git.util.Build></entry></buildsByBranchName>"
        "<lastBuild reference='../buildsByBranchName/entry/hudson.plugins.git.util.Build'/>"
        "</hudson.plugins.git.util.BuildData>"
    )


@pytest.mark.parametrize(
    ("actions", "commit", "branch"),
    [
        (_SCM_ACTION, _SHA_A, "feature/x"),
        (_git("master", _SHA_B) + _SCM_ACTION, _SHA_A, "feature/x"),
        (_git("refs/remotes/origin/release/1.x", _SHA_B), _SHA_B, "release/1.x"),
        (_git("origin/main", _SHA_B), _SHA_B, "main"),
        (_git("main", _SHA_B) + _git("tools", _SHA_A), _SHA_B, "main"),
        (
            "<hudson.plugins.git.util.BuildData><buildsByBranchName/></hudson.plugins.git.util.BuildData>",
            None,
            None,
        ),
        ("<hudson.plugins.git.util.BuildData/>" + _git("dev", _SHA_A), _SHA_A, "dev"),
        (
            "<jenkins.scm.api.SCMRevisionAction><revision><head><name>pr-1</name></head></revision>"
            "</jenkins.scm.api.SCMRevisionAction>" + _git("origin/pr-1", _SHA_B),
            _SHA_B,
            "pr-1",
        ),
        ("", None, None),
    ],
    ids=[
        "scm-revision",
        "scm-revision-wins",
        "git-refs-remotes",
        "git-origin",
        "first-build-data",
        "empty-build-data",
        "skips-empty-build-data",
        "hashless-revision-falls-back",
        "none",
    ],
)
def test_commit_and_branch(actions: str, commit: str | None, branch: str | None) -> None:
    record = parse_build_xml(_build(f"<actions>{actions}</actions>"))
    assert (record.commit, record.branch) == (commit, branch)


def test_nested_scm_actions_are_not_actions() -> None:
    data = _build(f"<execution>{_SCM_ACTION}</execution>")
    assert parse_build_xml(data).commit is None


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_build_xml(name: str) -> None:
    with pytest.raises(UnsafeXmlError):
        parse_build_xml(HOSTILE[name])


@pytest.mark.parametrize(
    "record", [FREESTYLE, RUNNING_PIPELINE, LEGACY_WINDOWS_1252], ids=["fs", "wf", "1252"]
)
def test_every_prefix_parses_or_raises_parse_error(record: bytes) -> None:
    failures = 0
    for size in range(len(record) + 1):
        try:
            parsed = parse_build_xml(record[:size])
        except ParseError:
            failures += 1
        else:
            assert parsed == parse_build_xml(record)
    # Only the complete record (optionally minus trailing whitespace) is readable.
    assert failures >= len(record) - 2


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<hudson><buildsDir>${ITEM_ROOTDIR}/builds</buildsDir></hudson>", "${ITEM_ROOTDIR}/builds"),
        (
            b"<?xml version='1.1' encoding='UTF-8'?>\n<hudson>\n"
            b"  <buildsDir> ${JENKINS_HOME}/b/${ITEM_FULL_NAME} </buildsDir>\n</hudson>",
            "${JENKINS_HOME}/b/${ITEM_FULL_NAME}",
        ),
        (b"<hudson><buildsDir/></hudson>", None),
        (b"<hudson><version>2.440</version></hudson>", None),
        (b"<hudson><views><buildsDir>nested</buildsDir></views></hudson>", None),
    ],
)
def test_builds_dir_setting(data: bytes, expected: str | None) -> None:
    assert parse_builds_dir_setting(data) == expected


_BRANCH_PROP = "org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            f"<flow-definition><properties><{_BRANCH_PROP} plugin='workflow-multibranch@2.16'><branch>"
            "<sourceId>1</sourceId><head><name>feature/foo bar</name></head>"
            f"<scm><branches><name>*/x</name></branches></scm></branch></{_BRANCH_PROP}></properties></flow-definition>",
            "feature/foo bar",
        ),
        (
            "<flow-definition><properties><other/>"
            f"<{_BRANCH_PROP}><branch><head><name>dev</name></head></branch></{_BRANCH_PROP}>"
            "</properties></flow-definition>",
            "dev",
        ),
        ("<flow-definition><properties/></flow-definition>", None),
        ("<project/>", None),
        (
            f"<flow-definition><{_BRANCH_PROP}><branch><head><name>x</name></head></branch></{_BRANCH_PROP}></flow-definition>",
            None,
        ),
        (
            f"<flow-definition><properties><{_BRANCH_PROP}><branch><head><name/></head></branch></{_BRANCH_PROP}></properties></flow-definition>",
            None,
        ),
        (  # branch-api's own harness: another property class, the branch in <b>
            "<project><properties><integration.harness.BasicBranchProperty><b><sourceId>x</sourceId>"
            "<head class='jenkins.scm.impl.mock.MockSCMHead'><name>feature: welcome</name></head></b>"
            "</integration.harness.BasicBranchProperty></properties></project>",
            "feature: welcome",
        ),
        (  # a head/name under a property that is not a branch property is no branch name
            "<project><properties><hudson.model.ParametersDefinitionProperty><p><head><name>x</name></head>"
            "</p></hudson.model.ParametersDefinitionProperty></properties></project>",
            None,
        ),
    ],
    ids=[
        "plain",
        "after-other-property",
        "no-property",
        "no-properties",
        "not-under-properties",
        "empty-name",
        "other-branch-property",
        "not-a-branch-property",
    ],
)
def test_branch_name(data: str, expected: str | None) -> None:
    assert parse_branch_name(data.encode()) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"<com.cloudbees.hudson.plugins.folder.Folder><displayName>Team A</displayName>"
            b"</com.cloudbees.hudson.plugins.folder.Folder>",
            "Team A",
        ),
        (b"<project><displayName></displayName></project>", None),
        (b"<project><description>x</description></project>", None),
        (b"<project><properties><p><displayName>nested</displayName></p></properties></project>", None),
        (
            "<?xml version='1.1'?><project><displayName>\u00c9quipe</displayName></project>".encode(),
            "\u00c9quipe",
        ),
    ],
)
def test_display_name(data: bytes, expected: str | None) -> None:
    assert parse_display_name(data) == expected


@pytest.mark.parametrize("parser", [parse_builds_dir_setting, parse_branch_name, parse_display_name])
@pytest.mark.parametrize("data", [b"", b"<hudson><buildsDir>x", HOSTILE["billion-laughs"]])
def test_config_parsers_raise_parse_error(parser: object, data: bytes) -> None:
    assert callable(parser)
    with pytest.raises(ParseError):
        parser(data)


def _params(inner: str, wrapper: str = "hudson.model.ParametersAction") -> bytes:
    return _build(f"<actions><{wrapper}><parameters>{inner}</parameters></{wrapper}></actions>")


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        (
            "<hudson.model.StringParameterValue><name>TARGET_ENV</name><description/>"
            "<value>staging</value></hudson.model.StringParameterValue>"
            "<hudson.model.BooleanParameterValue><name>DRY</name><value>false</value>"
            "</hudson.model.BooleanParameterValue>"
            "<hudson.model.TextParameterValue><name>NOTES</name><value> two\nlines </value>"
            "</hudson.model.TextParameterValue>",
            (("TARGET_ENV", "staging"), ("DRY", "false"), ("NOTES", "two\nlines")),
        ),
        (  # a secret is never read; a file parameter has no value
            "<hudson.model.PasswordParameterValue><name>PW</name><value>{AQAAABAAAA}</value>"
            "</hudson.model.PasswordParameterValue>"
            "<hudson.model.FileParameterValue><name>f.txt</name><location>f.txt</location>"
            "</hudson.model.FileParameterValue>",
            (),
        ),
        (  # the first of two values with one name, as Jenkins' getParameter answers
            "<hudson.model.StringParameterValue><name>A</name><value>1</value></hudson.model.StringParameterValue>"
            "<hudson.model.StringParameterValue><name>A</name><value>2</value></hudson.model.StringParameterValue>",
            (("A", "1"),),
        ),
        (
            "<hudson.model.StringParameterValue><value>nameless</value></hudson.model.StringParameterValue>",
            (),
        ),
        ("", ()),
    ],
    ids=["string-boolean-text", "password-and-file", "first-of-two", "nameless", "none"],
)
def test_parameters(inner: str, expected: tuple[tuple[str, str], ...]) -> None:
    assert parse_build_xml(_params(inner)).parameters == expected


def test_parameters_outside_their_action_are_not_the_runs() -> None:
    value = "<hudson.model.StringParameterValue><name>X</name><value>y</value>"
    value += "</hudson.model.StringParameterValue>"
    assert parse_build_xml(_params(value, "some.OtherAction")).parameters == ()
    nested = _build(
        f"<execution><actions><hudson.model.ParametersAction><parameters>{value}</parameters>"
        "</hudson.model.ParametersAction></actions></execution>"
    )
    assert parse_build_xml(nested).parameters == ()


def test_a_huge_parameter_is_capped() -> None:
    value = "v" * 100_000
    record = _params(
        f"<hudson.model.StringParameterValue><name>X</name><value>{value}</value>"
        "</hudson.model.StringParameterValue>"
    )
    ((_, kept),) = parse_build_xml(record).parameters
    assert len(kept) == 1000
