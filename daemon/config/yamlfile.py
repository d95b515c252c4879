"""Reading a configuration file: YAML with the line of every key, and ``${VAR}`` substitution.

``${VAR}`` is substituted after parsing and only inside string scalars, so an environment value can
never inject YAML; an unset variable is an error, not an empty string. Free of pydantic: the
validation against the models is ``loading``'s, and ``status`` reads a file without it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["ConfigError", "YamlDoc", "dotted", "load_yaml"]

_ENV = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A configuration that cannot be used; ``errors`` holds one ``file:line: key: message`` each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class YamlDoc:
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
                errors.append(f"{fname}:{key_node.start_mark.line + 1}: {dotted(path)}: keys must be scalars")
                continue
            skey = str(key) if not isinstance(key, bool) else ("true" if key else "false")
            if skey in out:
                errors.append(
                    f"{fname}:{key_node.start_mark.line + 1}: {dotted((*path, skey))}: duplicate key"
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


_SECRET_KEYS = {
    ("compass", "api_token"),
    ("compass", "api_token_file"),
    ("jira", "client_secret"),
    ("jira", "client_secret_file"),
}


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
            errors.append(f"{fname}:{line}: {dotted(path)}: environment variable {name} is not set")
            return ""
        return os.environ[name]

    return _ENV.sub(sub, value)


def dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_yaml(text: str, fname: str, lenient: bool) -> YamlDoc:
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
    return YamlDoc(data, lines, errors)
