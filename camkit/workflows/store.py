"""The map store: results computed batch by batch into a folder, with what they depend on.

A store folder holds:

- ``run.json``: ``settings`` (how the results are computed: method, options, columns, batch size, ...) and
  ``inputs`` (digests of what they are computed from: the model file, the image list, annotations, a skip
  list, the maps an evaluation reads). A rerun into the folder must give the same settings and inputs: anything
  else is refused (naming what changed) or, with ``overwrite``, the old run is removed and recomputed. Never
  reused silently.
- ``<subdir>/batch_BBBBB<suffix>``: one file per batch (``.npz`` arrays for maps, ``.json`` for evaluations),
  written atomically, and beside it ``batch_BBBBB.sha1``: the file's SHA-1 (and the digest of what the batch was
  computed from, e.g. the maps batch an evaluation read), written after it. A batch is done only when the file's
  digest equals the recorded one, so a truncated, altered or half-merged batch is recomputed, not trusted.
- ``explanation.npz``: the single-file result of a small explain run (one image, several layers, notebook
  panels), holding its own ``run`` record.

The shard / resume loop is :func:`run_batches`: batch ``b`` belongs to shard ``i/n`` when ``b mod n = i``; batches
already done are skipped, so n machines writing into copies of a folder produce disjoint batch files whose union
is exactly the unsharded run.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from camkit.errors import CamkitError
from camkit.io import atomic_path, atomic_write_json, atomic_write_text, jsonable

EXPLANATION = "explanation.npz"
_UNREADABLE = {"run.json": "unreadable"}


def file_digest(path: Path | str) -> str:
    """``sha1:<hex>`` of a file's bytes."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha1:{digest.hexdigest()}"


def files_digest(paths: Sequence[Path], base: Path | None = None) -> str:
    """One digest of a list of files: their names (relative to ``base``), sizes and contents, in order."""
    digest = hashlib.sha1()
    for path in paths:
        name = Path(path).relative_to(base).as_posix() if base is not None else Path(path).as_posix()
        digest.update(f"{name}\0{Path(path).stat().st_size}\0{file_digest(path)}\n".encode())
    return f"sha1:{digest.hexdigest()}"


def folder_digest(path: Path | str) -> str:
    """The digest of a file, or of every file under a folder (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        return files_digest(sorted(p for p in path.rglob("*") if p.is_file()), path)
    return file_digest(path)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the batches ``b`` with ``b mod count = index``."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """``"i/n"`` with 0 <= i < n; None -> the whole run."""
        if text is None:
            return cls()
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match or not int(match.group(1)) < int(match.group(2)):
            raise CamkitError(f"--shard: expected i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def batches(self, n_batches: int) -> list[int]:
        return [b for b in range(n_batches) if b % self.count == self.index]

    @property
    def whole(self) -> bool:
        return self.count == 1


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


def describe(diff: Sequence[str]) -> str:
    settings = [d.split(".", 1)[-1] for d in diff if not d.startswith("inputs")]
    inputs = [d.split(".", 1)[-1] for d in diff if d.startswith("inputs")]
    parts = ([f"other settings ({', '.join(settings)})"] if settings else []) + (
        [f"changed inputs ({', '.join(inputs)})"] if inputs else [])
    return " and ".join(parts)


@dataclass(frozen=True)
class MapStore:
    """One store folder (see the module docstring); ``suffix`` ``.npz`` (maps) or ``.json`` (evaluations)."""

    folder: Path
    suffix: str = ".npz"
    subdir: str = "batches"

    @property
    def run_path(self) -> Path:
        return self.folder / "run.json"

    def path(self, b: int) -> Path:
        return self.folder / self.subdir / f"batch_{b:05d}{self.suffix}"

    def digest_path(self, b: int) -> Path:
        return self.folder / self.subdir / f"batch_{b:05d}.sha1"

    def open(self, settings: Mapping[str, Any], inputs: Mapping[str, str], overwrite: bool = False,
             clear: Sequence[str] = ()) -> dict[str, Any]:
        """Record the run in ``run.json``, or check that the folder's run has the same settings and inputs.

        With ``overwrite`` an earlier, different run is removed first (``run.json``, the batches and the
        folders named in ``clear``, e.g. its figures); without it such a folder is refused.
        """
        record = as_json({"settings": dict(settings), "inputs": dict(inputs)})
        if self.run_path.is_file():
            try:
                before = json.loads(self.run_path.read_text())
            except ValueError:
                before = _UNREADABLE
            diff = differences(before, record)
            if diff and not overwrite:
                raise CamkitError(f"{self.folder}: it holds a run with {describe(diff)}; choose another folder, "
                                  "remove it, or pass --overwrite")
            if diff:
                self.remove(clear)
        if not self.run_path.is_file():
            atomic_write_json(self.run_path, record)
        return record

    def remove(self, clear: Sequence[str] = ()) -> None:
        """Delete the run: run.json, the batch folder and the named sub-folders."""
        for old in [self.run_path, self.folder / self.subdir, *(self.folder / c for c in clear)]:
            if old.is_dir():
                shutil.rmtree(old)
            elif old.exists():
                old.unlink()

    def run(self) -> dict[str, Any]:
        """The folder's run record (``settings``, ``inputs``)."""
        if not self.run_path.is_file():
            raise CamkitError(f"{self.folder}: no run.json; give the folder of a `camkit explain --n-images all` run")
        try:
            record = json.loads(self.run_path.read_text())
        except ValueError:
            raise CamkitError(f"{self.run_path}: not valid JSON") from None
        if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
            raise CamkitError(f"{self.run_path}: not a camkit run record (no settings); rerun it with --overwrite")
        return record

    def recorded(self, b: int) -> tuple[str, str] | None:
        """(the batch file's digest, what it was computed from) as recorded when it was written."""
        path = self.digest_path(b)
        if not path.is_file():
            return None
        own, _, depends = path.read_text().strip().partition("\n")
        return own, depends

    def is_done(self, b: int, depends: str = "") -> bool:
        """The batch file exists, has the digest recorded when it was written, and came from ``depends``."""
        record = self.recorded(b)
        return (record is not None and self.path(b).is_file() and record[1] == depends
                and file_digest(self.path(b)) == record[0])

    def write(self, b: int, data: Mapping[str, Any], depends: str = "") -> Path:
        """Write batch ``b`` atomically (arrays as ``.npz``, anything JSON-able as ``.json``), then its digest."""
        path = self.path(b)
        if self.suffix == ".npz":
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, **{k: np.asarray(v) for k, v in data.items()})
        else:
            atomic_write_json(path, data)
        atomic_write_text(self.digest_path(b), f"{file_digest(path)}\n{depends}\n")
        return path

    def read(self, b: int) -> dict[str, Any]:
        """Batch ``b``, checked against its recorded digest (an altered or unfinished batch is an error)."""
        path = self.path(b)
        record = self.recorded(b)
        if not path.is_file():
            raise CamkitError(f"{path}: missing; finish (or merge the shards of) the run that writes it")
        if record is None or file_digest(path) != record[0]:
            raise CamkitError(f"{path}: does not match the digest recorded when it was written (altered, truncated "
                              "or copied without its .sha1); rerun the command that wrote it to recompute it")
        try:
            if self.suffix == ".json":
                return json.loads(path.read_text())
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise CamkitError(f"{path}: not a readable batch file ({exc})") from None

    def batch_digest(self, b: int) -> str:
        """The digest of batch ``b`` (checked against the recorded one), for results computed from it."""
        record = self.recorded(b)
        if not self.path(b).is_file() or record is None or file_digest(self.path(b)) != record[0]:
            raise CamkitError(f"{self.path(b)}: missing, or not the file its digest was recorded for; finish (or "
                              "merge the shards of) the run that writes it, or rerun it to recompute the batch")
        return record[0]

    def n_batches(self) -> int:
        settings = self.run()["settings"]
        return -(-int(settings["n_images"]) // int(settings["batch_size"]))

    def read_all(self) -> dict[str, np.ndarray]:
        """Every batch of a complete map run joined in image order; a missing or altered batch is an error."""
        n_batches = self.n_batches()
        missing = [b for b in range(n_batches) if not self.path(b).is_file()]
        if missing:
            raise CamkitError(f"{self.folder / self.subdir}: batches {missing[:5]} are missing: a shard has not "
                              "finished or was not merged (copy every shard's batches/ into one folder)")
        parts = [self.read(b) for b in range(n_batches)]
        shared = ("columns", "variants", "class_names", "layer")
        out = {k: np.concatenate([p[k] for p in parts]) for k, v in parts[0].items() if v.ndim and k not in shared}
        out.update({k: parts[0][k] for k in shared if k in parts[0]})
        return out

    def write_explanation(self, arrays: Mapping[str, Any], record: Mapping[str, Any]) -> Path:
        """``explanation.npz``: a small run's arrays with its run record (settings and inputs) inside."""
        path = self.folder / EXPLANATION
        data = {k: np.asarray(v) for k, v in arrays.items()}
        data["run"] = np.asarray(json.dumps(as_json(dict(record)), sort_keys=True))
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **data)
        return path


@dataclass(frozen=True)
class BatchRun:
    """What :func:`run_batches` did: this shard's batches and those it computed (the others were done)."""

    n_batches: int
    batches: list[int]
    computed: list[int]


def run_batches(store: MapStore, n_batches: int, shard: Shard,
                compute: Callable[[list[int]], Iterable[tuple[int, Mapping[str, Any]]]],
                depends: Callable[[int], str] | None = None, progress: bool | None = None,
                desc: str = "batches") -> BatchRun:
    """The shard / resume loop: compute this shard's batches that are not done, and write each as it comes.

    ``compute(todo)`` yields ``(b, data)`` for the batches ``todo`` in order (so it can stream their inputs);
    ``depends(b)`` names what batch ``b`` is computed from (e.g. the digest of the maps batch it evaluates).
    """
    mine = shard.batches(n_batches)
    source = depends or (lambda b: "")
    todo = [b for b in mine if not store.is_done(b, source(b))]
    bar = tqdm(total=len(todo), unit="batch", desc=desc, leave=False,
               disable=progress is False or (progress is None and len(todo) < 2))
    with bar:
        for b, data in compute(todo):
            store.write(b, data, source(b))
            bar.update(1)
    return BatchRun(n_batches, mine, todo)

