"""Digests of what a stored run is computed from, and what changed between two run records.

A run record (a store's ``run.json``) is ``{"settings": {...}, "inputs": {key: digest}}``. The digests are of
contents (SHA-1 of file bytes, or of a loaded array's bytes), never of names, sizes or times only. Beside one
digest per input, :class:`Digests` keeps each input's per-file digests (``inputs.json`` in the store), so that a
refused rerun can name the files that changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camkit.io import jsonable

SHOWN = 3  # changed files or keys named in an error line
NOUNS = {"model": "the model file", "skip": "the skip list", "maps": "the maps",
         "true_classes": "the images' true classes", "series": "the series (their values or labels)"}


def file_digest(path: Path | str) -> str:
    """``sha1:<hex>`` of a file's bytes."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha1:{digest.hexdigest()}"


def digest_files(paths: Sequence[Path], base: Path | None = None) -> tuple[str, dict[str, str]]:
    """One digest of a list of files (their names relative to ``base``, sizes and contents, in order), and each
    file's digest by name."""
    digest, each = hashlib.sha1(), {}
    for path in paths:
        name = Path(path).relative_to(base).as_posix() if base is not None else Path(path).as_posix()
        each[name] = file_digest(path)
        digest.update(f"{name}\0{Path(path).stat().st_size}\0{each[name]}\n".encode())
    return f"sha1:{digest.hexdigest()}", each


def files_digest(paths: Sequence[Path], base: Path | None = None) -> str:
    """One digest of a list of files: their names (relative to ``base``), sizes and contents, in order."""
    return digest_files(paths, base)[0]


def digest_path(path: Path | str) -> tuple[str, dict[str, str]]:
    """The digest of a file, or of every file under a folder (sorted by name), and the per-file digests."""
    path = Path(path)
    if path.is_dir():
        return digest_files(sorted(p for p in path.rglob("*") if p.is_file()), path)
    own = file_digest(path)
    return own, {path.name: own}


def folder_digest(path: Path | str) -> str:
    """The digest of a file, or of every file under a folder (sorted by name)."""
    return digest_path(path)[0]


@dataclass(frozen=True)
class Digests:
    """A run's inputs: one digest per input (``values``, into ``run.json``) and per-file digests (``files``)."""

    values: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, paths: Mapping[str, Path | None], values: Mapping[str, str] | None = None) -> Digests:
        """The digests of files or folders by input name (None: not given), with ``values`` known already."""
        found = {key: digest_path(path) for key, path in paths.items() if path is not None}
        return cls({**(values or {}), **{k: v[0] for k, v in found.items()}}, {k: v[1] for k, v in found.items()})


def value_digest(value: Any) -> str:
    """``sha1:<hex>`` of a JSON-able value (e.g. the true class of every image)."""
    return f"sha1:{hashlib.sha1(json.dumps(as_json(value), sort_keys=True).encode()).hexdigest()}"


def array_digest(*arrays: np.ndarray) -> str:
    """``sha1:<hex>`` of arrays' dtypes, shapes and bytes (e.g. a time-series split's values and labels)."""
    digest = hashlib.sha1()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return f"sha1:{digest.hexdigest()}"


def as_json(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists, arrays lists, paths strings)."""
    return json.loads(json.dumps(value, default=jsonable))


def differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two run records (settings.x, inputs.y)."""
    out = []
    for section in sorted(set(before) | set(now)):
        old, new = before.get(section), now.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            out += [f"{section}.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        elif old != new:
            out.append(section)
    return out


def names(items: Sequence[str]) -> str:
    """The first few of ``items``, comma separated (``...`` when there are more)."""
    return ", ".join(items[:SHOWN]) + (", ..." if len(items) > SHOWN else "")


def short(value: Any) -> str | None:
    """A setting's value as an error line shows it; None when too long to show."""
    text = json.dumps(value)
    return text if len(text) <= 30 else None


def setting_change(key: str, before: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """``key: old -> new`` where both are short, else the key."""
    old, new = (short(r[key]) if key in r else "none" for r in (before, now))
    return f"{key}: {old} -> {new}" if old is not None and new is not None else key


def files_change(before: Mapping[str, str], now: Mapping[str, str]) -> str:
    """Which files differ between two per-file digest maps: changed, added, removed (the first few of each)."""
    changed = [n for n in now if n in before and before[n] != now[n]]
    added, removed = [n for n in now if n not in before], [n for n in before if n not in now]
    parts = ([f"{len(changed)} of {len(now)} files differ: {names(changed)}"] if changed else []) + (
        [f"{len(added)} added: {names(added)}"] if added else []) + (
        [f"{len(removed)} removed: {names(removed)}"] if removed else [])
    return "; ".join(parts)


def input_change(key: str, before: Mapping[str, Any], now: Mapping[str, Any], files: tuple[Mapping, Mapping]) -> str:
    """``the <input> changed (what)``: none before / none now, the files that differ, or a record's keys."""
    old, new = before.get(key), now.get(key)
    listed = all(isinstance(f.get(key), dict) for f in files)
    detail = ("none before" if old is None else "none given now" if new is None
              else f"their {names(differences(old, new))}" if isinstance(old, dict) and isinstance(new, dict)
              else files_change(files[0][key], files[1][key]) if listed else "")
    return f"{NOUNS.get(key, 'the ' + key)} changed" + (f" ({detail})" if detail else "")


def record_change(before: Mapping[str, Any], now: Mapping[str, Any],
                  files: tuple[Mapping, Mapping] = ({}, {})) -> str:
    """What differs between an earlier run record and this one, as a clause (``""`` when nothing does).

    ``files``: the per-file digests of the earlier run and of this one (:class:`Digests`), to name the files.
    """
    diff = differences(before, now)
    settings = [d.split(".", 1)[1] for d in diff if d.startswith("settings.")]
    others = [d for d in diff if "." not in d]  # a whole section added or removed
    parts = []
    if settings:
        changes = [setting_change(k, before["settings"], now["settings"]) for k in settings]
        parts.append(f"the settings changed ({names(changes)})")
    if others:
        parts.append(f"the run record changed ({names(others)})")
    parts += [input_change(d.split(".", 1)[1], before["inputs"], now["inputs"], files) for d in diff
              if d.startswith("inputs.")]
    return " and ".join(parts)
