"""The values Jenkins and its plugins put in the files: kinds, results, versions, tags, XML declarations.

Every writer of the fake spells these the same way, so a change to one format (a plugin upgrade, a new
declaration style) is made once and reaches the job configs, the build records and the command line.
"""

from __future__ import annotations

KINDS = ("freestyle", "pipeline", "matrix")
RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED")

JENKINS_VERSION = "2.528.2"
WORKFLOW_JOB = "workflow-job@1540.v295eccc9778f"
WORKFLOW_CPS = "workflow-cps@4150.ve20ca_b_a_a_2815"
GIT_PLUGIN = "git@5.8.1"
BRANCH_API = "branch-api@2.1280.v0d4e5b_b_460ef"
WF_MULTIBRANCH = "workflow-multibranch@803.v08103b_87c280"
GROOVY_LIB = "pipeline-groovy-lib@752.vdddedf804e72"

DECL_SINGLE = "<?xml version='1.1' encoding='UTF-8'?>\n"
DECL_DOUBLE = '<?xml version="1.1" encoding="UTF-8"?>\n'
DECL_LEGACY = "<?xml version='1.0' encoding='UTF-8'?>\n"

FOLDER_TAG = "com.cloudbees.hudson.plugins.folder.Folder"
MULTIBRANCH_TAG = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
JOB_TAGS = {"freestyle": "project", "pipeline": "flow-definition", "matrix": "matrix-project"}
BUILD_TAGS = {"freestyle": "build", "pipeline": "flow-build", "matrix": "matrix-build"}
WF_MB_PKG = "org.jenkinsci.plugins.workflow.multibranch"
FOLDER_PKG = "com.cloudbees.hudson.plugins.folder"
CPS = "org.jenkinsci.plugins.workflow.cps"
TIMEOUT_CAUSE = "hudson.plugins.build__timeout.impl.AbsoluteTimeOutStrategy_-TimeOutCauseOfInterruption"
DURABILITY = ("MAX_SURVIVABILITY", "SURVIVABLE_NONATOMIC", "PERFORMANCE_OPTIMIZED")
