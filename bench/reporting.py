"""The benchmark scripts' common command line, temporary directory and report (figures, goals,
verdicts, JSON)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO


def base_parser(description: str, *, full_runs: int = 3) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--quick", action="store_true", help="smoke size: proves the script works, measures nothing"
    )
    p.add_argument("--runs", type=int, default=None, help=f"repetitions, median reported (full: {full_runs})")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--tmp", type=Path, default=None, help="parent of the temporary directory")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, home, state)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed (full size only)")
    p.set_defaults(full_runs=full_runs)
    return p


def runs_of(args: argparse.Namespace) -> int:
    if args.runs is not None:
        return max(1, int(args.runs))
    return 1 if args.quick else int(args.full_runs)


@contextmanager
def temp_dir(args: argparse.Namespace, prefix: str) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=f"buildtail-bench-{prefix}-", dir=args.tmp))
    try:
        yield d
    finally:
        if args.keep:
            print(f"(kept {d})")
        else:
            shutil.rmtree(d, ignore_errors=True)


@dataclass
class Check:
    what: str
    value: str
    goal: str
    ok: bool | None  # None: reported, no goal

    @property
    def verdict(self) -> str:
        return "-" if self.ok is None else ("PASS" if self.ok else "MISS")


@dataclass
class Report:
    bench: str
    title: str
    quick: bool
    params: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)

    def check(self, what: str, value: str, goal: str, ok: bool | None) -> None:
        self.checks.append(Check(what, value, goal, ok))

    def missed(self) -> bool:
        return any(c.ok is False for c in self.checks)

    def print(self, out: TextIO = sys.stdout) -> None:
        mode = "QUICK (smoke size: not a measurement)" if self.quick else "full size"
        print(f"\n== {self.bench}: {self.title} [{mode}]", file=out)
        print("params: " + ", ".join(f"{k}={v}" for k, v in self.params.items()), file=out)
        for i, run in enumerate(self.runs, 1):
            print(f"run {i}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in run.items()), file=out)
        w = max([len(c.what) for c in self.checks] + [10])
        v = max([len(c.value) for c in self.checks] + [8])
        g = max([len(c.goal) for c in self.checks] + [4])
        print(f"{'figure':<{w}}  {'median':<{v}}  {'goal':<{g}}  verdict", file=out)
        for c in self.checks:
            print(f"{c.what:<{w}}  {c.value:<{v}}  {c.goal:<{g}}  {c.verdict}", file=out)
        for n in self.notes:
            print(f"note: {n}", file=out)
        print("machine: " + ", ".join(f"{k}={v}" for k, v in self.machine.items()), file=out)

    def write_json(self, path: Path | None) -> None:
        if path is None:
            return
        data = asdict(self)
        data["checks"] = [dict(asdict(c), verdict=c.verdict) for c in self.checks]
        path.write_text(json.dumps(data, indent=2, default=str))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def finish(report: Report, args: argparse.Namespace) -> int:
    report.print()
    report.write_json(args.json)
    if args.quick:
        return 0
    return 1 if (args.strict and report.missed()) else 0
