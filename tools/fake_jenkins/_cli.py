"""The command line: one build of a job, written live over a few seconds, or the example home.

A person trying the daemon against a real-looking home needs builds to appear while it watches; the
command line gives them that without writing any Python.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tools.fake_jenkins._example import build_example
from tools.fake_jenkins._formats import KINDS, RESULTS
from tools.fake_jenkins._home import JenkinsHome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fake_jenkins", description="Write Jenkins build records like Jenkins."
    )
    parser.add_argument("--home", required=True, type=Path, help="JENKINS_HOME directory")
    parser.add_argument("--builds-dir", default=None, help="buildsDir template (writes global config.xml)")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="run one build of JOB (created if missing)")
    b.add_argument("job")
    b.add_argument("--kind", choices=KINDS, default=None, help="job kind when creating (default freestyle)")
    b.add_argument("--result", choices=RESULTS, default="SUCCESS")
    b.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    b.add_argument("--steps", type=int, default=3, help="log lines spread over the duration")
    b.add_argument("--cause", default="Started by user admin")
    b.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a build parameter (repeatable)"
    )
    sub.add_parser("example", help="(re)create the bundled example home")
    args = parser.parse_args(argv)

    if args.command == "example":
        build_example(args.home)
        print(f"example Jenkins home written to {args.home}")
        return 0
    home = JenkinsHome(args.home, builds_dir=args.builds_dir)
    job = home.job(args.job, args.kind or "freestyle")
    run = job.start(cause=args.cause, parameters=dict(p.split("=", 1) for p in args.param))
    steps = max(0, args.steps)
    pause = args.duration / (steps + 1) if args.duration > 0 else 0.0
    for i in range(steps):
        time.sleep(pause)
        run.log(f"step {i + 1}/{steps}")
        run.checkpoint()
    time.sleep(pause)
    run.finish(args.result, timed_out=args.result == "ABORTED")
    print(f"{job.full_name} #{run.number} {args.result}")
    return 0
