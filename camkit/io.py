"""Atomic writes, and reading config files.

Every file camkit writes goes through a temporary file in the same folder that is renamed
into place once complete, so an interrupted or failed run never leaves a half-written file
and never destroys the previous version. A config file is read as UTF-8 YAML through PyYAML's safe loader (a key
given twice refused); every problem is one CamkitError naming the file and, where PyYAML knows it, the line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from camkit.errors import CamkitError


def check_destination(path: Path | str, option: str) -> None:
    """Refuse an output folder that cannot be made or written, naming ``option`` and the path; creates nothing.

    The path must be a folder or not exist yet; the first folder that exists above it must be writable, and every
    name still to be made must fit the file system's limit (``PC_NAME_MAX``) and the whole path its ``PC_PATH_MAX``.
    """
    path = Path(path)
    where = f"{option} {path}"
    if os.path.lexists(path) and not os.path.isdir(path):  # os.path: no error on a name too long
        raise CamkitError(f"{where}: a file is there, not a folder")
    existing, missing = path.absolute(), []
    while not os.path.lexists(existing) and existing != existing.parent:
        missing.insert(0, existing.name)
        existing = existing.parent
    if not os.path.isdir(existing):
        raise CamkitError(f"{where}: {existing} is a file, so the folder cannot be made")
    name_max, path_max = (_pathconf(existing, key) for key in ("PC_NAME_MAX", "PC_PATH_MAX"))
    for name in missing:
        if len(os.fsencode(name)) > name_max:
            raise CamkitError(f"{where}: the name {name[:24]}... has {len(os.fsencode(name))} bytes, more than the "
                              f"file system allows ({name_max})")
    if len(os.fsencode(str(path.absolute()))) >= path_max:
        raise CamkitError(f"{where}: the path is longer than the file system allows ({path_max} bytes)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CamkitError(f"{where}: {existing} is not writable")


def _pathconf(folder: Path, key: str) -> int:
    try:
        return os.pathconf(folder, key)
    except (OSError, ValueError):  # the limit is unknown here: the common Linux limits
        return {"PC_NAME_MAX": 255, "PC_PATH_MAX": 4096}[key]


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private; the result should look like any written file
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_text(path: Path | str, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=jsonable) + "\n")


def jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def replace_marked_block(path: Path | str, name: str, text: str) -> Path:
    """Replace what stands between ``<!-- name -->`` and ``<!-- /name -->`` lines of a text file, atomically."""
    path = Path(path)
    pattern = re.compile(rf"(<!-- {re.escape(name)} -->\n).*?(<!-- /{re.escape(name)} -->)", re.S)
    content = path.read_text()
    if not pattern.search(content):
        raise ValueError(f"{path} has no <!-- {name} --> ... <!-- /{name} --> block")
    body = text if text.endswith("\n") else text + "\n"  # the closing marker keeps its own line
    return atomic_write_text(path, pattern.sub(lambda m: m.group(1) + body + m.group(2), content))


def replace_dir_atomically(folder: Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh temporary folder, then swap it in place of ``folder`` (old copy kept on failure)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should look like any folder
    try:
        fill(tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def descriptor_2_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration: C libraries (TensorFlow's absl and CUDA
    start-up lines, libjpeg's complaints about a corrupt file) write there directly."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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
