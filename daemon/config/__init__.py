"""The configuration: one YAML file -> validated, frozen settings (``load_settings``).

``settings`` holds the models of the top level and of Compass, ``sources`` those of each kind of
source and the presets, ``types`` the pydantic side of the values they share and ``values`` the
values themselves, ``yamlfile`` the reading and ``${VAR}`` substitution, ``loading`` the validation
and its ``file:line`` errors, and ``light`` what ``status`` reads without the models.

The names below are imported on first use: a command that needs only a value (``--version``,
``status``) does not pay for building the models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.config.jira import JiraSettings
    from daemon.config.loading import load_settings
    from daemon.config.settings import (
        CompassSettings,
        ComponentRule,
        MetricsSettings,
        Settings,
        config_json_schema,
    )
    from daemon.config.sources import (
        JenkinsSourceSettings,
        LogRules,
        LogSourceSettings,
        ResultFileSourceSettings,
        SourceSettings,
        expand_preset,
    )
    from daemon.config.values import parse_duration, parse_listen
    from daemon.config.yamlfile import ConfigError

_WHERE = {
    "load_settings": "loading",
    "JiraSettings": "jira",
    "CompassSettings": "settings",
    "ComponentRule": "settings",
    "MetricsSettings": "settings",
    "Settings": "settings",
    "config_json_schema": "settings",
    "JenkinsSourceSettings": "sources",
    "LogRules": "sources",
    "LogSourceSettings": "sources",
    "ResultFileSourceSettings": "sources",
    "SourceSettings": "sources",
    "expand_preset": "sources",
    "parse_duration": "values",
    "parse_listen": "values",
    "ConfigError": "yamlfile",
}

__all__ = [
    "CompassSettings",
    "ComponentRule",
    "ConfigError",
    "JenkinsSourceSettings",
    "JiraSettings",
    "LogRules",
    "LogSourceSettings",
    "MetricsSettings",
    "ResultFileSourceSettings",
    "Settings",
    "SourceSettings",
    "config_json_schema",
    "expand_preset",
    "load_settings",
    "parse_duration",
    "parse_listen",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
