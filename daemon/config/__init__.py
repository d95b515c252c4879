"""The configuration: one YAML file -> validated, frozen settings (``load_settings``).

``settings`` holds the models of the top level and of Compass, ``sources`` those of each kind of
source and the presets, ``types`` the value types they share, and ``loading`` the reading, ``${VAR}``
substitution and ``file:line`` error reporting.
"""

from daemon.config.loading import ConfigError, load_settings
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
from daemon.config.types import (
    COMPASS_STATES,
    DEFAULT_STATE_MAP,
    JENKINS_RESULTS,
    parse_duration,
    parse_listen,
)

__all__ = [
    "COMPASS_STATES",
    "DEFAULT_STATE_MAP",
    "JENKINS_RESULTS",
    "CompassSettings",
    "ComponentRule",
    "ConfigError",
    "JenkinsSourceSettings",
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
