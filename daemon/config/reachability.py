"""Parts of ``compass.deployments`` that can never take effect: ``check-config``'s warnings.

The configuration is legal, so these are warnings, not errors: a rule no job can reach because an
earlier rule takes every job it names (the first rule that matches decides), an ``environments``
key no value can reach because an earlier key takes every value it names (the first key that
matches decides), and an ``environment_from_job`` expression that cannot match the one job its rule
names. Each test is sound rather than complete: a warning is given only where "never" is certain,
and a subtler overlap goes unreported.
"""

from __future__ import annotations

from daemon.config.deployments import DeploymentRule, environment_key_matches, job_environment_pattern
from daemon.config.values import job_matches

__all__ = ["deployment_warnings", "glob_covers", "key_covers"]

_GLOB_WILD = "*?"
_KEY_WILD = "*?["


def _literal_prefix(pattern: str, wild: str) -> str:
    """The part of a pattern before its first wildcard."""
    for i, ch in enumerate(pattern):
        if ch in wild:
            return pattern[:i]
    return pattern


def glob_covers(earlier: str, later: str) -> bool:
    """Whether every job full name ``later`` matches is matched by ``earlier`` too (job globs:
    ``*`` and ``?`` stay inside one folder, ``**`` crosses folders).

    Certain cases only: equal patterns; a literal ``later`` that ``earlier`` matches; ``earlier``
    being a literal prefix then ``**`` (anything after the prefix), or a literal prefix then ``*``
    when ``later`` starts with that prefix and its rest cannot cross a folder.
    """
    if earlier == later:
        return True
    if not any(ch in later for ch in _GLOB_WILD):
        return job_matches(earlier, later)
    prefix = _literal_prefix(earlier, _GLOB_WILD)
    rest = earlier[len(prefix) :]
    if rest not in ("**", "*") or not _literal_prefix(later, _GLOB_WILD).startswith(prefix):
        return False
    if rest == "**":
        return True
    tail = later[len(prefix) :]
    return "/" not in tail and "**" not in tail


def key_covers(earlier: str, later: str) -> bool:
    """Whether every value the ``environments`` key ``later`` matches is matched by ``earlier`` too
    (fnmatch over the whole value, ignoring case; ``*`` matches anything).

    Certain cases only: keys equal but for case; a literal ``later`` that ``earlier`` matches; and
    ``earlier`` being a literal prefix then ``*`` when ``later`` starts with that prefix.
    """
    if earlier.lower() == later.lower():
        return True
    if not any(ch in later for ch in _KEY_WILD):
        return environment_key_matches(earlier, later)
    prefix = _literal_prefix(earlier, _KEY_WILD)
    if earlier[len(prefix) :] != "*":
        return False
    return _literal_prefix(later, _KEY_WILD).lower().startswith(prefix.lower())


def _scope_covers(earlier: DeploymentRule, later: DeploymentRule) -> bool:
    return earlier.source is None or earlier.source == later.source


def deployment_warnings(rules: tuple[DeploymentRule, ...]) -> list[str]:
    """One line per rule, key or expression of ``compass.deployments`` that can never take effect."""
    out: list[str] = []
    for i, rule in enumerate(rules):
        at = f"compass.deployments[{i}]"
        for j, earlier in enumerate(rules[:i]):
            if _scope_covers(earlier, rule) and glob_covers(earlier.match, rule.match):
                scope = "" if earlier.source is None else f" in source {earlier.source!r}"
                out.append(
                    f"{at} (match {rule.match!r}) never applies: it is shadowed by rule {j} "
                    f"(match {earlier.match!r}{scope}), which comes first and names every job it names"
                )
                break
        keys = list(rule.environments)
        for k, key in enumerate(keys):
            for earlier_key in keys[:k]:
                if key_covers(earlier_key, key):
                    out.append(
                        f"{at}.environments.{key}: never used: it is shadowed by the key {earlier_key!r} "
                        "before it, which matches every value it matches (keys ignore case)"
                    )
                    break
        regex = rule.environment_from_job
        literal = not any(ch in rule.match for ch in _GLOB_WILD)
        if regex is not None and literal and job_environment_pattern(regex).search(rule.match) is None:
            out.append(
                f"{at}.environment_from_job: {regex!r} does not match {rule.match!r}, the only job "
                "the rule names: its runs are sent as builds"
            )
    return out
