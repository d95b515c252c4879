"""YAML configuration -> validated, frozen settings.

Every problem is reported at once, each as ``file:line: key.path: message`` so an operator can fix a
config in one pass; a misspelt key, value, source type or preset name gets the closest name allowed
at that place (``unknown key (did you mean rate_limit_per_minute?)``). ``${VAR}`` is substituted
after parsing and only inside string scalars, so an environment value can never inject YAML; an
unset variable is an error, not an empty string.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from daemon.config.settings import Settings
from daemon.config.sources import PRESETS, expand_preset
from daemon.config.yamlfile import ConfigError, YamlDoc, dotted, load_yaml

__all__ = ["ConfigError", "load_settings"]

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


def _errors_of(exc: ValidationError, doc: YamlDoc, fname: str) -> Iterator[str]:
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
        yield f"{fname}:{_line_for(loc, doc.lines)}: {dotted(loc)}: {message}"


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
    doc = load_yaml(text, fname, not need_secrets)
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
