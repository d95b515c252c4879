"""B9: how quickly the command answers: ``--version``, ``check-config``, ``status``, and ``run`` to ready.

Method: each command is run as a whole process (``python -m daemon ...``, interpreter start and
imports included) ``--repeat`` times and the median wall time is reported, next to the median of
``python -c pass`` measured in the same run (the floor no command can beat). ``status`` reads the
state a daemon left (it ran once on the home, and is stopped); ``run`` is timed from spawning the
process to its ``ready:`` line on a restart (the state current), on a small home.

Goals: ``--version`` <= 0.15 s; ``check-config`` and ``status`` <= 0.5 s; ``run`` to ready on a
restart <= 1.0 s.

Usage: .venv/bin/python bench/b9_cli.py [--quick] [--repeat N]
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence

from bench.arrivals import wait_quiet
from bench.daemon_under_test import TOKEN, Daemon, fake_compass, make_config
from bench.figures import median
from bench.machine import CODE, machine_info
from bench.reporting import Report, base_parser, finish, temp_dir
from tools.fake_jenkins import generate_home

GOALS = {"--version": 0.15, "check-config": 0.5, "status": 0.5, "run to ready (restart)": 1.0}


def _timed(cmd: Sequence[str], repeat: int, ok: Sequence[int] = (0,)) -> list[float]:
    out = []
    env = {"COMPASS_API_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=CODE, env=env, capture_output=True, check=False)
        out.append(time.perf_counter() - t0)
        if proc.returncode not in ok:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return out


def main() -> int:
    p = base_parser(__doc__.splitlines()[0] if __doc__ else "B9", full_runs=1)
    p.add_argument("--repeat", type=int, default=None, help="runs of each command (full: 15, quick: 3)")
    args = p.parse_args()
    repeat = args.repeat or (3 if args.quick else 15)
    report = Report("B9", "the command's own start-up", args.quick)
    report.machine = machine_info()
    py = sys.executable
    with temp_dir(args, "b9") as tmp:
        home = generate_home(tmp / "home", 20, 10, running=2)
        report.params = {"repeat": repeat, **home.params}
        with fake_compass() as compass:
            cfg = make_config(tmp, home.root, compass)
            first = Daemon(tmp, cfg, name="b9-first-start").start()
            first.wait_ready(120)
            wait_quiet(compass, 0.5)
            first.stop()
            config = str(first.config_path)
            times = {
                "python -c pass": _timed([py, "-c", "pass"], repeat),
                "--version": _timed([py, "-m", "daemon", "--version"], repeat),
                "check-config": _timed([py, "-m", "daemon", "check-config", "--config", config], repeat),
                "status": _timed([py, "-m", "daemon", "status", "--config", config], repeat, ok=(0, 3)),
            }
            ready = []
            for i in range(max(3, repeat // 3)):
                d = Daemon(tmp, cfg, name=f"b9-restart-{i}")
                with d:
                    ready.append(d.wait_ready(120))
            times["run to ready (restart)"] = ready
    floor = median(times["python -c pass"])
    for what, values in times.items():
        m = median(values)
        report.runs.append({"command": what, "median_s": round(m, 4), "min_s": round(min(values), 4)})
        goal = GOALS.get(what)
        report.check(
            what,
            f"{m:.3f} s ({m / floor:.1f}x python)",
            "-" if goal is None else f"<= {goal:g} s",
            None if goal is None else m <= goal,
        )
    report.figures = {k: median(v) for k, v in times.items()}
    return finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
