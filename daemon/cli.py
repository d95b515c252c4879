"""The ``buildtail`` command: run, check-config, --version."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import ConfigError, Settings, load_settings
from .logs import setup_logging

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="buildtail", description="Streams builds from a CI server's files into Atlassian Compass."
    )
    parser.add_argument("--version", action="version", version=f"buildtail {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="watch the configured sources and send build events (foreground)")
    run.add_argument("--config", required=True, type=Path, metavar="PATH")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="write each event as one JSON line (the exact request body) to stdout instead of sending it",
    )
    check = sub.add_parser("check-config", help="validate a configuration file and report every problem")
    check.add_argument("--config", required=True, type=Path, metavar="PATH")
    return parser


def _load(path: Path) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        print(f"{path}: {len(exc.errors)} problem(s) found", file=sys.stderr)
        return None


def _check_config(path: Path) -> int:
    settings = _load(path)
    if settings is None:
        return 2
    target = (
        "stdout (no compass section: dry run)" if settings.compass is None else settings.compass.events_url
    )
    print(
        f"{path}: OK: {len(settings.sources)} source(s), events to {target}, "
        f"event source {settings.compass.event_source if settings.compass else '{host}'!r} on host "
        f"{settings.host!r}, state in {settings.state_dir}"
    )
    return 0


def _run(path: Path, dry_run: bool) -> int:
    settings = _load(path)
    if settings is None:
        return 2
    setup_logging(settings.log_level)
    from .service import Service

    service = Service(settings, dry_run=dry_run)
    try:
        asyncio.run(service.serve())
    except OSError as exc:
        logging.getLogger("buildtail").critical("cannot run: %s", exc)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "run":
        return _run(args.config, args.dry_run)
    return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
