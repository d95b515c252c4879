"""The entries of build.xml's ``<actions>``: causes, git build data, parameters, interruption.

They are XStream fragments a run adds to its record depending on how it started and ended; kept
apart from the run's lifecycle so that the lifecycle reads as the order of writes and these as the
formats.
"""

from __future__ import annotations

from tools.fake_jenkins._formats import GIT_PLUGIN, TIMEOUT_CAUSE
from tools.fake_jenkins._xml_text import _indent, _x


def _cause_action(cause_xml: str) -> str:
    return (
        "<hudson.model.CauseAction>\n"
        '  <causeBag class="linked-hash-map">\n'
        "    <entry>\n" + _indent(cause_xml, 6) + "\n      <int>1</int>\n"
        "    </entry>\n"
        "  </causeBag>\n"
        "</hudson.model.CauseAction>"
    )


def _git_build_data(sha1: str, branch: str, number: int) -> str:
    return (
        f'<hudson.plugins.git.util.BuildData plugin="{GIT_PLUGIN}">\n'
        "  <buildsByBranchName>\n"
        "    <entry>\n"
        f"      <string>{_x(branch)}</string>\n"
        "      <hudson.plugins.git.util.Build>\n"
        '        <marked plugin="git-client@6.4.0">\n'
        f"          <sha1>{_x(sha1)}</sha1>\n"
        '          <branches class="singleton-set">\n'
        "            <hudson.plugins.git.Branch>\n"
        '              <sha1 reference="../../../sha1"/>\n'
        f"              <name>{_x(branch)}</name>\n"
        "            </hudson.plugins.git.Branch>\n"
        "          </branches>\n"
        "        </marked>\n"
        '        <revision reference="../marked"/>\n'
        f"        <hudsonBuildNumber>{number}</hudsonBuildNumber>\n"
        "      </hudson.plugins.git.util.Build>\n"
        "    </entry>\n"
        "  </buildsByBranchName>\n"
        '  <lastBuild reference="../buildsByBranchName/entry/hudson.plugins.git.util.Build"/>\n'
        "  <remoteUrls>\n"
        "    <string>https://git.example.com/acme/app.git</string>\n"
        "  </remoteUrls>\n"
        "</hudson.plugins.git.util.BuildData>"
    )


def _parameters_action(parameters: dict[str, str]) -> str:
    """ParametersAction as Jenkins saves it: one StringParameterValue per parameter (a choice
    parameter's value is saved as a string too)."""
    values = "".join(
        "    <hudson.model.StringParameterValue>\n"
        f"      <name>{_x(name)}</name>\n"
        "      <description></description>\n"
        f"      <value>{_x(value)}</value>\n"
        "    </hudson.model.StringParameterValue>\n"
        for name, value in parameters.items()
    )
    names = "".join(f"    <string>{_x(name)}</string>\n" for name in parameters)
    return (
        "<hudson.model.ParametersAction>\n"
        '  <safeParameters class="sorted-set"/>\n'
        f"  <parameters>\n{values}  </parameters>\n"
        f"  <parameterDefinitionNames>\n{names}  </parameterDefinitionNames>\n"
        "</hudson.model.ParametersAction>"
    )


def _interrupted_action(timed_out: bool) -> str:
    if timed_out:
        cause = (
            f'<{TIMEOUT_CAUSE} plugin="build-timeout@1.38">\n'
            "  <timeoutMinutes>3</timeoutMinutes>\n"
            f"</{TIMEOUT_CAUSE}>"
        )
    else:
        cause = (
            "<jenkins.model.CauseOfInterruption_-UserInterruption>\n"
            "  <user>admin</user>\n"
            "</jenkins.model.CauseOfInterruption_-UserInterruption>"
        )
    return (
        "<jenkins.model.InterruptedBuildAction>\n"
        '  <causes class="com.google.common.collect.ImmutableList">\n' + _indent(cause, 4) + "\n  </causes>\n"
        "</jenkins.model.InterruptedBuildAction>"
    )
