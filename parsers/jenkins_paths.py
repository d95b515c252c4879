"""Pure string rules for names and paths inside JENKINS_HOME.

Kept free of filesystem access so the watcher's decisions (is this a build? which job?) can be
tested exhaustively without building directory trees.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from fnmatch import fnmatchcase

# Containers whose children are items named by the next segment: folders, multibranch projects
# (branch-api stores branches in "branches") and Maven module sets.
_ITEM_CONTAINERS = frozenset({"jobs", "branches", "modules"})
_MATRIX_CONTAINER = "configurations"
_AXIS_PREFIX = "axis-"
_BUILD_NUMBER = re.compile(r"[1-9][0-9]*")
_JAVA_INT_MAX = 2**31 - 1
_LEGACY_DIR = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d")
_PERMALINKS = frozenset(
    {
        "lastBuild",
        "lastStableBuild",
        "lastSuccessfulBuild",
        "lastFailedBuild",
        "lastUnstableBuild",
        "lastUnsuccessfulBuild",
        "lastCompletedBuild",
        "lastStable",
        "lastSuccessful",
    }
)
_BOOKKEEPING = frozenset({"permalinks", "legacyIds"})
_TEMP_PATTERNS = ("*atomic*tmp", "atomic*.tmp")
# Same syntax as Jenkins' Util.replaceMacro: $NAME or ${NAME}.
_MACRO = re.compile(r"\$([A-Za-z0-9_]+|\{[A-Za-z0-9_.]+\})")


def _valid_segment(segment: str) -> bool:
    return bool(segment) and not segment.startswith(".") and "/" not in segment


def _matrix_combination(axes: Sequence[str]) -> str | None:
    if not axes or len(axes) % 2:
        return None
    pairs: list[str] = []
    for axis_dir, value in zip(axes[::2], axes[1::2], strict=True):
        axis = axis_dir.removeprefix(_AXIS_PREFIX)
        if not axis_dir.startswith(_AXIS_PREFIX) or not axis:
            return None
        pairs.append(f"{axis}={value}")
    return ",".join(pairs)


def job_full_name(parts: Sequence[str]) -> str | None:
    """Jenkins' full name for a job directory, or None when the path is not a job directory."""
    if not parts or not all(_valid_segment(p) for p in parts):
        return None
    names = [parts[0]]
    index = 1
    while index < len(parts):
        container = parts[index]
        if container == _MATRIX_CONTAINER:
            combination = _matrix_combination(parts[index + 1 :])
            if combination is None:
                return None
            names.append(combination)
            break
        if container not in _ITEM_CONTAINERS or index + 1 >= len(parts):
            return None
        names.append(parts[index + 1])
        index += 2
    return "/".join(names)


def build_dir_number(name: str) -> int | None:
    """The build number of a canonical build directory; renamed, legacy and temp names are not builds."""
    if not _BUILD_NUMBER.fullmatch(name):
        return None
    number = int(name)
    return number if number <= _JAVA_INT_MAX else None


def legacy_build_dir_time(name: str) -> datetime | None:
    """Start time encoded in a pre-1.597 build directory name (server local time, so no zone)."""
    if not _LEGACY_DIR.fullmatch(name):
        return None
    try:
        return datetime.strptime(name, "%Y-%m-%d_%H-%M-%S")
    except ValueError:
        return None


def is_ignored_name(name: str) -> bool:
    """Names the watcher must never treat as build records: deletions, temp files, permalinks."""
    if name.startswith("."):
        return True
    if name in _PERMALINKS or name in _BOOKKEEPING:
        return True
    return any(fnmatchcase(name, pattern) for pattern in _TEMP_PATTERNS)


def expand_builds_dir(template: str, *, jenkins_home: str, item_rootdir: str, item_full_name: str) -> str:
    """Expand <buildsDir> exactly like Jenkins, so custom build roots map back to their jobs."""
    values: Mapping[str, str] = {
        "JENKINS_HOME": jenkins_home,
        "ITEM_ROOTDIR": item_rootdir,
        # Jenkins keeps the deprecated alias unescaped; only ITEM_FULL_NAME is made path-safe.
        "ITEM_FULLNAME": item_full_name,
        "ITEM_FULL_NAME": item_full_name.replace(":", "$"),
    }

    def replace(match: re.Match[str]) -> str:
        key = match.group(1).removeprefix("{").removesuffix("}")
        return values.get(key, match.group(0))

    return _MACRO.sub(replace, template)


_ITEM_UNSAFE = frozenset('%/\\:?#*|<>"[]')


def encode_item_name(name: str) -> str:
    """A branch name as branch-api's NameEncoder makes it an item name: unsafe characters %-encoded.

    ``feature/login`` is the item ``feature%2Flogin``; that is the name in Jenkins URLs and in
    ``${ITEM_FULL_NAME}``, while the directory on disk has a mangled name of its own.
    """
    return "".join(f"%{ord(c):02X}" if c in _ITEM_UNSAFE else c for c in name)


def parse_next_build_number(data: bytes) -> int | None:
    """The number the next build will get, read like Jenkins does (trimmed integer text)."""
    text = data.decode("ascii", errors="replace").strip()
    return build_dir_number(text)
