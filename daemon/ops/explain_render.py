"""The text form of ``buildtail explain`` and ``explain --summary`` (the JSON form is the report
itself): one block per run, the verdict per derived metric last, where the eye ends up."""

from __future__ import annotations

from typing import Any

__all__ = ["render", "render_summary"]


def _kv(label: str, value: str) -> str:
    return f"  {label:<13}{value}"


def _disk(disk: dict[str, Any] | None) -> str:
    if disk is None:
        return "not found on disk"
    if not disk["readable"]:
        return f"{disk['path']}: not readable as a run now"
    what = "running" if disk["running"] else f"{disk['result'] or '?'} -> {disk['state']}"
    parts = [f"{disk['path']}: {what}", f"started {disk['started']}"]
    if disk["finished"]:
        parts.append(f"finished {disk['finished']}")
    if disk["branch"]:
        parts.append(f"branch {disk['branch']}")
    if head := disk.get("head"):
        parts.append(_head(head))
    if disk["parameters"]:
        parts.append("parameters " + ", ".join(f"{k}={v}" for k, v in disk["parameters"].items()))
    if disk["environment"]:
        parts.append(f"environment {disk['environment']['name']} ({disk['environment']['category']})")
    return "; ".join(parts)


def _head(head: dict[str, Any]) -> str:
    """What the branch job builds: ``pull request PR-1 'Fix login'``, ``primary branch main``."""
    if head["kind"] == "pull_request":
        title = f" {head['title']!r}" if head["title"] else ""
        return f"pull request {head['name']}{title}"
    if head["kind"] == "tag":
        return f"tag {head['name']}"
    kind = "branch" if head["kind"] == "branch" else "head of unknown kind"
    return f"{'primary ' if head['primary'] else ''}{kind} {head['name']}"


def _run(run: dict[str, Any]) -> list[str]:
    lines = [f"{run['job']} #{run['number']} (source {run['source']}, {run['kind']})"]
    lines.append(_kv("on disk", _disk(run["disk"])))
    if run["recorded"]:
        for rec in run["recorded"]:
            lines.append(
                _kv(
                    "recorded",
                    f"pipelineId {rec['pipeline_id']}: {rec['state']} ({rec['kind']}, generation "
                    f"{rec['generation']}, updated {rec['updated']})",
                )
            )
    else:
        lines.append(_kv("recorded", "no (buildtail has queued nothing for this run)"))
    if run["excluded"]:
        lines.append(_kv("excluded", run["excluded"]))
    if run["history"]:
        lines.append(_kv("history", run["history"]))
    lines.append(
        _kv("sent to", f"event source {run['event_source_id']}, component {run['component_id'] or '-'}")
    )
    events = run["events"]
    for q in events["queued"]:
        held = f"PAUSED: {q['paused']}" if q["paused"] else f"next attempt {q['next_attempt'] or 'now'}"
        error = f", last error {q['last_error']}" if q["last_error"] else ""
        lines.append(
            _kv(
                "queued",
                f"{q['kind']} {q['state']} seq {q['seq']} ({q['sink']}): "
                f"{q['attempts']} attempt(s), {held}{error}",
            )
        )
    for a in events["answers"]:
        status = "no answer" if a["status"] is None else f"HTTP {a['status']}"
        times = f" x{a['repeats']}" if a["repeats"] > 1 else ""
        body = f": {a['body']}" if a["body"] else ""
        lines.append(
            _kv(
                a["outcome"],
                f"{a['kind']} {a['state']} seq {a['seq']} at {a['at']}{times}, {status}{body} " + _where(a),
            )
        )
    for d in events["dead_letters"]:
        lines.append(
            _kv(
                "dead letter",
                f"seq {d['seq']} ({d['sink']}) HTTP {d['status']} at {d['failed_at']}: {d['error']}",
            )
        )
    compass = [m for m in run["metrics"] if m.get("sink", "compass") == "compass"]
    for m in compass:
        lines.append(_kv("counts", f"{m['metric']}: {'yes' if m['counts'] else 'NO'}"))
    for reason in compass[0]["why_not"] if compass else []:
        lines.append(_kv("because", reason))
    lines.append(_kv("note", run["hint"]))
    if "jira" in run:
        lines.extend(_jira(run["jira"], [m for m in run["metrics"] if m.get("sink") == "jira"]))
    return lines


def _where(answer: dict[str, Any]) -> str:
    """Whose answer it was; Compass's names the event source and component it was sent to."""
    if answer["sink"] != "compass":
        return f"({answer['sink']})"
    return f"(source {answer['event_source_id']}, component {answer['component_id'] or '-'})"


def _jira(jira: dict[str, Any], views: list[dict[str, Any]]) -> list[str]:
    """Whether the run goes to Jira, its issue keys, and Jira's views of it."""
    goes = {True: "yes", False: "NO", None: "unknown (its issue keys are not known here)"}[jira["goes"]]
    lines = [_kv("to Jira", goes)]
    keys = jira["issue_keys"]
    if keys is not None:
        found = [f"{k} ({keys['evidence'][k]})" if k in keys["evidence"] else k for k in keys["keys"]]
        lines.append(_kv("issue keys", ", ".join(found) or "none"))
    for note in jira["notes"]:
        lines.append(_kv("note", note))
    for m in views:
        shown = "unknown" if m["counts"] is None else ("yes" if m["counts"] else "NO")
        lines.append(_kv("shows", f"{m['metric']}: {shown}"))
    for reason in jira["why_not"]:
        lines.append(_kv("because", reason))
    return lines


def render(report: dict[str, Any]) -> list[str]:
    if not report["runs"]:
        return [report["not_found"]]
    lines: list[str] = []
    for run in report["runs"]:
        if lines:
            lines.append("")
        lines.extend(_run(run))
    if report["more"]:
        lines.append(f"... {report['more']} older run(s) not shown (--limit)")
    return lines


def render_summary(report: dict[str, Any]) -> list[str]:
    counted = " and ".join(report["counted_states"])
    lines = [
        f"final events Compass accepted (from the record of answers), as of {report['at']}; "
        f"build success rate = SUCCESSFUL / ({counted.replace(' and ', ' + ')}), as Compass counts"
    ]
    if not report["components"]:
        lines.append("no final event accepted in the last 28 days")
    for entry in report["components"]:
        lines.append(f"component {entry['component_id'] or '(none: no compass.components rule)'}")
        for window, figures in entry["windows"].items():
            rate = figures["build_success_rate"]
            builds = ", ".join(f"{s} {n}" for s, n in sorted(figures["build"].items())) or "none"
            deploys = ", ".join(f"{s} {n}" for s, n in sorted(figures["deployment"].items())) or "none"
            shown = "-" if rate is None else f"{rate:.1%}"
            lines.append(f"  last {window:<4} builds: {builds}; success rate {shown}; deployments: {deploys}")
    return lines
