"""B7: the ``type: log`` source's scanning of a large log with 3 rules, against ``grep -c -E``.

It measures the code path the daemon runs for a log source, in this process: the tailer reading the
file in large chunks and the rule sets matching every chunk where it was read (buffer and length, as
``LogSource`` does; the literal prefilter picks the lines the combined regex runs on). Sending the few
events the matches produce is B1/B6's subject, so it is left out here. The baseline is GNU grep
counting the lines that match any of the same three patterns, on the same file, in the same run
(page cache warm for both).

Usage: .venv/bin/python bench/b7_log_scan.py [--quick] [--size-mb 1024] [--runs 3]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.figures import median
from bench.machine import machine_info
from bench.reporting import Report, base_parser, finish, runs_of, temp_dir
from daemon.sources.files.tailer import Chunk, Tailer
from parsers import RuleSet

START = r"^\S+ START job=(?P<name>\S+) id=(?P<id>\d+)$"
FINISH = r"^\S+ FINISH job=(?P<name>\S+) id=(?P<id>\d+) result=(?P<result>\w+)$"
TIMEOUT = r"^\S+ TIMEOUT job=(?P<name>\S+) id=(?P<id>\d+) result=(?P<result>\w+)$"
GREP = [
    r"^[^ ]+ START job=[^ ]+ id=[0-9]+$",
    r"^[^ ]+ FINISH job=[^ ]+ id=[0-9]+ result=[a-z]+$",
    r"^[^ ]+ TIMEOUT job=[^ ]+ id=[0-9]+ result=[a-z]+$",
]
NOISE = b"2026-11-26T01:00:00Z INFO worker-3 processed item 48213 in 12ms (queue depth 7, cache hit)\n"


def write_log(path: Path, size: int) -> int:
    """Mostly noise, with a start and a finish every ~10,000 lines; returns the number of runs."""
    block = NOISE * 10_000
    runs = 0
    with open(path, "wb") as fh:
        while fh.tell() < size:
            runs += 1
            fh.write(f"2026-11-26T01:00:00Z START job=backup id={runs}\n".encode())
            fh.write(block)
            fh.write(f"2026-11-26T01:05:00Z FINISH job=backup id={runs} result=ok\n".encode())
    return runs


def scan(path: Path) -> tuple[float, int]:
    # the third rule is a second finish pattern; a rule set holds one of each, so it takes a second pass
    rules = RuleSet(start=START, finish=FINISH, time_format=None)
    timeout_rules = RuleSet(start=None, finish=TIMEOUT, time_format=None)
    tailer = Tailer([str(path)])
    events = 0
    started = time.perf_counter()
    for item in tailer.poll():
        if isinstance(item, Chunk):
            buffer, length = item.buffer, item.length
            events += len(rules.scan(buffer, length)) + len(timeout_rules.scan(buffer, length))
            tailer.commit(item.checkpoint)
    elapsed = time.perf_counter() - started
    tailer.close()
    return elapsed, events


def grep(path: Path) -> tuple[float, int]:
    cmd = ["grep", "-c", "-E", "|".join(f"({p})" for p in GREP), str(path)]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, int(out.stdout.strip() or 0)


def main() -> int:
    p = base_parser(__doc__.splitlines()[0] if __doc__ else "B7")
    p.add_argument("--size-mb", type=int, default=None, help="log size (full: 1024, quick: 20)")
    args = p.parse_args()
    size_mb = args.size_mb or (20 if args.quick else 1024)
    report = Report(
        "B7",
        "log source: 3 rules over one large log vs grep -c -E",
        args.quick,
        params={"size_mb": size_mb, "runs": runs_of(args)},
    )
    if shutil.which("grep") is None:
        print("grep is not installed")
        return 1
    with temp_dir(args, "b7") as tmp:
        log = tmp / "big.log"
        runs_written = write_log(log, size_mb << 20)
        grep(log)  # warm the page cache for both
        for _ in range(runs_of(args)):
            t_scan, events = scan(log)
            t_grep, lines = grep(log)
            report.runs.append(
                {
                    "scan_s": round(t_scan, 3),
                    "grep_s": round(t_grep, 3),
                    "events": events,
                    "grep_lines": lines,
                    "ratio": round(t_scan / t_grep, 2),
                }
            )
        report.machine = machine_info(tmp)
    scan_s = median([r["scan_s"] for r in report.runs])
    grep_s = median([r["grep_s"] for r in report.runs])
    ratio = scan_s / grep_s
    mb = size_mb
    report.check(
        "events found / expected",
        f"{report.runs[0]['events']} / {2 * runs_written}",
        "equal",
        report.runs[0]["events"] == 2 * runs_written,
    )
    report.check("scan time (MB/s)", f"{scan_s:.2f} s ({mb / scan_s:.0f} MB/s)", "-", None)
    report.check("grep -c -E time (MB/s)", f"{grep_s:.2f} s ({mb / grep_s:.0f} MB/s)", "-", None)
    report.check("ratio scan : grep", f"{ratio:.1f}x", "<= 2x", ratio <= 2.0)
    return finish(report, args)


if __name__ == "__main__":
    sys.exit(main())
