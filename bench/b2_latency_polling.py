"""B2: latency from the final build.xml rename to the request at the fake Compass, ``watch: polling``.

Same method as B1 (bench/b1_latency.py), with ``watch: polling`` and ``poll_interval`` 1 s (0.5 s in
quick mode). Before each finish the script sleeps a random fraction of the poll period, so the
renames fall at random phases of the poll cycle: the expected latency is about half the period, the
worst about one period plus the processing time. Goal: p99 <= poll_interval + 50 ms.

Usage: .venv/bin/python bench/b2_latency_polling.py [--quick] [--runs N] [--poll-interval S] [--json FILE]
"""

from __future__ import annotations

import sys

from bench.b1_latency import add_pin_option, run_benchmark
from bench.reporting import base_parser, finish


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0] if __doc__ else "B2")
    p.add_argument("--poll-interval", type=float, default=None, help="seconds (full: 1.0, quick: 0.5)")
    add_pin_option(p)
    args = p.parse_args(argv)
    interval = args.poll_interval or (0.5 if args.quick else 1.0)
    samples, rounds = (5, 1) if args.quick else (40, 3)
    report = run_benchmark(
        args,
        bench="B2",
        title="latency build.xml rename -> request at Compass, polling",
        watch="polling",
        poll_interval=interval,
        samples_c1=samples,
        rounds_cn=rounds,
        conc=50,
        goals={"p50": None, "p99": interval + 0.050},
    )
    return finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
