"""Which runs count (``daemon.scope``): each rule and its reason, the recorder applying it before
the history policy, and a change of the rules making history of what the rules before left out.
Real settings, a real store, the real recorder and history policy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from daemon.events import RunFacts
from daemon.history import HistoryPolicy, scope_key
from daemon.recorder import Recorder
from daemon.scope import Scope, exclusion
from daemon.store import Store
from parsers import BranchHead

START = 1_700_000_000_000
MAIN = BranchHead(name="main", kind="branch", primary=True)
FEATURE = BranchHead(name="feature/x", kind="branch")
RELEASE = BranchHead(name="release/2.0", kind="branch")
PR = BranchHead(name="PR-1", kind="pull_request", pr_id="1", pr_title="Fix", pr_target="main")
TAG = BranchHead(name="v1.0", kind="tag")
ODD = BranchHead(name="trunk", kind=None)
ODD_PRIMARY = BranchHead(name="trunk", kind=None, primary=True)


def _settings(tmp_path: Path, **source: Any) -> Settings:
    return Settings.model_validate(
        {
            "host": "ci.example.com",
            "state_dir": str(tmp_path / "state"),
            "sources": [{"type": "jenkins", "home": str(tmp_path), **source}],
        }
    )


def _facts(job: str = "shop/main", head: BranchHead | None = MAIN, **kw: Any) -> RunFacts:
    base = RunFacts(
        source="jenkins",
        job=job,
        number=1,
        running=False,
        start_ms=START,
        start_is_exact=True,
        result="SUCCESS",
        end_ms=START + 1000,
        written_ms=START + 1000,
        head=head,
    )
    return replace(base, **kw)


@pytest.mark.parametrize(
    ("source", "job", "head", "reason"),
    [
        ({}, "shop/PR-1", PR, None),  # the defaults count everything
        ({}, "shop/v1.0", TAG, None),
        ({}, "nightly-backup", None, None),
        (
            {"exclude": ["housekeeping/*"]},
            "housekeeping/backup",
            None,
            "excluded by exclude 'housekeeping/*' (source jenkins)",
        ),
        ({"exclude": ["housekeeping/*"]}, "housekeeping/deep/seed", None, None),  # * stays in a folder
        ({"exclude": ["housekeeping/**"]}, "housekeeping/deep/seed", None, "excluded by exclude"),
        ({"include": ["shop/**"]}, "other/app", None, "not included by include ['shop/**'] (source jenkins)"),
        (
            {"include": ["shop/**"], "exclude": ["shop/PR-*"]},
            "shop/PR-1",
            PR,
            "excluded by exclude 'shop/PR-*'",
        ),
        ({"pull_requests": False}, "shop/PR-1", PR, "pull request (pull_requests: false)"),
        ({"pull_requests": False}, "shop/main", MAIN, None),
        ({"tags": False}, "shop/v1.0", TAG, "tag (tags: false)"),
        ({"branches": "primary"}, "shop/main", MAIN, None),
        ({"branches": "primary"}, "shop/feature/x", FEATURE, "not the primary branch (branches: primary)"),
        ({"branches": "primary"}, "shop/PR-1", PR, None),  # pull requests are pull_requests' to say
        ({"branches": "primary"}, "shop/v1.0", TAG, None),
        ({"branches": "primary"}, "shop/trunk", ODD, "not the primary branch (branches: primary)"),
        ({"branches": "primary"}, "shop/trunk", ODD_PRIMARY, None),
        ({"branches": "primary"}, "nightly-backup", None, None),  # no head: not concerned
        ({"branches": ["main", "release/*"]}, "shop/release/2.0", RELEASE, None),
        (
            {"branches": ["main", "release/*"]},
            "shop/feature/x",
            FEATURE,
            "branch 'feature/x' not matched by branches ['main', 'release/*']",
        ),
        (
            {"branches": "primary", "pull_requests": False, "tags": False, "exclude": ["housekeeping/*"]},
            "shop/main",
            MAIN,
            None,
        ),
    ],
)
def test_each_rule_and_its_reason(
    tmp_path: Path, source: dict[str, Any], job: str, head: BranchHead | None, reason: str | None
) -> None:
    got = exclusion(_settings(tmp_path, **source), _facts(job, head))
    if reason is None:
        assert got is None
    else:
        assert got is not None and got.startswith(reason), got


def test_file_sources_filter_their_pipelines(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "host": "ci.example.com",
            "sources": [
                {
                    "type": "result_file",
                    "name": "results",
                    "paths": [str(tmp_path / "*.json")],
                    "exclude": ["nightly-*"],
                }
            ],
        }
    )
    got = exclusion(settings, _facts("nightly-backup", None, source="results", number="7"))
    assert got == "excluded by exclude 'nightly-*' (source results)"
    assert exclusion(settings, _facts("deploy-shop", None, source="results")) is None


def _recorder(tmp_path: Path, settings: Settings, store: Store) -> Recorder:
    return Recorder(store, settings, history=HistoryPolicy.for_daemon(store, ["jenkins"], START - 1))


def test_an_excluded_run_is_never_recorded(tmp_path: Path) -> None:
    settings = _settings(tmp_path, pull_requests=False)
    store = Store(tmp_path / "state")
    recorder = _recorder(tmp_path, settings, store)
    assert recorder.record(_facts("shop/PR-1", PR, running=True, result=None, end_ms=None)) is None
    assert recorder.record(_facts("shop/PR-1", PR)) is None
    assert store.latest_run("jenkins", "shop/PR-1", 1) is None
    assert recorder.record(_facts("shop/main", MAIN)) is not None
    store.close()


def test_a_run_shown_in_progress_is_told_its_end_after_the_rules_change(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    recorder = _recorder(tmp_path, _settings(tmp_path), store)
    assert recorder.record(_facts("shop/PR-1", PR, running=True, result=None, end_ms=None)) is not None
    recorder.settings = _settings(tmp_path, pull_requests=False)  # a reload
    assert recorder.record(_facts("shop/PR-1", PR)) is not None  # else Compass shows it running for good
    assert recorder.record(_facts("shop/PR-1", PR, number=2)) is None
    store.close()


def test_a_job_switched_on_sends_its_new_runs_not_those_it_had_while_off(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    off = _settings(tmp_path, exclude=["housekeeping/*"])
    policy = HistoryPolicy.for_daemon(store, ["jenkins"], START - 1)
    policy.note_scopes(store, off.sources, START - 1)
    assert store.get_meta_json(scope_key("jenkins"))["changes"] == []  # the first rules: no change
    changed = START + 10_000
    on = _settings(tmp_path)
    policy.note_scopes(store, on.sources, changed)
    backup = _facts("housekeeping/backup", None)
    assert not policy.admits(backup, None, arrived=False)  # finished while it was off: history
    assert policy.admits(_facts("shop/main"), None, arrived=False)  # counted before too: not history
    assert policy.admits(backup, None, arrived=True)  # seen to arrive: news
    assert policy.admits(replace(backup, running=True, result=None, end_ms=None), None, arrived=False)
    later = replace(backup, number=2, end_ms=changed + 1, written_ms=changed + 1)
    assert policy.admits(later, None, arrived=False)  # finished since the change
    # a restart with the same rules keeps the change and its time
    again = HistoryPolicy.for_daemon(store, ["jenkins"], changed + 50_000)
    again.note_scopes(store, on.sources, changed + 50_000)
    assert [c["changed_ms"] for c in store.get_meta_json(scope_key("jenkins"))["changes"]] == [changed]
    assert not again.admits(backup, None, arrived=False)
    store.close()


def test_a_second_change_of_rules_keeps_the_first_ones_history(tmp_path: Path) -> None:
    """Off, then on, then an unrelated exclude: a run that finished while the job was off stays
    history after the second change (judged by the rules in force when it finished)."""
    store = Store(tmp_path / "state")
    policy = HistoryPolicy.for_daemon(store, ["jenkins"], START - 1)
    policy.note_scopes(store, _settings(tmp_path, exclude=["housekeeping/*"]).sources, START - 1)
    policy.note_scopes(store, _settings(tmp_path).sources, START + 10_000)
    backup = _facts("housekeeping/backup", None)  # finished at START + 1000, while it was off
    assert not policy.admits(backup, None, arrived=False)
    policy.note_scopes(store, _settings(tmp_path, exclude=["other/*"]).sources, START + 20_000)
    assert not policy.admits(backup, None, arrived=False)
    between = replace(backup, number=2, end_ms=START + 15_000, written_ms=START + 15_000)
    assert policy.admits(between, None, arrived=False)  # finished while it was on
    restarted = HistoryPolicy.for_daemon(store, ["jenkins"], START + 30_000)
    restarted.note_scopes(store, _settings(tmp_path, exclude=["other/*"]).sources, START + 30_000)
    assert not restarted.admits(backup, None, arrived=False) and restarted.admits(
        between, None, arrived=False
    )
    store.close()


def test_the_first_form_of_the_rules_record_is_read(tmp_path: Path) -> None:
    """A database written before several changes were kept holds one change (before, changed_ms)."""
    store = Store(tmp_path / "state")
    off = _settings(tmp_path, exclude=["housekeeping/*"])
    first_form = {
        "rules": Scope.of(_settings(tmp_path).sources[0]).fingerprint(),
        "before": Scope.of(off.sources[0]).fingerprint(),
        "changed_ms": START + 10_000,
    }
    store.set_meta_json(scope_key("jenkins"), first_form)
    policy = HistoryPolicy.for_daemon(store, ["jenkins"], START + 20_000)
    policy.note_scopes(store, _settings(tmp_path).sources, START + 20_000)
    assert not policy.admits(_facts("housekeeping/backup", None), None, arrived=False)
    store.close()
