"""The config.xml of folders, jobs, multibranch projects and branch jobs, as Jenkins saves them.

A reader tells items apart by the root element of their config.xml (a folder to descend, a
multibranch project whose jobs are under ``branches/``, a job of one kind or another), so the fake
writes real configs, and the home reads them back to open existing jobs.
"""

from __future__ import annotations

from tools.fake_jenkins._formats import (
    BRANCH_API,
    CPS,
    DECL_SINGLE,
    FOLDER_PKG,
    FOLDER_TAG,
    JOB_TAGS,
    MULTIBRANCH_TAG,
    WF_MB_PKG,
    WF_MULTIBRANCH,
    WORKFLOW_CPS,
    WORKFLOW_JOB,
)
from tools.fake_jenkins._heads import Head
from tools.fake_jenkins._xml_text import _x


def _folder_config(name: str) -> str:
    return (
        DECL_SINGLE + f'<{FOLDER_TAG} plugin="cloudbees-folder@6.1012.v79a_86a_1ea_c1f">\n'
        "  <actions/>\n"
        "  <description></description>\n"
        "  <properties/>\n"
        '  <folderViews class="com.cloudbees.hudson.plugins.folder.views.DefaultFolderViewHolder">\n'
        "    <views>\n"
        "      <hudson.model.AllView>\n"
        '        <owner class="com.cloudbees.hudson.plugins.folder.Folder" reference="../../../.."/>\n'
        "        <name>All</name>\n"
        "        <filterExecutors>false</filterExecutors>\n"
        "        <filterQueue>false</filterQueue>\n"
        '        <properties class="hudson.model.View$PropertyList"/>\n'
        "      </hudson.model.AllView>\n"
        "    </views>\n"
        "  </folderViews>\n"
        "  <healthMetrics/>\n"
        '  <icon class="com.cloudbees.hudson.plugins.folder.icons.StockFolderIcon"/>\n'
        f"</{FOLDER_TAG}>"
    )


def _job_config(kind: str, axes: dict[str, list[str]] | None, display_name: str | None) -> str:
    tag = JOB_TAGS[kind]
    dn = f"  <displayName>{_x(display_name)}</displayName>\n" if display_name else ""
    if kind == "pipeline":
        return (
            DECL_SINGLE + f'<{tag} plugin="{WORKFLOW_JOB}">\n'
            "  <actions/>\n"
            "  <description></description>\n" + dn + "  <keepDependencies>false</keepDependencies>\n"
            "  <properties/>\n"
            f'  <definition class="{CPS}.CpsFlowDefinition" plugin="{WORKFLOW_CPS}">\n'
            "    <script>pipeline {\n  agent any\n  stages {\n    stage(&apos;Build&apos;) {\n"
            "      steps { sh &apos;make&apos; }\n    }\n  }\n}</script>\n"
            "    <sandbox>true</sandbox>\n"
            "  </definition>\n"
            "  <triggers/>\n"
            "  <disabled>false</disabled>\n"
            f"</{tag}>"
        )
    axes_xml = ""
    if kind == "matrix":
        axes_xml = "  <axes>\n"
        for name, values in (axes or {}).items():
            axes_xml += "    <hudson.matrix.TextAxis>\n"
            axes_xml += f"      <name>{_x(name)}</name>\n      <values>\n"
            axes_xml += "".join(f"        <string>{_x(v)}</string>\n" for v in values)
            axes_xml += "      </values>\n    </hudson.matrix.TextAxis>\n"
        axes_xml += "  </axes>\n"
    plugin = ' plugin="matrix-project@849.v0cd64ed7e531"' if kind == "matrix" else ""
    return (
        DECL_SINGLE + f"<{tag}{plugin}>\n"
        "  <actions/>\n"
        "  <description></description>\n" + dn + "  <keepDependencies>false</keepDependencies>\n"
        "  <properties/>\n"
        '  <scm class="hudson.scm.NullSCM"/>\n'
        "  <canRoam>true</canRoam>\n"
        "  <disabled>false</disabled>\n"
        "  <blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>\n"
        "  <blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding>\n"
        "  <triggers/>\n"
        "  <concurrentBuild>false</concurrentBuild>\n" + axes_xml + "  <builders>\n"
        "    <hudson.tasks.Shell>\n"
        "      <command>make</command>\n"
        "    </hudson.tasks.Shell>\n"
        "  </builders>\n"
        "  <publishers/>\n"
        "  <buildWrappers/>\n"
        f"</{tag}>"
    )


def _multibranch_config() -> str:
    return (
        DECL_SINGLE + f'<{MULTIBRANCH_TAG} plugin="{WF_MULTIBRANCH}">\n'
        "  <actions/>\n"
        "  <description></description>\n"
        "  <properties/>\n"
        f'  <folderViews class="jenkins.branch.MultiBranchProjectViewHolder" plugin="{BRANCH_API}">\n'
        f'    <owner class="{MULTIBRANCH_TAG}" reference="../.."/>\n'
        "  </folderViews>\n"
        f'  <orphanedItemStrategy class="{FOLDER_PKG}.computed.DefaultOrphanedItemStrategy">\n'
        "    <pruneDeadBranches>true</pruneDeadBranches>\n"
        "    <daysToKeep>-1</daysToKeep>\n"
        "    <numToKeep>-1</numToKeep>\n"
        "  </orphanedItemStrategy>\n"
        f'  <sources class="jenkins.branch.MultiBranchProject$BranchSourceList" plugin="{BRANCH_API}">\n'
        "    <data>\n"
        "      <jenkins.branch.BranchSource>\n"
        '        <source class="jenkins.plugins.git.GitSCMSource" plugin="git@5.8.1">\n'
        "          <id>5b0c1c2e-8d47-4c1f-9d55-6f0e5d3c2a10</id>\n"
        "          <remote>https://git.example.com/acme/shop.git</remote>\n"
        "          <credentialsId></credentialsId>\n"
        "        </source>\n"
        "      </jenkins.branch.BranchSource>\n"
        "    </data>\n"
        f'    <owner class="{MULTIBRANCH_TAG}" reference="../.."/>\n'
        "  </sources>\n"
        '  <factory class="org.jenkinsci.plugins.workflow.multibranch.WorkflowBranchProjectFactory">\n'
        "    <scriptPath>Jenkinsfile</scriptPath>\n"
        "  </factory>\n"
        f"</{MULTIBRANCH_TAG}>"
    )


def _branch_config(branch: str, head: Head | None = None) -> str:
    """A branch job's config; ``head`` None: a plain git branch source's branch, as before."""
    head_xml = (
        '        <head class="jenkins.plugins.git.GitBranchSCMHead" plugin="git@5.8.1">\n'
        f"          <name>{_x(branch)}</name>\n"
        "        </head>\n"
        if head is None
        else head.head_xml(branch)
    )
    actions_xml = "        <actions/>\n" if head is None else head.actions_xml()
    return (
        DECL_SINGLE + f'<flow-definition plugin="{WORKFLOW_JOB}">\n'
        "  <actions/>\n"
        "  <description></description>\n"
        f"  <displayName>{_x(branch)}</displayName>\n"
        "  <keepDependencies>false</keepDependencies>\n"
        "  <properties>\n"
        f'    <org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty plugin="{WF_MULTIBRANCH}">\n'
        f'      <branch plugin="{BRANCH_API}">\n'
        "        <sourceId>5b0c1c2e-8d47-4c1f-9d55-6f0e5d3c2a10</sourceId>\n"
        f"{head_xml}"
        '        <scm class="hudson.plugins.git.GitSCM" plugin="git@5.8.1">\n'
        "          <configVersion>2</configVersion>\n"
        "          <userRemoteConfigs>\n"
        "            <hudson.plugins.git.UserRemoteConfig>\n"
        "              <name>origin</name>\n"
        f"              <refspec>+refs/heads/{_x(branch)}:refs/remotes/origin/{_x(branch)}</refspec>\n"
        "              <url>https://git.example.com/acme/shop.git</url>\n"
        "            </hudson.plugins.git.UserRemoteConfig>\n"
        "          </userRemoteConfigs>\n"
        '          <branches class="singleton-list">\n'
        "            <hudson.plugins.git.BranchSpec>\n"
        f"              <name>{_x(branch)}</name>\n"
        "            </hudson.plugins.git.BranchSpec>\n"
        "          </branches>\n"
        "        </scm>\n"
        "        <properties/>\n"
        f"{actions_xml}"
        "      </branch>\n"
        "    </org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty>\n"
        "  </properties>\n"
        f'  <definition class="{WF_MB_PKG}.SCMBinder" plugin="{WF_MULTIBRANCH}">\n'
        "    <scriptPath>Jenkinsfile</scriptPath>\n"
        "  </definition>\n"
        "  <triggers/>\n"
        "  <disabled>false</disabled>\n"
        "</flow-definition>"
    )
