"""The files a fleet's monitoring loads (monitoring/): Prometheus alerting rules and a Grafana dashboard.

The rules are checked and unit-tested by Prometheus's own promtool (skipped where it is not
installed; Debian's ``prometheus`` package has it). Every PromQL expression, in the rules and in the
dashboard, is read by a small tokenizer, and each metric, label and function it names must be one the
real daemon exports (scraped from a running ``buildtail run``) or Prometheus provides: a renamed metric
or a misspelt label fails here instead of leaving an alert that can never fire or a panel that stays
empty.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import typing
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from daemon.sinks import Outcome
from tests.e2e.conftest import TOKEN, Daemon, make_config, wait_until
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "monitoring" / "buildtail.rules.yml"
RULES_TESTS = REPO / "tests" / "monitoring" / "buildtail.rules.test.yml"
DASHBOARD = REPO / "monitoring" / "grafana-buildtail.json"

# What a scrape adds to every series (the daemon's metrics carry no host label of their own), and the
# series Prometheus writes itself for each target.
TARGET_LABELS = frozenset({"job", "instance"})
SYNTHETIC = {"up": TARGET_LABELS}
# Values the dashboard's variables can take, so its queries can be parsed as plain PromQL.
GRAFANA_VALUES = {"__rate_interval": "5m", "job": "buildtail", "instance": "build01"}
FLEET_PANEL = "Fleet: "  # a title prefix: panels over every server, whatever the instance selection


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# PromQL's aggregations and functions (Prometheus 2.x).
AGGREGATIONS = _words("sum min max avg group stddev stdvar count count_values bottomk topk quantile")
FUNCTIONS = _words(
    """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
    clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg
    delta deriv exp floor histogram_quantile holt_winters hour idelta increase irate label_join
    label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month pi predict_linear
    present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_desc sqrt
    stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year"""
)
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})

_LEX = re.compile(
    r"""
      (?P<space>\s+|\#[^\n]*)
    | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<range>\[[^\]]*\])
    | (?P<variable>\$\{\w+\}|\$\w+)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[A-Za-z0-9]*)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(),{}@])
    """,
    re.VERBOSE,
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _LEX.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot read {expr[pos : pos + 20]!r} in {expr!r}")
        kind = m.lastgroup
        assert kind is not None
        if kind != "space":
            out.append((kind, m.group()))
        pos = m.end()
    return out


@dataclass
class Refs:
    """What one expression names: selectors (metric name, matchers), functions and grouping labels."""

    selectors: list[tuple[str | None, list[tuple[str, str, str]]]] = field(default_factory=list)
    functions: set[str] = field(default_factory=set)
    grouping: set[str] = field(default_factory=set)


def _matchers(toks: list[tuple[str, str]], i: int) -> tuple[list[tuple[str, str, str]], int]:
    """``{label op "value", ...}`` from toks[i], and the index after it (i itself when there is none)."""
    if i >= len(toks) or toks[i] != ("op", "{"):
        return [], i
    out: list[tuple[str, str, str]] = []
    i += 1
    while toks[i] != ("op", "}"):
        if toks[i] == ("op", ","):
            i += 1
            continue
        (lk, label), (ok, op), (vk, value) = toks[i : i + 3]
        if lk != "ident" or ok != "op" or vk != "string":
            raise ValueError(f"not a label matcher: {toks[i : i + 3]}")
        out.append((label, op, value[1:-1]))
        i += 3
    return out, i + 1


def references(expr: str) -> Refs:
    toks = _tokens(expr)
    refs = Refs()
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        following = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if kind == "ident" and text in GROUPING:
            if following == ("op", "("):
                i += 2
                while toks[i] != ("op", ")"):
                    if toks[i][0] == "ident":
                        refs.grouping.add(toks[i][1])
                    i += 1
        elif kind == "ident" and text.lower() in KEYWORDS:
            pass
        elif kind == "ident" and (following == ("op", "(") or following[1] in ("by", "without")):
            refs.functions.add(text)
        elif kind == "ident":
            matchers, i = _matchers(toks, i + 1)
            refs.selectors.append((text, matchers))
            continue
        elif (kind, text) == ("op", "{"):
            matchers, i = _matchers(toks, i)
            name = next((v for label, op, v in matchers if label == "__name__" and op == "="), None)
            refs.selectors.append((name, matchers))
            continue
        i += 1
    return refs


Exported = dict[str, frozenset[str]]  # sample name -> its label names


def problems(expr: str, exported: Exported) -> list[str]:
    """Everything in ``expr`` that names a metric, label or function nobody provides."""
    known = {**SYNTHETIC, **exported}
    all_labels = TARGET_LABELS.union(*known.values())
    outcomes = set(typing.get_args(Outcome))
    refs = references(expr)
    out = [f"unknown function {f}" for f in sorted(refs.functions - FUNCTIONS - AGGREGATIONS)]
    out += [f"unknown label {g} in a grouping" for g in sorted(refs.grouping - all_labels)]
    for name, matchers in refs.selectors:
        if name is None or name not in known:
            out.append(f"{name or 'a selector without a name'} is not exported")
            continue
        for label, op, value in matchers:
            if label not in known[name] | TARGET_LABELS | {"__name__"}:
                out.append(f"{name} has no label {label}")
            if label == "outcome" and op in ("=", "!=") and value not in outcomes:
                out.append(f"{name}: no outcome is called {value!r}")
    return out


def _grafana_to_promql(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VALUES[m.group(1)], expr)


def _rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every panel target, and of the variables' label_values() selectors."""
    out = [(p["title"], t["expr"]) for p in _dashboard()["panels"] for t in p.get("targets", [])]
    for var in _dashboard()["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"]["query"])
            assert m, var["query"]
            out.append((f"variable {var['name']}", m.group(1)))
    return out


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


# --- the exported names, from the real daemon ---------------------------------------------------------


def _scrape(base: str) -> str:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a real ``buildtail run`` once every metric has samples: one run delivered to a
    local fake Compass, and a reconcile scan done."""
    tmp = tmp_path_factory.mktemp("daemon")
    home = JenkinsHome(tmp / "jenkins")
    job = home.job("app")
    with FakeCompass(token=TOKEN) as compass:
        daemon = Daemon(tmp, make_config(tmp, home, compass)).start()
        try:
            match = re.search(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", daemon.stderr)
            assert match, daemon.stderr
            job.start(start_ms=int(time.time() * 1000) - 1000).finish("SUCCESS", duration_ms=500)
            compass.wait_for(lambda events: len(events) >= 1)

            def complete() -> bool:
                families = text_string_to_metric_families(_scrape(match.group(1)))
                return all(f.samples for f in families)

            wait_until(complete, timeout=15, what="a sample of every metric (a reconcile scan among them)")
            yield _scrape(match.group(1))
        finally:
            assert daemon.stop() == 0


@pytest.fixture(scope="module")
def exported(scrape: str) -> Exported:
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in names.items()}


# --- the tokenizer itself -----------------------------------------------------------------------------


def test_references_finds_metrics_labels_and_functions_and_nothing_else() -> None:
    expr = (
        'sum without (outcome) (rate(buildtail_events_sent_total{status="429", instance=~"$i{x}"}[5m]))'
        " / on (job) group_left (version) buildtail_build_info offset 1h"
        ' unless absent(up{job="buildtail"}) > bool 1e3 or {__name__="buildtail_watches"}'
    )
    refs = references(expr)
    assert refs.selectors == [
        ("buildtail_events_sent_total", [("status", "=", "429"), ("instance", "=~", "$i{x}")]),
        ("buildtail_build_info", []),
        ("up", [("job", "=", "buildtail")]),
        ("buildtail_watches", [("__name__", "=", "buildtail_watches")]),
    ]
    assert refs.functions == {"sum", "rate", "absent"}
    assert refs.grouping == {"outcome", "job", "version"}


def test_problems_reports_what_the_daemon_does_not_export() -> None:
    exported = {"buildtail_events_sent_total": frozenset({"outcome", "status"})}
    assert (
        problems('sum by (status) (rate(buildtail_events_sent_total{outcome="accepted"}[5m]))', exported)
        == []
    )
    found = problems(
        'sum by (state) (rate(buildtail_event_sent_total[5m])) + buildtail_events_sent_total{outcom="x"}'
        ' + buildtail_events_sent_total{outcome="acepted"} + histgram_quantile(0.9, up)',
        exported,
    )
    assert found == [
        "unknown function histgram_quantile",
        "unknown label state in a grouping",
        "buildtail_event_sent_total is not exported",
        "buildtail_events_sent_total has no label outcom",
        "buildtail_events_sent_total: no outcome is called 'acepted'",
    ]


# --- the rules ---------------------------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    proc = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in proc.stdout


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    """tests/monitoring/buildtail.rules.test.yml: input series that fire each alert, and near misses."""
    proc = subprocess.run(
        [_promtool(), "test", "rules", str(RULES_TESTS)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_is_tested_firing_and_silent() -> None:
    tests = yaml.safe_load(RULES_TESTS.read_text())["tests"]
    cases = [case for t in tests for case in t["alert_rule_test"]]
    for rule in _rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"nothing tests that {rule['alert']} fires"
        assert any(not c["exp_alerts"] for c in mine), f"nothing tests that {rule['alert']} stays silent"


def test_the_alerts_an_operator_needs_are_there_with_what_to_do() -> None:
    rules = {r["alert"]: r for r in _rules()}
    assert set(rules) == {
        "BuildtailDown",
        "BuildtailTargetMissing",
        "BuildtailAbsent",
        "BuildtailDeliveryPaused",
        "BuildtailQueueTooOld",
        "BuildtailDeadLettersGrowing",
        "BuildtailCompassRateLimited",
        "BuildtailNotDelivering",
    }
    for name, rule in rules.items():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 100, name
    for name in ("BuildtailDeliveryPaused", "BuildtailNotDelivering"):
        description = rules[name]["annotations"]["description"]
        for command in ("buildtail status", "buildtail doctor", "systemctl reload buildtail"):
            assert command in description, (name, command)


def test_the_rules_name_only_what_the_daemon_exports(exported: Exported) -> None:
    found = {r["alert"]: problems(r["expr"], exported) for r in _rules()}
    assert {alert: p for alert, p in found.items() if p} == {}


# --- the dashboard -----------------------------------------------------------------------------------


def test_the_dashboard_names_only_what_the_daemon_exports(exported: Exported) -> None:
    found = {
        f"{title}: {expr}": problems(_grafana_to_promql(expr), exported)
        for title, expr in _dashboard_queries()
    }
    assert {query: p for query, p in found.items() if p} == {}


def test_the_dashboard_shows_every_metric(exported: Exported) -> None:
    """Each metric appears on some panel; ``buildtail_up`` is left to Prometheus's own ``up``, which
    also says when the scrape fails, and ``_created`` only dates a counter's start."""
    used = {
        name for _, expr in _dashboard_queries() for name, _ in references(_grafana_to_promql(expr)).selectors
    }
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exported if not n.endswith("_created")}
    shown = {
        f
        for f in families
        if any(u == f or re.fullmatch(rf"{f}_(total|bucket|sum|count)", u or "") for u in used)
    }
    assert families - shown == {"buildtail_up"}


def test_the_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """promtool parses each panel's query (the variables replaced by values) as a recording rule."""
    exprs = [_grafana_to_promql(t["expr"]) for p in _dashboard()["panels"] for t in p["targets"]]
    rules = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"q{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout


def test_the_dashboard_is_a_grafana_dashboard_with_a_host_selector() -> None:
    dash = _dashboard()
    assert dash["uid"] == "buildtail" and dash["title"] and isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    for name in ("job", "instance"):
        var = variables[name]
        assert var["type"] == "query" and var["multi"] and var["includeAll"] and var["allValue"] == ".+"
        assert var["datasource"]["uid"] == "${datasource}"
        assert var["query"]["query"].endswith(f", {name})"), var["query"]
    taken: set[tuple[int, int]] = set()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        title = panel["title"]
        assert panel["type"] in ("stat", "timeseries", "state-timeline"), title
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["targets"], title
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["w"] > 0 and pos["h"] > 0, title
        cells = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{title} overlaps another panel"
        taken |= cells
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), title
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], title
            for name, matchers in references(target["expr"]).selectors:
                assert ("job", "=~", "$job") in matchers, (title, name)
                if not title.startswith(FLEET_PANEL):
                    assert ("instance", "=~", "$instance") in matchers, (title, name)


# --- the exported metrics themselves -------------------------------------------------------------------


def test_promtool_finds_nothing_to_lint_in_the_daemon_s_metrics(scrape: str) -> None:
    proc = subprocess.run(
        [_promtool(), "check", "metrics"], input=scrape, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


def test_the_daemon_exports_what_the_alerts_need(exported: Exported) -> None:
    assert "buildtail_delivery_paused" in exported
    assert exported["buildtail_delivery_paused_reason"] == {"reason"}  # BuildtailDeliveryPaused's cause
    assert "buildtail_rate_limit_current_per_minute" in exported
    assert exported["buildtail_events_sent_total"] == {"outcome", "status"}
    assert exported["buildtail_runs_detected_total"] == {"kind", "state"}
