"""Reading a config file: UTF-8 YAML through PyYAML's safe loader, a key given twice refused, every problem one
CamkitError naming the file and, where PyYAML knows it, the line and column."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import yaml

from camkit.errors import CamkitError


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (plain values, never Python objects) that refuses a key given twice."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        with contextlib.suppress(TypeError):  # an unhashable key: construct_mapping names it
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file's top-level mapping; anything else is a CamkitError naming the file (and the line)."""
    if not path.is_file():
        raise CamkitError(f"{path}: {'is a folder, not a config file' if path.is_dir() else 'config file not found'}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CamkitError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise CamkitError(f"{path}{_yaml_problem(exc)}") from None
    except yaml.YAMLError as exc:
        raise CamkitError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise CamkitError(f"{path}: nested too deeply to be a config") from None
    if raw is None:
        raise CamkitError(f"{path}: the config is empty")
    if not isinstance(raw, dict):
        kinds = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false"}
        raise CamkitError(f"{path}: the config must be a mapping of sections, got {kinds.get(type(raw), repr(raw))}")
    return raw


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """`` line L, column C: what is wrong (while parsing X on line K)`` from PyYAML's error."""
    mark, problem = exc.problem_mark or exc.context_mark, exc.problem or exc.context or "not valid YAML"
    tag = re.search(r"constructor for the tag '(?:tag:yaml\.org,2002:)?([^']*)'", problem)
    if tag and tag.group(1).startswith("python/"):
        problem = f"the tag !!{tag.group(1)} would build a Python object; a config holds plain values only"
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    context = ""
    if exc.problem and exc.context:
        since = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
        context = f" ({exc.context}{since})"
    return f"{where}: {problem}{context}"
