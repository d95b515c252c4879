"""The large Jenkins home B3, B4 and B5 share: written once by bench/make_home.py and reused with
``--home DIR``, or written into the run's temporary directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tools.fake_jenkins import HomeInfo, generate_home

HOME_MARKER = "bench-home.json"  # next to jobs/; Jenkins and buildtail ignore it


BIG_HOME = (2000, 50, 20)  # jobs, finished builds per job, running builds


QUICK_HOME = (50, 10, 3)


def add_home_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, default=None, help="reuse a home written by bench/make_home.py")
    p.add_argument("--jobs", type=int, default=None, help=f"jobs (full: {BIG_HOME[0]})")
    p.add_argument("--builds", type=int, default=None, help=f"finished builds per job (full: {BIG_HOME[1]})")
    p.add_argument("--running", type=int, default=None, help=f"running builds (full: {BIG_HOME[2]})")


def write_marker(info: HomeInfo) -> None:
    data = {"jobs": info.jobs, "builds": info.builds, "running": info.running, "seconds": info.seconds}
    (info.root / HOME_MARKER).write_text(json.dumps(data))


def home_for(args: argparse.Namespace, tmp: Path) -> HomeInfo:
    """The home given with --home (as bench/make_home.py wrote it), or a new one in ``tmp``."""
    if args.home is not None:
        marker = args.home / HOME_MARKER
        if not marker.exists():
            raise SystemExit(f"{args.home} has no {HOME_MARKER}: write it with bench/make_home.py")
        data = json.loads(marker.read_text())
        return HomeInfo(args.home.resolve(), data["jobs"], data["builds"], data["running"], [], 0.0)
    jobs, builds, running = QUICK_HOME if args.quick else BIG_HOME
    jobs = args.jobs if args.jobs is not None else jobs
    builds = args.builds if args.builds is not None else builds
    running = args.running if args.running is not None else running
    print(f"writing a Jenkins home of {jobs} jobs x {builds} builds + {running} running ...", flush=True)
    info = generate_home(tmp / "home", jobs, builds, running=running)
    print(f"  written in {info.seconds:.1f}s", flush=True)
    write_marker(info)
    return info
