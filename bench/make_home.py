"""Writes a large Jenkins home once, to be reused by B3, B4 and B5 with ``--home DIR``.

Usage: .venv/bin/python bench/make_home.py DIR [--jobs 2000] [--builds 50] [--running 20]

The builds are finished, with file times hours to days in the past (a history); ``--running``
builds are started with tools/fake_jenkins and left running. DIR must not exist yet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.shared_home import BIG_HOME, write_marker
from tools.fake_jenkins import generate_home


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("dir", type=Path)
    p.add_argument("--jobs", type=int, default=BIG_HOME[0])
    p.add_argument("--builds", type=int, default=BIG_HOME[1])
    p.add_argument("--running", type=int, default=BIG_HOME[2])
    args = p.parse_args(argv)
    if args.dir.exists():
        p.error(f"{args.dir} exists; give a new directory")
    info = generate_home(args.dir, args.jobs, args.builds, running=args.running)
    write_marker(info)
    print(
        f"{args.dir}: {info.jobs} jobs x {info.builds} builds + {info.running} running in {info.seconds:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
