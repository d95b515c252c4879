"""The ``buildtail`` command: ``run``, ``check-config``, ``status``, ``explain``, ``doctor``,
``compass setup``, ``backfill``, ``state check``/``state recover``, ``config-schema`` and ``--version``.

Each subcommand imports what it needs when it runs: ``--version`` and ``status`` load neither the
configuration's models (pydantic) nor the network stack (aiohttp) nor the file watcher (watchdog).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from daemon import __version__
from daemon.config.values import parse_duration

if TYPE_CHECKING:
    from daemon.config import Settings

__all__ = ["EXIT_STATE_UNUSABLE", "EXIT_STATE_VERSION", "main"]

EXIT_STATE_VERSION = 78  # EX_CONFIG: the state database needs another release (the unit does not restart)
EXIT_STATE_UNUSABLE = 78  # the same: a damaged database this process cannot rebuild (read-only, full disk)


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
    backfill = sub.add_parser(
        "backfill", help="send finished runs from before the first start (oldest first)"
    )
    backfill.add_argument("--config", required=True, type=Path, metavar="PATH")
    backfill.add_argument(
        "--since", required=True, type=parse_duration, metavar="AGE", help="how far back, e.g. 30d or 12h"
    )
    backfill.add_argument("--dry-run", action="store_true", help="say what would be sent; queue nothing")
    backfill.add_argument(
        "--to",
        default="compass",
        metavar="SINKS",
        help="where history goes, comma-separated: compass (the default), jira, or compass,jira",
    )
    sub.add_parser("config-schema", help="print the JSON Schema of the configuration file (for YAML editors)")
    status = sub.add_parser("status", help="queue, deliveries, dead letters and budget (works while running)")
    status.add_argument("--config", required=True, type=Path, metavar="PATH")
    status.add_argument("--json", action="store_true", help="one JSON object (the README describes it)")
    explain = sub.add_parser(
        "explain", help="why a run shows in Compass or not: disk, queue, answers, metrics (read-only)"
    )
    explain.add_argument("target", nargs="?", metavar="JOB[#N]", help="a job, or one run of it")
    explain.add_argument("--config", required=True, type=Path, metavar="PATH")
    explain.add_argument("--json", action="store_true", help="one JSON object (the README describes it)")
    explain.add_argument("--limit", type=int, default=10, metavar="N", help="runs shown, newest first (10)")
    explain.add_argument(
        "--summary", action="store_true", help="per component: final events accepted in 7 and 28 days"
    )
    doctor = sub.add_parser(
        "doctor",
        help="check the Compass site, credentials, event sources and derived metrics, and Jira's "
        "network path, cloud id, credentials and permissions (read-only)",
    )
    doctor.add_argument("--config", required=True, type=Path, metavar="PATH")
    compass = sub.add_parser("compass", help="Compass administration")
    compass_sub = compass.add_subparsers(dest="compass_command", required=True, metavar="COMMAND")
    setup = compass_sub.add_parser(
        "setup",
        help="create and attach the event sources this configuration sends to, and connect the derived "
        "metrics their events feed (idempotent)",
    )
    setup.add_argument("--config", required=True, type=Path, metavar="PATH")
    _state_parser(sub)
    return parser


def _state_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    state = sub.add_parser("state", help="the state database: check it, or recover a damaged one")
    state_sub = state.add_subparsers(dest="state_command", required=True, metavar="COMMAND")
    for name, text in (
        ("check", "run SQLite's integrity check (read-only; works while the daemon runs)"),
        ("recover", "set a damaged database aside and salvage what it holds (the daemon stopped)"),
    ):
        command = state_sub.add_parser(name, help=text)
        command.add_argument("--config", required=True, type=Path, metavar="PATH")


def _state(path: Path, command: str) -> int:
    from daemon.config.light import read_status_settings
    from daemon.config.yamlfile import ConfigError
    from daemon.ops import state_cmd

    try:
        settings = read_status_settings(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    if command == "check":
        return state_cmd.check(settings.state_dir)
    from daemon.sinks.registry import configured

    # the configuration's destinations decide what is sent again, as when the daemon recovers
    return state_cmd.recover(settings.state_dir, configured(settings))


def _load(path: Path, *, need_secrets: bool = True) -> Settings | None:
    from daemon.config import ConfigError, load_settings

    try:
        return load_settings(path, need_secrets=need_secrets)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        print(f"{path}: {len(exc.errors)} problem(s) found", file=sys.stderr)
        return None


def _warnings(settings: Settings) -> list[str]:
    """Legal but risky settings: reported by check-config, never fatal."""
    out: list[str] = []
    compass = settings.compass
    if compass is None:
        return out
    for key, secret in (
        ("api_token_file", compass.api_token_file),
        ("proxy_credentials_file", compass.proxy_credentials_file),
    ):
        mode = secret.stat().st_mode if secret is not None else 0
        if mode & 0o004:
            out.append(f"compass.{key}: {secret} is readable by every user (chmod 600 it)")
        elif mode & 0o040:
            out.append(f"compass.{key}: {secret} is readable by its group (chmod 600 it)")
    for key, url in (("base_url", compass.base_url), ("graphql_url", compass.graphql_url)):
        if url and url.startswith("http://") and not _is_loopback_url(url):
            out.append(
                f"compass.{key}: {url} is plain http: the API token would cross the network unencrypted"
            )
    from daemon.config.reachability import deployment_warnings

    out.extend(deployment_warnings(compass.deployments))
    return out


def _is_loopback_url(url: str) -> bool:
    host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _check_config(path: Path) -> int:
    settings = _load(path)
    if settings is None:
        return 2
    for warning in _warnings(settings):
        print(f"{path}: warning: {warning}", file=sys.stderr)
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
    import asyncio
    import logging

    from daemon.migrations import StateVersionError
    from daemon.ops.logs import setup_logging
    from daemon.service import Service
    from daemon.state_check import StateUnusableError

    setup_logging(settings.log_level, settings.log_format)

    service = Service(settings, dry_run=dry_run, config_path=path)
    try:
        asyncio.run(service.serve())
    except StateUnusableError as exc:  # one line, and no restart: an operator has to act
        logging.getLogger("buildtail").critical("cannot run: %s", exc)
        return EXIT_STATE_UNUSABLE
    except StateVersionError as exc:  # restarting would not help: systemd is told not to
        logging.getLogger("buildtail").critical("cannot run: %s", exc)
        return EXIT_STATE_VERSION
    except OSError as exc:
        logging.getLogger("buildtail").critical("cannot run: %s", exc)
        return 1
    return 0


def _backfill(path: Path, since_s: float, dry_run: bool, to: str = "compass") -> int:
    settings = _load(path, need_secrets=not dry_run)
    if settings is None:
        return 2
    from daemon.sinks.registry import configured

    sinks = tuple(dict.fromkeys(name.strip() for name in to.split(",") if name.strip()))
    missing = [name for name in sinks if name not in configured(settings)]
    if not sinks or missing:
        print(
            f"buildtail backfill: --to {to!r}: {', '.join(missing) or 'nothing'} is not a destination "
            f"{path} configures (it has: {', '.join(configured(settings))})",
            file=sys.stderr,
        )
        return 2
    import asyncio

    from daemon.backfill import Backfill
    from daemon.migrations import StateVersionError
    from daemon.ops.logs import setup_logging
    from daemon.state_check import StateDamagedError

    setup_logging(settings.log_level, settings.log_format)

    try:
        return asyncio.run(Backfill(settings, since_s=since_s, dry_run=dry_run, to=sinks).run())
    except StateVersionError as exc:
        print(f"buildtail backfill: {exc}", file=sys.stderr)
        return EXIT_STATE_VERSION
    except StateDamagedError as exc:
        print(f"buildtail backfill: {_damaged_hint(exc, path)}", file=sys.stderr)
        return EXIT_STATE_UNUSABLE
    except KeyboardInterrupt:
        print(
            "\ninterrupted: what is queued stays queued; run the same command again to resume",
            file=sys.stderr,
        )
        return 130


def _status(path: Path, as_json: bool) -> int:
    import sqlite3

    from daemon.config.light import read_status_settings
    from daemon.config.yamlfile import ConfigError
    from daemon.migrations import StateVersionError
    from daemon.ops.status import collect, render
    from daemon.state_check import StateDamagedError

    try:
        settings = read_status_settings(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2

    try:
        report = collect(settings)
    except StateDamagedError as exc:
        print(f"buildtail status: {_damaged_hint(exc, path)}", file=sys.stderr)
        return 2
    except StateVersionError as exc:
        print(f"buildtail status: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(
            f"buildtail status: {exc} (has buildtail run ever started with this configuration?)",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(report, indent=2) if as_json else "\n".join(render(report)))
    return int(report["exit_code"])


def _explain(args: argparse.Namespace) -> int:
    """``buildtail explain``: 0 when answered, 1 for an unknown job, 2 when it cannot read."""
    import sqlite3

    from daemon.clock import now_ms
    from daemon.migrations import StateVersionError
    from daemon.ops.explain import JobNotFound, explain, summary
    from daemon.ops.explain_render import render, render_summary
    from daemon.state_check import StateDamagedError

    if (args.target is None) == (not args.summary):
        print("buildtail explain: give JOB[#N] or --summary", file=sys.stderr)
        return 2
    settings = _load(args.config, need_secrets=False)
    if settings is None:
        return 2
    try:
        if args.summary:
            report = summary(settings, now_ms=now_ms())
            print(json.dumps(report, indent=2) if args.json else "\n".join(render_summary(report)))
            return 0
        report = explain(settings, args.target, limit=max(1, args.limit))
    except JobNotFound as exc:
        print(f"buildtail explain: {exc}", file=sys.stderr)
        print(
            f"looked in the state database and under: {'; '.join(exc.looked) or 'no source'}", file=sys.stderr
        )
        return 1
    except StateDamagedError as exc:
        print(f"buildtail explain: {_damaged_hint(exc, args.config)}", file=sys.stderr)
        return 2
    except (StateVersionError, FileNotFoundError, sqlite3.Error) as exc:
        print(f"buildtail explain: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else "\n".join(render(report)))
    return 0


def _damaged_hint(exc: Exception, config: Path) -> str:
    return (
        f"{exc} (see `buildtail state check --config {config}`; `buildtail state recover --config "
        f"{config}`, or the daemon at its next start, sets it aside and salvages what it holds)"
    )


def _jobs(settings: Settings) -> list[tuple[str, str]]:
    """(source name, job full name) of every job in the Jenkins homes."""
    from daemon.sources.jenkins.source import JenkinsSource

    jobs: list[tuple[str, str]] = []
    for cfg in settings.jenkins_sources:
        source = JenkinsSource(cfg, host=settings.host)
        jobs.extend((cfg.name, job) for job in source.discover().by_name)
    return jobs


def _doctor(path: Path) -> int:
    """Compass's checks, then Jira's, each section's when it is configured: 0 when no problem was
    found, 1 otherwise, 2 when there is nothing to check."""
    settings = _load(path)
    if settings is None:
        return 2
    if settings.compass is None and settings.jira is None:
        print(f"{path}: there is no compass or jira section to check", file=sys.stderr)
        return 2
    import asyncio

    async def go() -> tuple[list[str], int]:
        lines: list[str] = []
        problems = 0
        if settings.compass is not None:
            lines, problems = await _compass_doctor(settings)
        if settings.jira is not None:
            from daemon.sinks.jira.doctor import doctor

            jira_lines, jira_problems = await doctor(settings.jira)
            lines, problems = lines + jira_lines, problems + jira_problems
        return lines, problems

    lines, problems = asyncio.run(go())
    print("\n".join(lines))
    print(f"{problems} problem(s) found" if problems else "no problems found")
    return 1 if problems else 0


async def _compass_doctor(settings: Settings) -> tuple[list[str], int]:
    from daemon.clock import now_ms
    from daemon.ops.unmapped import unmapped_job_lines
    from daemon.sinks.compass.admin import doctor, targets
    from daemon.sinks.compass.graphql import CompassGraphQL

    assert settings.compass is not None
    client = CompassGraphQL(settings.compass)
    try:
        lines, problems = await doctor(client, settings.compass, targets(settings, _jobs(settings)))
    finally:
        await client.close()
    return lines + unmapped_job_lines(settings, now_ms()), problems


def _compass_setup(path: Path) -> int:
    settings = _load(path)
    if settings is None:
        return 2
    if settings.compass is None:
        print(f"{path}: there is no compass section to set up", file=sys.stderr)
        return 2
    import asyncio

    from daemon.sinks.compass.admin import setup, targets
    from daemon.sinks.compass.graphql import CompassGraphQL, GraphQLError

    compass = settings.compass
    wanted = targets(settings, _jobs(settings))

    async def go() -> int:
        client = CompassGraphQL(compass)
        try:
            print("\n".join(await setup(client, compass.cloud_id, wanted)))
        except GraphQLError as exc:
            print(f"buildtail compass setup: {exc}", file=sys.stderr)
            return 1
        finally:
            await client.close()
        return 0

    return asyncio.run(go())


def main(argv: Sequence[str] | None = None) -> int:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack to stderr
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "run":
        return _run(args.config, args.dry_run)
    if args.command == "backfill":
        return _backfill(args.config, args.since, args.dry_run, args.to)
    if args.command == "config-schema":
        from daemon.config import config_json_schema

        print(json.dumps(config_json_schema(), indent=2))
        return 0
    if args.command == "status":
        return _status(args.config, args.json)
    if args.command == "explain":
        return _explain(args)
    if args.command == "doctor":
        return _doctor(args.config)
    if args.command == "state":
        return _state(args.config, args.state_command)
    if args.command == "compass":
        return _compass_setup(args.config)
    return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
