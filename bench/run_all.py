"""Runs every benchmark script; with ``--quick`` (as CI does) each at its smoke size.

Each runs as a module (``python -m bench.b1_latency``) from the repository root: the benchmark
modules are then imported as ``bench.*`` only, and none can stand in for a library's module of the
same name (a script run by its path has bench/ first on ``sys.path``). Run by path, a script finds
``bench``, ``tools`` and ``tests`` through the editable install (``pip install -e .``), which puts
the repository root on ``sys.path``.

Exit status: non-zero when a script crashes (non-zero exit). A missed goal is not a failure here:
quick sizes prove that the scripts work, they measure nothing. Without ``--quick`` the full sizes
run (allow about half an hour on a 2-core machine); add ``--strict`` to fail on a missed goal.

Usage: .venv/bin/python bench/run_all.py --quick [--only b1,b3] [--json-dir DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCRIPTS = [
    "b1_latency.py",
    "b2_latency_polling.py",
    "b3_restart.py",
    "b4_first_start.py",
    "b5_idle.py",
    "b6_throughput.py",
    "b7_log_scan.py",
    "b3_first_event.py",
    "b8_shared_account.py",
    "b9_cli.py",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--strict", action="store_true", help="full size: also fail when a goal is missed")
    p.add_argument("--only", default="", help="comma-separated prefixes, e.g. b1,b3")
    p.add_argument("--json-dir", type=Path, default=None, help="write each script's results as JSON here")
    p.add_argument("--timeout", type=float, default=None, help="per script, seconds (quick: 300)")
    args = p.parse_args(argv)
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    timeout = args.timeout or (300.0 if args.quick else 3600.0)
    failed: list[str] = []
    summary: list[str] = []
    for script in SCRIPTS:
        if only and not any(script.startswith(o) for o in only):
            continue
        cmd = [sys.executable, "-m", f"bench.{script.removesuffix('.py')}"]
        if args.quick:
            cmd.append("--quick")
        if args.strict:
            cmd.append("--strict")
        if args.json_dir is not None:
            args.json_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["--json", str(args.json_dir / script.replace(".py", ".json"))]
        print(f"\n### {' '.join(cmd[1:])}", flush=True)
        t0 = time.monotonic()
        try:
            rc = subprocess.run(cmd, cwd=REPO, timeout=timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            rc = -1
            print(f"{script}: timed out after {timeout:g}s", flush=True)
        took = time.monotonic() - t0
        summary.append(f"{script:<24} exit {rc:>3}  {took:6.1f} s")
        if rc != 0:
            failed.append(script)
    print("\n" + "\n".join(summary))
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print("all benchmark scripts ran" + (" (quick: goals not judged)" if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
