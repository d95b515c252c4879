"""``buildtail status``: whether a process delivers, and what the state database says, read while
the daemon runs.

Two separate questions. The *process* state comes from the delivery lock: a process holding it is
delivering (the daemon, or ``buildtail backfill`` while the daemon is down); a free lock whose
file still names a holder that left no clean-stop record means that holder was killed. The
*delivery* state (paused, backing off, dry run) is what the sender recorded in the database.

Imports stay light (no aiohttp, pydantic or watchdog): the command only reads two files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from daemon.clock import now_ms
from daemon.delivery.lock import DeliveryLock, Holder
from daemon.outbox import DeadLetter
from daemon.store import PRIORITY_BACKFILL, Store

if TYPE_CHECKING:
    from daemon.config.light import StatusSettings

__all__ = ["EXIT_ATTENTION", "EXIT_NOT_RUNNING", "EXIT_UNKNOWN", "collect", "configured_sinks", "render"]

EXIT_ATTENTION = 1  # delivery paused, or dead letters
EXIT_NOT_RUNNING = 3  # no process delivers (as LSB's and systemctl's "not running")
EXIT_UNKNOWN = 4  # the lock cannot be read by this user


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(ms: int | None, now_ms: int) -> str:
    if ms is None:
        return "never"
    seconds = max(0, (now_ms - ms) // 1000)
    when = _when(ms)
    if seconds < 120:
        return f"{seconds}s ago ({when})"
    if seconds < 7200:
        return f"{seconds // 60}m ago ({when})"
    if seconds < 172800:
        return f"{seconds // 3600}h ago ({when})"
    return f"{seconds // 86400}d ago ({when})"


def _from_iso(text: str | None) -> int | None:
    if text is None:
        return None
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() * 1000)


# --- collecting -----------------------------------------------------------------------------------


def _stop(record: Any) -> dict[str, Any] | None:
    if not isinstance(record, dict) or "pid" not in record:
        return None
    return {"kind": record.get("kind"), "pid": record["pid"], "at": _iso(record.get("at_ms"))}


def _process(lock: DeliveryLock, store: Store) -> dict[str, Any]:
    held = lock.is_held()  # first: a stop is recorded after the lock is let go
    holder = lock.holder_info()
    stops = [s for k in ("daemon", "backfill") if (s := _stop(store.get_meta_json(f"last_stop_{k}")))]
    stops.sort(key=lambda s: s["at"] or "")
    out: dict[str, Any] = {
        "state": "unknown",
        "kind": None,
        "pid": None,
        "version": None,
        "since": None,
        "delivering_since": None,
        "dry_run": False,
        "last_stop": stops[-1] if stops else None,
    }
    if holder is not None:
        out.update(
            kind=holder.kind,
            pid=holder.pid,
            version=holder.version,
            since=_iso(holder.started_ms),
            delivering_since=_iso(holder.since_ms),
            dry_run=holder.dry_run,
        )
    if held:
        out["state"] = "running"
    elif held is False:
        out["state"] = "stopped" if holder is None or _stopped_cleanly(holder, stops) else "crashed"
        if out["state"] == "stopped" and holder is not None:
            out["last_stop"] = next(s for s in reversed(stops) if s["pid"] == holder.pid)
    return out


def _stopped_cleanly(holder: Holder, stops: list[dict[str, Any]]) -> bool:
    """The holder the lock file names left a clean-stop record after it took the lock."""
    taken = _iso(holder.since_ms) or ""
    return any(
        s["pid"] == holder.pid
        and (holder.kind is None or s["kind"] == holder.kind)
        and (s["at"] or "") >= taken
        for s in stops
    )


def configured_sinks(settings: StatusSettings) -> tuple[str, ...]:
    """The sinks ``status`` reports on: Compass always (without its section, a dry run), Jira when
    its section is there."""
    return ("compass", "jira") if settings.jira is not None else ("compass",)


def _delivery(store: Store, sink: str, dry_run: bool, now: int, last_error: str | None) -> dict[str, Any]:
    paused, paused_since = store.delivery_state(sink)
    _, due_ms = store.next_due(now, sink=sink)
    out: dict[str, Any] = {
        "state": "running",
        "reason": None,
        "since": None,
        "until": None,
        "cause": None,
        "answer": None,
    }
    if dry_run:
        out["state"] = "dry_run"
    elif paused:
        recorded = store.sink_fact(sink, "paused")
        recorded = recorded if isinstance(recorded, dict) else {}
        out.update(
            state="paused",
            reason=paused,
            since=_iso(paused_since),
            cause=recorded.get("cause"),  # absent in a pause recorded by an older release
            answer=recorded.get("answer"),
        )
    elif due_ms is not None and due_ms > now:
        out.update(state="backing_off", reason=last_error, until=_iso(due_ms))
    return out


def _dead_letters(dead: list[DeadLetter]) -> dict[str, Any]:
    return {
        "count": len(dead),
        "items": [
            {
                "pipeline_id": d.pipeline_id,
                "seq": d.seq,
                "status": d.status,
                "error": d.error,
                "failed_at": _iso(d.failed_ms),
            }
            for d in dead
        ],
    }


def _budget(store: Store, sink: str) -> dict[str, Any] | None:
    budget = store.sink_fact(sink, "budget")
    if not budget:
        return None
    return {
        "limit_per_minute": budget["limit"],
        "paced_per_minute": round(float(budget.get("paced", budget["limit"])), 1),
        "burst": budget["burst"],
        "sent_last_minute": budget["sent_last_minute"],
        "tokens": round(float(budget["tokens"]), 1),
        "at": _iso(budget["at_ms"]),
    }


def _sink(store: Store, sink: str, dry_run: bool, now: int) -> dict[str, Any]:
    """One sink's share: its queue, delivery (pause and cause), last delivery, dead letters, budget."""
    depth, oldest, last = (
        store.sink_depth(sink),
        store.sink_oldest_queued_ms(sink),
        store.last_delivery_ms(sink),
    )
    last_error = store.sink_last_error(sink) if depth else None
    return {
        "queue": {
            "depth": depth,
            "oldest_at": _iso(oldest),
            "oldest_age_s": None if oldest is None else max(0, (now - oldest) // 1000),
            "last_error": last_error,
        },
        "delivery": _delivery(store, sink, dry_run, now, last_error),
        "last_delivery": None if last is None else {"at": _iso(last), "age_s": max(0, (now - last) // 1000)},
        "dead_letters": _dead_letters(store.sink_dead_letters(sink)),
        "budget": _budget(store, sink),
    }


def _schema(store: Store) -> dict[str, Any]:
    upgraded = store.get_meta_json("upgraded")
    if not isinstance(upgraded, dict):
        upgraded = {}
    return {
        "version": store.get_meta_int("schema"),
        "upgraded_from": upgraded.get("from"),
        "upgraded_at": _iso(upgraded.get("at_ms")),
        "copy_before_upgrade": upgraded.get("backup"),
    }


def _recovery(store: Store) -> dict[str, Any] | None:
    """The last time the database was rebuilt from a damaged one (``daemon.recovery``), or None."""
    record = store.get_meta_json("recovered")
    if not isinstance(record, dict):
        return None
    return {
        "at": _iso(record.get("at_ms")),
        "damaged_file": record.get("damaged_file"),
        "salvaged": record.get("salvaged", {}),
        "lost": record.get("lost", {}),
        "resent_runs": record.get("rewound", 0),
    }


def _recovery_lines(r: dict[str, Any] | None, now: int) -> list[str]:
    if r is None:
        return []
    lost = r["lost"]
    gone = "an unknown number" if lost.get("outbox") is None else str(lost["outbox"])
    return [
        f"recovered        {_age(_from_iso(r['at']), now)} from the damaged {r['damaged_file']}: "
        f"{r['salvaged'].get('outbox', 0)} queued event(s) and {r['salvaged'].get('runs', 0)} run(s) "
        f"salvaged, {gone} queued event(s) lost"
    ]


def collect(settings: StatusSettings) -> dict[str, Any]:
    """The whole report as plain data (what ``status --json`` prints; the shape is in the README)."""
    lock = DeliveryLock(settings.state_dir)
    store = Store(settings.state_dir, readonly=True)
    try:
        now = now_ms()
        process = _process(lock, store)
        dry_run = process["state"] == "running" and bool(process["dry_run"])
        sinks = {
            name: _sink(store, name, dry_run or (name == "compass" and settings.compass is None), now)
            for name in configured_sinks(settings)
        }
        compass = sinks["compass"]  # the keys from before there were sinks are Compass's
        delivery = compass["delivery"]
        depth = store.outbox_depth()
        oldest = store.oldest_queued_ms()
        dead = store.dead_letters()
        report: dict[str, Any] = {
            "format": 1,
            "state_database": str(store.path),
            "schema": _schema(store),
            "recovery": _recovery(store),
            "process": process,
            "delivery": delivery,
            "queue": {  # every sink's rows
                "depth": depth,
                "by_state": dict(sorted(store.outbox_by_state().items())),
                "backfill": store.outbox_depth(PRIORITY_BACKFILL),
                "deployments": store.outbox_deployments(),
                "oldest_at": _iso(oldest),
                "oldest_age_s": None if oldest is None else max(0, (now - oldest) // 1000),
                "last_error": store.last_error() if depth else None,
            },
            "last_delivery": compass["last_delivery"],
            "dead_letters": _dead_letters(dead),  # every sink's
            "budget": compass["budget"],
            "sinks": sinks,
        }
    finally:
        store.close()
    attention = []
    if process["state"] in ("stopped", "crashed"):
        attention.append("not_running" if process["state"] == "stopped" else "crashed")
    if any(one["delivery"]["state"] == "paused" for one in report["sinks"].values()):
        attention.append("paused")
    if dead:
        attention.append("dead_letters")
    report["attention"] = attention
    report["exit_code"] = _exit_code(process["state"], attention)
    return report


def _exit_code(process_state: str, attention: list[str]) -> int:
    """Not running wins over the rest: while nothing delivers, that is the first thing to fix."""
    if process_state == "unknown":
        return EXIT_UNKNOWN
    if process_state != "running":
        return EXIT_NOT_RUNNING
    return EXIT_ATTENTION if attention else 0


# --- text -----------------------------------------------------------------------------------------


def _who(p: dict[str, Any]) -> str:
    parts = [f"pid {p['pid']}" if p["pid"] is not None else "pid not recorded yet"]
    if p["version"]:
        parts.append(f"buildtail {p['version']}")
    return ", ".join(parts)


def _process_line(p: dict[str, Any], now: int) -> str:
    kind = p["kind"] or "a buildtail process"
    if p["state"] == "running":
        since = f", started {_age(_from_iso(p['since']), now)}" if p["since"] else ""
        line = f"{kind} running ({_who(p)}{since})"
        if p["kind"] == "backfill":
            line += ": it delivers while no daemon does (a daemon started meanwhile waits for it)"
        return line
    if p["state"] == "unknown":
        return "unknown: the delivery lock cannot be read by this user"
    if p["state"] == "crashed":
        return f"NOT RUNNING: the last holder ({kind}, {_who(p)}) did not stop cleanly (killed?)" + (
            f"; last clean stop {_age(_from_iso(p['last_stop']['at']), now)}" if p["last_stop"] else ""
        )
    stop = p["last_stop"]
    if stop is None:
        return "not running: no process has delivered from this state yet"
    when = _age(_from_iso(stop["at"]), now)
    return f"not running: {stop['kind']} (pid {stop['pid']}) stopped cleanly {when}"


def _delivery_line(d: dict[str, Any], running: bool, now: int) -> str:
    if d["state"] == "dry_run":
        return "dry run (events are printed, not sent)"
    if d["state"] == "paused":
        return f"PAUSED since {_age(_from_iso(d['since']), now)}: {d['reason']}"
    if d["state"] == "backing_off":
        until = _from_iso(d["until"]) or now
        return f"backing off until {_when(until)} (in {max(0, (until - now) // 1000)}s): {d['reason']}"
    return "running" if running else "not paused (nothing is sent until the daemon or a backfill runs)"


def _schema_text(schema: dict[str, Any], now: int) -> str:
    text = f"(schema {schema['version']}"
    if schema["upgraded_from"] is not None:
        text += (
            f", upgraded from {schema['upgraded_from']} {_age(_from_iso(schema['upgraded_at']), now)}; "
            f"the database as it was then: {schema['copy_before_upgrade']}"
        )
    return text + ")"


def render(report: dict[str, Any]) -> list[str]:
    """The report as the lines ``buildtail status`` prints."""
    now = now_ms()
    p, d, q = report["process"], report["delivery"], report["queue"]
    detail = ", ".join(f"{n} {s}" for s, n in q["by_state"].items())
    lines = [
        f"process          {_process_line(p, now)}",
        f"delivery         {_delivery_line(d, p['state'] == 'running', now)}",
        f"state database   {report['state_database']} {_schema_text(report['schema'], now)}",
        f"queue            {q['depth']} event(s)"
        + (f" ({detail})" if detail else "")
        + (f", {q['deployments']} of them deployments" if q["deployments"] else "")
        + (f", {q['backfill']} of them from backfill" if q["backfill"] else ""),
        f"oldest queued    {_age(_from_iso(q['oldest_at']), now) if q['oldest_at'] else '-'}",
        *_recovery_lines(report.get("recovery"), now),
    ]
    if q["last_error"]:
        lines.append(f"last error       {q['last_error']}")
    last = report["last_delivery"]
    lines.append(f"last delivery    {_age(_from_iso(last['at']) if last else None, now)}")
    if (b := report["budget"]) is not None:
        lines.append(f"rate budget      {_budget_text(b, now)}")
    lines.extend(_dead_lines("dead letters     ", report["dead_letters"]))
    sinks = report.get("sinks", {})
    if len(sinks) > 1:  # with one sink, the lines above are all of it
        for name, one in sinks.items():
            lines.extend(_sink_lines(name, one, p["state"] == "running", now))
    return lines


def _budget_text(b: dict[str, Any], now: int) -> str:
    return (
        f"{b['limit_per_minute']}/min, burst {b['burst']}"
        + (
            f", paced to {b['paced_per_minute']:g}/min (the account is shared)"
            if b["paced_per_minute"] < b["limit_per_minute"]
            else ""
        )
        + ": "
        f"{b['sent_last_minute']} request(s) in the last minute, "
        f"{b['tokens']:.1f} token(s) left ({_age(_from_iso(b['at']), now)})"
    )


def _dead_lines(label: str, dead: dict[str, Any], indent: str = "  ") -> list[str]:
    lines = [f"{label}{dead['count']}"]
    for item in dead["items"]:
        line = f"{indent}{item['pipeline_id']} seq {item['seq']}: HTTP {item['status']}: {item['error']}"
        lines.append(line[:400])
    return lines


def _sink_lines(name: str, one: dict[str, Any], running: bool, now: int) -> list[str]:
    """One sink's block: its delivery, queue, last delivery, pause cause, budget and dead letters."""
    d, q, last = one["delivery"], one["queue"], one["last_delivery"]
    oldest = f", oldest {_age(_from_iso(q['oldest_at']), now)}" if q["oldest_at"] else ""
    lines = [
        f"sink {name:<11} {_delivery_line(d, running, now)}",
        f"  queue          {q['depth']} event(s){oldest}",
        f"  last delivery  {_age(_from_iso(last['at']) if last else None, now)}",
    ]
    if d["cause"]:
        lines.append(f"  pause cause    {d['cause']}")
    if q["last_error"]:
        lines.append(f"  last error     {q['last_error']}")
    if one["budget"] is not None:
        lines.append(f"  rate budget    {_budget_text(one['budget'], now)}")
    return lines + _dead_lines("  dead letters   ", one["dead_letters"], "    ")
