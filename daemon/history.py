"""Where history is kept out: may this run, reported by this source, be queued?

History is what finished before buildtail looked: a busy Jenkins home's years of builds, a log's
existing lines, a directory of old result files. The rule, for every kind of source alike:

- each source has a **cutoff**, the time buildtail first saw it: the daemon's very first start for
  the sources configured then, the moment a source was added (by a reload, or between two starts)
  for the others. It is kept in the state database (``history_cutoff_ms:<source>``), so a start
  cut short does not move it. A database from before per-source cutoffs has only the daemon's
  ``history_cutoff_ms``: it stays the cutoff of every source that already left state behind;
- a run first seen finished, whose files were written before its source's cutoff, is history and is
  not queued, unless the source saw it *arrive* after it started looking (a result file moved into
  place with an old time, a line appended to a log): that is news whatever its times say;
- a source's rules of what counts (``daemon.scope``) can change by a reload or between two starts;
  the rules and the time they changed are kept in the state database (``scope:<source>``, with the
  rules before). A run first seen finished, not seen to arrive, that finished before the change
  and that the rules before left out is history too: a job switched on sends its new runs, not the
  runs it had while it was off;
- ``buildtail backfill`` asks for history explicitly: its window admits every run started since.

Sources only report what they read and whether they saw it arrive; they may skip reading what this
policy would keep out anyway (the Jenkins first-start triage, the tailer's start at the end of the
files it finds), which is why ``first_look`` tells them when a source is new.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from daemon.config import SourceSettings
from daemon.events import RunFacts
from daemon.scope import Scope
from daemon.store import RunRow, Store

__all__ = ["GLOBAL_CUTOFF_KEY", "HistoryPolicy", "cutoff_key", "scope_key"]

GLOBAL_CUTOFF_KEY = "history_cutoff_ms"  # the daemon's very first start (0.2.0 databases have only this)


def cutoff_key(source: str) -> str:
    return f"{GLOBAL_CUTOFF_KEY}:{source}"


def scope_key(source: str) -> str:
    return f"scope:{source}"


def _has_state(store: Store, source: str) -> bool:
    """Whether the source was read before: a Jenkins scan's watermark or a file source's checkpoints."""
    return store.get_meta_int(f"watermark:{source}") is not None or bool(store.checkpoints(source))


SCOPE_CHANGES_KEPT = 8


def _scope_record(stored: Any) -> dict[str, Any]:
    """``{"rules": ..., "changes": [{"changed_ms", "before"}, ...]}`` from what the meta key holds,
    including the first form of the record (one change: ``before`` and ``changed_ms``)."""
    if not isinstance(stored, dict):
        return {"rules": None, "changes": []}
    changes = stored.get("changes")
    if not isinstance(changes, list):
        before = stored.get("before")
        changes = [{"changed_ms": stored["changed_ms"], "before": before}] if isinstance(before, dict) else []
    valid = [
        c for c in changes if isinstance(c, dict) and isinstance(c.get("before"), dict) and "changed_ms" in c
    ]
    return {"rules": stored.get("rules"), "changes": valid}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _changes(name: str, stored: dict[str, Any]) -> list[tuple[int, Scope]]:
    return [(int(c["changed_ms"]), Scope.from_fingerprint(name, c["before"])) for c in stored["changes"]]


class HistoryPolicy:
    """The one answer to "is this history?", applied by the recorder to every run it is given."""

    def __init__(self, cutoffs: dict[str, int], *, since_ms: int | None = None) -> None:
        self._cutoffs = cutoffs
        self._new: set[str] = set()
        self._since_ms = since_ms  # backfill's window: everything started since is wanted
        # source -> its last changes of rules, oldest first: (changed at, the rules until then)
        self._scope_changes: dict[str, list[tuple[int, Scope]]] = {}

    @classmethod
    def for_daemon(cls, store: Store, sources: Iterable[str], now_ms: int) -> HistoryPolicy:
        """The daemon's policy: the very first start is recorded before anything else, so a first
        start cut short is not "first" again and does not mistake what finished since for history."""
        policy = cls({})
        if store.get_meta_int(GLOBAL_CUTOFF_KEY) is None:
            store.set_meta_int(GLOBAL_CUTOFF_KEY, now_ms)
        policy.add_sources(store, sources, now_ms)
        return policy

    @classmethod
    def stored(cls, store: Store, sources: Iterable[str]) -> HistoryPolicy:
        """The daemon's policy as the state database holds it, read without writing anything
        (``buildtail explain``, on a read-only database): the cutoffs ``add_sources`` and the
        changes of rules ``note_scopes`` recorded. A source no daemon has started with has no
        cutoff (``cutoff_ms`` is None)."""
        policy = cls({})
        default = store.get_meta_int(GLOBAL_CUTOFF_KEY)
        for source in sources:
            cutoff = store.get_meta_int(cutoff_key(source))
            if cutoff is None and default is not None and _has_state(store, source):
                cutoff = default  # there before per-source cutoffs: add_sources gives it this one
            if cutoff is not None:
                policy._cutoffs[source] = cutoff
            policy._scope_changes[source] = _changes(
                source, _scope_record(store.get_meta_json(scope_key(source)))
            )
        return policy

    @classmethod
    def backfill(cls, since_ms: int) -> HistoryPolicy:
        """``buildtail backfill --since``: history is what was asked for."""
        return cls({}, since_ms=since_ms)

    def add_sources(self, store: Store, sources: Iterable[str], now_ms: int) -> None:
        """Sources met for the first time get their cutoff now (persisted); known ones keep theirs."""
        default = store.get_meta_int(GLOBAL_CUTOFF_KEY)
        for source in sources:
            if source in self._cutoffs:
                continue
            cutoff = store.get_meta_int(cutoff_key(source))
            if cutoff is None:
                old = default is not None and _has_state(store, source)  # there before per-source cutoffs
                cutoff = default if old and default is not None else now_ms
                if not old:
                    self._new.add(source)
                store.set_meta_int(cutoff_key(source), cutoff)
            self._cutoffs[source] = cutoff

    def note_scopes(self, store: Store, sources: Iterable[SourceSettings], now_ms: int) -> None:
        """The sources' rules of what counts, at a start or a reload: rules that differ from the
        stored ones changed now (persisted, with the rules they replace); the same rules keep their
        record, so a restart does not forget it. The last ``SCOPE_CHANGES_KEPT`` changes are kept,
        so that a second change does not make the first one's history news again."""
        for cfg in sources:
            rules = Scope.of(cfg).fingerprint()
            stored = _scope_record(store.get_meta_json(scope_key(cfg.name)))
            if stored["rules"] != rules:
                changes = stored["changes"]
                if stored["rules"] is not None:
                    changes = [*changes, {"changed_ms": now_ms, "before": stored["rules"]}]
                stored = {"rules": rules, "changes": changes[-SCOPE_CHANGES_KEPT:]}
                store.set_meta_json(scope_key(cfg.name), stored)
            self._scope_changes[cfg.name] = _changes(cfg.name, stored)

    def first_look(self, source: str) -> bool:
        """The source is new: everything finished that it finds now is history, so it need not be read."""
        return source in self._new

    def cutoff_ms(self, source: str) -> int | None:
        return self._cutoffs.get(source)

    def admits(self, facts: RunFacts, prior: RunRow | None, *, arrived: bool) -> bool:
        """May this run be queued? ``arrived``: the source saw it appear after it started looking."""
        return self.why_history(facts, prior, arrived=arrived) is None

    def why_history(self, facts: RunFacts, prior: RunRow | None, *, arrived: bool) -> str | None:
        """Why this run is history (kept out), or None when it may be queued: the one rule, which
        ``admits`` applies and ``buildtail explain`` reports."""
        if self._since_ms is not None:
            if facts.start_ms >= self._since_ms:
                return None
            return f"history: started before the backfill window ({_iso(self._since_ms)})"
        if prior is not None or facts.running or arrived:
            return None  # a run already known, one in progress, or one seen to arrive: news
        finished = max(facts.end_ms or 0, facts.written_ms)
        cutoff = self._cutoffs.get(facts.source, 0)
        if finished < cutoff:
            return (
                f"history: finished before buildtail started watching this source ({_iso(cutoff)}); "
                "use buildtail backfill"
            )
        for changed_ms, before in self._scope_changes.get(facts.source, ()):
            if finished < changed_ms:  # the rules in force when it finished: left out then, history now
                left_out = before.exclusion(facts.job, facts.head)
                if left_out is None:
                    return None
                return (
                    f"history: finished before this source's rules changed ({_iso(changed_ms)}), "
                    f"and the rules then left it out ({left_out}); use buildtail backfill"
                )
        return None
