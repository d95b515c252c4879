"""The bundled example home (examples/jenkins-home): a little history of every kind, at fixed times.

The example is regenerated rather than edited by hand, so that it always matches what the fake
writes; its fixed times keep the regenerated files identical from one run to the next.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

from tools.fake_jenkins._home import JenkinsHome


def _ms(text: str) -> int:
    """Epoch ms of an ISO-8601 UTC time such as ``2026-11-20T09:00:00``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def build_example(root: Path) -> JenkinsHome:
    """(Re)create the bundled example home with a little history. Times are fixed (2026-11-20)."""
    root = Path(root)
    for name in ("jobs", "builds", "config.xml"):
        p = root / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    home = JenkinsHome(root)

    hello = home.job("hello", "freestyle")
    for i, (result, start) in enumerate(
        [
            ("SUCCESS", "2026-11-20T09:00:00"),
            ("FAILURE", "2026-11-20T10:00:00"),
            ("SUCCESS", "2026-11-20T11:00:00"),
        ]
    ):
        run = hello.start(start_ms=_ms(start))
        run.log("+ make")
        run.log("make: building hello" if result == "SUCCESS" else "make: *** [all] Error 2")
        if result == "FAILURE":
            run.log("Build step 'Execute shell' marked build as failure")
        run.finish(
            result, duration_ms=42_000 + i * 1_000, commit=hashlib.sha1(f"hello{i}".encode()).hexdigest()
        )

    api = home.job("team/api", "pipeline")
    for i, start in enumerate(["2026-11-20T09:30:00", "2026-11-20T12:30:00"]):
        run = api.start(start_ms=_ms(start), cause="Started by an SCM change")
        run.log("[Pipeline] node")
        run.log("Running on built-in node in /var/jenkins_home/workspace/team/api")
        run.checkpoint()
        run.log("+ make test")
        run.finish("SUCCESS", duration_ms=95_000 + i * 5_000)
    running = api.start(start_ms=_ms("2026-11-20T15:30:00"))
    running.log("[Pipeline] node")
    running.log("Running on built-in node in /var/jenkins_home/workspace/team/api")
    running.checkpoint()
    running.log("+ make test")
    running.crash()

    nightly = home.job("nightly", "freestyle")
    run = nightly.start(start_ms=_ms("2026-11-18T02:00:00"), cause="Started by timer")
    run.log("+ ./run-nightly.sh")
    run.log("Build step 'Publish JUnit test result report' changed build result to UNSTABLE")
    run.finish("UNSTABLE", duration_ms=1_200_000)
    run = nightly.start(start_ms=_ms("2026-11-19T02:00:00"), cause="Started by timer")
    run.log("+ ./run-nightly.sh")
    run.finish("ABORTED", duration_ms=180_000, timed_out=True)
    run = nightly.start(start_ms=_ms("2026-11-20T02:00:00"), cause="Started by timer")
    run.log("+ ./run-nightly.sh")
    run.crash()

    matrix = home.job("matrix-demo", "matrix", axes={"OS": ["linux", "windows"]})
    matrix.start(start_ms=_ms("2026-11-20T08:00:00")).finish("SUCCESS", duration_ms=30_000)

    shop = home.multibranch("shop", ["main", "feature/login"])
    for i, (branch, job) in enumerate(shop.items()):
        run = job.start(start_ms=_ms(f"2026-11-20T1{3 + i}:00:00"), cause="Branch indexing")
        run.log(f"Obtained Jenkinsfile from {hashlib.sha1(branch.encode()).hexdigest()}")
        run.finish("SUCCESS", duration_ms=61_000, commit=hashlib.sha1(branch.encode()).hexdigest())
    return home
