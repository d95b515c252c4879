"""YAML configuration -> validated, frozen settings.

Every problem is reported at once, each as ``file:line: key.path: message`` so an operator can fix a
config in one pass; a misspelt key, value, source type or preset name gets the closest name allowed
at that place (``unknown key (did you mean rate_limit_per_minute?)``). ``${VAR}`` is substituted
after parsing and only inside string scalars, so an environment value can never inject YAML; an
unset variable is an error, not an empty string.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from daemon.config.settings import Settings
from daemon.config.sources import PRESETS, expand_preset

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


# --- what was meant -----------------------------------------------------------------------------------


def _did_you_mean(word: object, choices: list[str]) -> str:
    """`` (did you mean X?)`` for the allowed name closest to a typo, or nothing if none is close."""
    if not isinstance(word, str) or not word:
        return ""
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]}?)" if close else ""


def _members(annotation: Any) -> list[Any]:
    """The types a value at this place may have: Annotated and unions (None aside) unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _members(a) if m is not type(None)]
    return [annotation]


def _tag(model: type[BaseModel]) -> str | None:
    """A tagged source's ``type`` value (pydantic puts it into an error's location)."""
    field = model.model_fields.get("type")
    values = get_args(field.annotation) if field is not None else ()
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def _step(annotation: Any, part: str | int) -> Any:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            if isinstance(part, str) and part in member.model_fields:
                return member.model_fields[part].annotation
            if part == _tag(member):
                return member
        elif get_origin(member) in (tuple, list) and isinstance(part, int):
            return get_args(member)[0]
        elif get_origin(member) is dict:
            return get_args(member)[1]
    return None


def _at(loc: tuple[str | int, ...]) -> list[Any]:
    """What the models allow at an error's location (pydantic's, tags included): its member types."""
    annotation: Any = Settings
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    return _members(annotation)


def _keys_at(loc: tuple[str | int, ...]) -> list[str]:
    return [k for m in _at(loc) if isinstance(m, type) and issubclass(m, BaseModel) for k in m.model_fields]


def _literals_at(loc: tuple[str | int, ...]) -> list[str]:
    return [str(v) for m in _at(loc) if get_origin(m) is Literal for v in get_args(m)]


def _tags_at(loc: tuple[str | int, ...]) -> list[str]:
    return [t for m in _at(loc) if isinstance(m, type) and issubclass(m, BaseModel) if (t := _tag(m))]


def _message(err: Any, loc: tuple[str | int, ...]) -> str:
    """``loc`` is pydantic's location, tags included: it says which model's names were allowed."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key" + _did_you_mean(loc[-1], _keys_at(loc[:-1]))
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        tags = _tags_at(loc)
        # the sources are the only tagged union; a preset is the other way to write one
        hint = _did_you_mean(err["ctx"]["tag"], tags) or f" (expected {', '.join(tags)} or a preset)"
        return f"unknown type {err['ctx']['tag']!r}{hint}"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind == "literal_error":
        msg += _did_you_mean(err["input"], _literals_at(loc))
    return msg


_TAGS = {"jenkins", "log", "result_file"}


def _line_for(loc: tuple[str | int, ...], lines: dict[Any, int]) -> int:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return 1


def _preset_at_fault(data: Any) -> tuple[tuple[str | int, ...], str]:
    """Presets are expanded before validation, for the whole list at once, so pydantic places a bad
    one at ``sources``; the source that cannot be expanded is the one meant. With it, a suggestion
    when its name is not a preset's."""
    sources = data.get("sources") if isinstance(data, dict) else None
    for i, source in enumerate(sources if isinstance(sources, list) else []):
        try:
            expand_preset(source)
        except ValueError:
            name = source.get("preset")
            return ("sources", i, "preset"), "" if name in PRESETS else _did_you_mean(name, list(PRESETS))
    return ("sources",), ""


def _errors_of(exc: ValidationError, doc: _Doc, fname: str) -> Iterator[str]:
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic reports discriminated/tagged members and dict keys with extra segments; keep real keys
        loc = tuple(p for p in loc if p != "[key]")
        message = _message(err, loc)
        if err["type"] == "union_tag_invalid":
            loc = (*loc, str(err["ctx"]["discriminator"]).strip("'"))
        elif loc == ("sources",) and err["type"] == "value_error":
            loc, hint = _preset_at_fault(doc.data)
            message += hint
        # a tagged union adds the tag after the list index: sources[1].log.rules -> sources[1].rules
        loc = tuple(p for i, p in enumerate(loc) if not (i and isinstance(loc[i - 1], int) and p in _TAGS))
        yield f"{fname}:{_line_for(loc, doc.lines)}: {_dotted(loc)}: {message}"


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
