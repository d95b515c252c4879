"""What ``buildtail status`` needs of a configuration, read without its models.

Status only needs to know where the state database is and whether events go to Compass at all, and
it must answer at once and without credentials (an operator's shell has no ``$CREDENTIALS_DIRECTORY``).
So the file is read as YAML with ``${VAR}`` substitution, the way ``load_settings`` reads it, and
only ``state_dir`` and the presence of ``compass`` and ``jira`` are taken from it; everything else is left to
``check-config``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.config.values import default_state_dir, resolve
from daemon.config.yamlfile import ConfigError, load_yaml

__all__ = ["StatusSettings", "read_status_settings"]


@dataclass(frozen=True, slots=True)
class StatusSettings:
    state_dir: Path
    compass: dict[str, Any] | None  # the compass section as written; None: events go to stdout
    jira: dict[str, Any] | None = None  # the jira section as written; None: nothing goes to Jira


def read_status_settings(path: Path) -> StatusSettings:
    fname = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{fname}:1: (top level): cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{fname}:1: (top level): the file is not UTF-8 text"]) from None
    doc = load_yaml(text, fname, True)
    state_dir = doc.data.get("state_dir")
    compass = doc.data.get("compass")
    jira = doc.data.get("jira")
    errors = [e for e in doc.errors if ": state_dir: " in e]
    if state_dir is not None and not (isinstance(state_dir, str) and state_dir.strip()):
        errors.append(f"{fname}:{doc.lines.get(('state_dir',), 1)}: state_dir: expected a directory path")
    if errors:
        raise ConfigError(errors)
    where = default_state_dir() if state_dir is None else resolve(Path(state_dir), path.resolve().parent)
    return StatusSettings(
        where, compass if isinstance(compass, dict) else None, jira if isinstance(jira, dict) else None
    )
