"""YAML configuration -> validated, frozen settings.

Every problem is reported at once, each as ``file:line: key.path: message`` so an operator can fix a
config in one pass. ``${VAR}`` is substituted after parsing and only inside string scalars, so an
environment value can never inject YAML; an unset variable is an error, not an empty string.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from daemon.config.settings import Settings

__all__ = ["ConfigError", "load_settings"]

_ENV = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A configuration that cannot be used; ``errors`` holds one ``file:line: key: message`` each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# --- YAML with line numbers -------------------------------------------------------------------------


@dataclass
class _Doc:
    data: Any
    lines: dict[tuple[str | int, ...], int]
    errors: list[str]  # found while reading (unset ${VAR}, duplicate keys); validation adds the rest


def _construct(
    node: yaml.Node,
    path: tuple[str | int, ...],
    doc_lines: dict[Any, int],
    errors: list[str],
    fname: str,
    lenient: bool = False,
) -> Any:
    doc_lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader("").construct_object(key_node, deep=True)
            if not isinstance(key, str | int | bool):
                errors.append(
                    f"{fname}:{key_node.start_mark.line + 1}: {_dotted(path)}: keys must be scalars"
                )
                continue
            skey = str(key) if not isinstance(key, bool) else ("true" if key else "false")
            if skey in out:
                errors.append(
                    f"{fname}:{key_node.start_mark.line + 1}: {_dotted((*path, skey))}: duplicate key"
                )
            doc_lines[(*path, skey)] = key_node.start_mark.line + 1
            out[skey] = _construct(value_node, (*path, skey), doc_lines, errors, fname, lenient)
            doc_lines[(*path, skey)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(n, (*path, i), doc_lines, errors, fname, lenient) for i, n in enumerate(node.value)
        ]
    value = yaml.SafeLoader("").construct_object(node, deep=True)
    if isinstance(value, str) and node.tag == "tag:yaml.org,2002:str":
        value = _expand_env(value, path, node.start_mark.line + 1, errors, fname, lenient)
    return value


_SECRET_KEYS = {("compass", "api_token"), ("compass", "api_token_file")}


def _expand_env(
    value: str, path: tuple[str | int, ...], line: int, errors: list[str], fname: str, lenient: bool
) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name = m.group(1)
        if name not in os.environ:
            if lenient and path in _SECRET_KEYS:
                return "unset"  # a command that needs no credentials (status) must not demand them
            errors.append(f"{fname}:{line}: {_dotted(path)}: environment variable {name} is not set")
            return ""
        return os.environ[name]

    return _ENV.sub(sub, value)


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _load_yaml(text: str, fname: str, lenient: bool) -> _Doc:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{fname}:{line}: (top level): not valid YAML: {problem}"]) from None
    if node is None:
        raise ConfigError([f"{fname}:1: (top level): the file is empty"])
    lines: dict[Any, int] = {}
    errors: list[str] = []
    data = _construct(node, (), lines, errors, fname, lenient)
    if not isinstance(data, dict):
        raise ConfigError([*errors, f"{fname}:1: (top level): expected a mapping of settings"])
    return _Doc(data, lines, errors)


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


_TAGS = {"jenkins", "log", "result_file"}


def _line_for(loc: tuple[str | int, ...], lines: dict[Any, int]) -> int:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return 1


def _errors_of(exc: ValidationError, doc: _Doc, fname: str) -> Iterator[str]:
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic reports discriminated/tagged members and dict keys with extra segments; keep real keys
        loc = tuple(p for p in loc if p != "[key]")
        # a tagged union adds the tag after the list index: sources[1].log.rules -> sources[1].rules
        loc = tuple(p for i, p in enumerate(loc) if not (i and isinstance(loc[i - 1], int) and p in _TAGS))
        yield f"{fname}:{_line_for(loc, doc.lines)}: {_dotted(loc)}: {_message(err)}"


def load_settings(path: Path, *, need_secrets: bool = True) -> Settings:
    """Reads, substitutes and validates a configuration file; raises ConfigError with every problem.

    ``need_secrets=False`` is for commands that never talk to Compass (``status``): an operator's
    shell has no ``$CREDENTIALS_DIRECTORY`` or token variable, and does not need one to look.
    """
    fname = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{fname}:1: (top level): cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{fname}:1: (top level): the file is not UTF-8 text"]) from None
    doc = _load_yaml(text, fname, not need_secrets)
    errors = list(doc.errors)
    try:
        context = {"base_dir": path.resolve().parent, "lenient": not need_secrets}
        settings = Settings.model_validate(doc.data, context=context)
    except ValidationError as exc:
        # a key whose ${VAR} was unset is already reported; its empty stand-in needs no second error
        reported = {e.split(": ", 2)[1] for e in doc.errors if e.count(": ") >= 2}
        errors += [e for e in _errors_of(exc, doc, fname) if e.split(": ", 2)[1] not in reported]
    if errors:
        raise ConfigError(sorted(set(errors), key=_sort_key))
    return settings


def _sort_key(line: str) -> tuple[int, str]:
    try:
        return int(line.split(":")[1]), line
    except (IndexError, ValueError):
        return 0, line
