"""Write Jenkins build records to disk exactly the way Jenkins does.

A test/benchmark helper that needs nothing beyond the Python stdlib, so it runs from a plain
checkout. It reproduces the on-disk *mechanics* a file watcher sees:

* ``nextBuildNumber`` is rewritten atomically (temp file + rename) when a number is assigned;
* ``builds/<N>/`` appears, then ``log`` is created with the cause line and appended unbuffered;
* freestyle and matrix builds have **no** ``build.xml`` while running; Pipeline builds write one
  immediately (no top-level ``<result>``, a nested ``execution/result``, ``<completed>false``),
  atomically (MAX_SURVIVABILITY) or truncated in place (PERFORMANCE_OPTIMIZED);
* on completion: ``builds/permalinks`` (atomic), then ``Finished: RESULT`` in the log, then the
  final ``build.xml`` through ``build.xml-atomic<digits>tmp`` + rename;
* ``Run.delete()`` renames ``builds/<N>`` to ``builds/.<N>`` before deleting it.

Use from Python::

    home = JenkinsHome(tmp_path)
    run = home.job("team/api", "pipeline").start()
    run.log("building")
    run.finish("SUCCESS", duration_ms=1200)

Command line (from the repository root; ``python -m tools.fake_jenkins`` works too)::

    python tools/fake_jenkins --home examples/jenkins-home build hello --duration 5 --steps 3
    python tools/fake_jenkins --home examples/jenkins-home example

``_home`` holds the home's layout (global config, folders, multibranch projects, buildsDir),
``_job`` a job's numbering, builds directory and deletion, ``_run`` a run's writes from its log to
its final build.xml, ``_permalinks`` builds/permalinks, ``_files`` the three ways a file is written;
``_config_xml``, ``_actions``, ``_causes``, ``_console_notes`` and ``_xml_text`` the formats of what
is written, ``_names`` branch-api's item names, ``_formats`` the constants of Jenkins' formats;
``_example`` the bundled example home, ``_bulk_home`` the benchmarks' large homes written fast from
templates, and ``_cli`` the command line.
"""

from __future__ import annotations

from tools.fake_jenkins._bulk_home import HomeInfo, generate_home, job_name, start_running_builds
from tools.fake_jenkins._cli import main
from tools.fake_jenkins._example import build_example
from tools.fake_jenkins._formats import (
    BRANCH_API,
    BUILD_TAGS,
    CPS,
    DECL_DOUBLE,
    DECL_LEGACY,
    DECL_SINGLE,
    DURABILITY,
    FOLDER_PKG,
    FOLDER_TAG,
    GIT_PLUGIN,
    GROOVY_LIB,
    JENKINS_VERSION,
    JOB_TAGS,
    KINDS,
    MULTIBRANCH_TAG,
    RESULTS,
    TIMEOUT_CAUSE,
    WF_MB_PKG,
    WF_MULTIBRANCH,
    WORKFLOW_CPS,
    WORKFLOW_JOB,
)
from tools.fake_jenkins._heads import Head
from tools.fake_jenkins._home import JenkinsHome
from tools.fake_jenkins._job import Job
from tools.fake_jenkins._names import mangle_branch_name
from tools.fake_jenkins._run import Run

__all__ = [
    "BRANCH_API",
    "BUILD_TAGS",
    "CPS",
    "DECL_DOUBLE",
    "DECL_LEGACY",
    "DECL_SINGLE",
    "DURABILITY",
    "FOLDER_PKG",
    "FOLDER_TAG",
    "GIT_PLUGIN",
    "GROOVY_LIB",
    "JENKINS_VERSION",
    "JOB_TAGS",
    "KINDS",
    "MULTIBRANCH_TAG",
    "RESULTS",
    "TIMEOUT_CAUSE",
    "WF_MB_PKG",
    "WF_MULTIBRANCH",
    "WORKFLOW_CPS",
    "WORKFLOW_JOB",
    "Head",
    "HomeInfo",
    "JenkinsHome",
    "Job",
    "Run",
    "build_example",
    "generate_home",
    "job_name",
    "main",
    "mangle_branch_name",
    "start_running_builds",
]
