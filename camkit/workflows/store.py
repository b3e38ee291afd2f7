"""The map store: results computed batch by batch into a folder, with what they depend on.

A store folder holds:

- ``run.json``: ``settings`` (how the results are computed: method, options, columns, batch size, ...) and
  ``inputs`` (digests of the contents of what they are computed from: the model file, the image files,
  annotations, a skip list, the maps an evaluation reads); ``inputs.json``: the same inputs' per-file digests,
  only to name the files that changed. A rerun into the folder must give the same settings and inputs: anything
  else is refused with one line saying what changed, or, with ``overwrite``, the old run is removed and
  recomputed. Never reused silently. The run is recorded just before its first batch is written, so a run that
  fails earlier (a bad option, a method that does not apply) leaves no ``run.json`` (or the previous one).
- ``<subdir>/batch_BBBBB<suffix>``: one file per batch (``.npz`` arrays for maps, ``.json`` for evaluations),
  written atomically, and beside it ``batch_BBBBB.sha1``: the file's SHA-1 (and the digest of what the batch was
  computed from, e.g. the maps batch an evaluation read), written after it. A batch is done only when the file's
  digest equals the recorded one, so a missing, truncated, altered or half-merged batch is recomputed, not trusted.
- ``explanation.npz``: the single-file result of a small explain run (one image, several layers, notebook
  panels), holding its own ``run`` record.

The shard / resume loop is :func:`run_batches`: batch ``b`` belongs to shard ``i/n`` when ``b mod n = i``; batches
already done are skipped, so n machines writing into copies of a folder produce disjoint batch files whose union
is exactly the unsharded run.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from camkit.errors import CamkitError
from camkit.io import atomic_path, atomic_write_json, atomic_write_text
from camkit.workflows.records import Digests, as_json, file_digest, record_change

EXPLANATION = "explanation.npz"


def remove_paths(paths: Iterable[Path]) -> None:
    """Delete files and folders (those that exist)."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


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


@dataclass(frozen=True)
class MapStore:
    """One store folder (see the module docstring); ``suffix`` ``.npz`` (maps) or ``.json`` (evaluations).

    Error lines name the folder as ``option label`` (``--save-dir DIR``; ``label`` defaults to the folder), say
    what it holds with ``written`` (``these maps were written``) and how to recompute a bad batch with ``rerun``.
    """

    folder: Path
    suffix: str = ".npz"
    subdir: str = "batches"
    option: str = ""
    label: str = ""
    written: str = "these maps were written"
    rerun: str = "rerun the command that wrote it"

    @property
    def shown(self) -> str:
        return f"{self.option} {self.label or self.folder}".strip()

    @property
    def run_path(self) -> Path:
        return self.folder / "run.json"

    @property
    def inputs_path(self) -> Path:
        return self.folder / "inputs.json"

    def path(self, b: int) -> Path:
        return self.folder / self.subdir / f"batch_{b:05d}{self.suffix}"

    def digest_path(self, b: int) -> Path:
        return self.folder / self.subdir / f"batch_{b:05d}.sha1"

    def previous(self) -> dict[str, Any] | str | None:
        """The folder's run record; None when it has none; why not, when its run.json is not one."""
        if not self.run_path.exists():
            return None
        try:
            record = json.loads(self.run_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return "not valid JSON"
        if not isinstance(record, dict) or not all(isinstance(record.get(k), dict) for k in ("settings", "inputs")):
            return "no settings and inputs"
        return record

    def recorded_files(self) -> dict[str, Any]:
        """The per-file digests of the folder's run (``inputs.json``); empty when unreadable."""
        try:
            files = json.loads(self.inputs_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return {}
        return files if isinstance(files, dict) else {}

    def prepare(self, settings: Mapping[str, Any], digests: Digests, overwrite: bool = False,
                clear: Sequence[Path] = ()) -> Opening:
        """Check the run against the folder's: the same run resumes; another one is refused, naming what changed,
        or with ``overwrite`` replaced once :meth:`Opening.begin` is called (before its first batch is written:
        a run that fails before that leaves the folder as it was). ``clear``: more paths the old run wrote."""
        record = as_json({"settings": dict(settings), "inputs": dict(digests.values)})
        before = self.previous()
        if before is None:
            return Opening(self, record, digests, False, tuple(clear))
        if isinstance(before, str):
            change = f"{self.run_path} is not a run record camkit wrote ({before})"
        else:
            change = record_change(before, record, (self.recorded_files(), digests.files))
            if not change:
                return Opening(self, record, digests, True, tuple(clear))
            change += f" since {self.written}"
        if not overwrite:
            raise CamkitError(f"{self.shown}: {change}; use --overwrite to recompute, or another "
                              f"{self.option or 'folder'}")
        return Opening(self, record, digests, False, tuple(clear))

    def remove(self, clear: Sequence[Path] = ()) -> None:
        """Delete the run: run.json, inputs.json, the batch folder and the paths in ``clear``."""
        remove_paths([self.run_path, self.inputs_path, self.folder / self.subdir, *clear])

    def run(self, required: Sequence[str] = ()) -> dict[str, Any]:
        """The folder's run record (``settings``, ``inputs``), checked (positive ``n_images`` and ``batch_size``,
        the ``required`` settings); errors name the folder's option."""
        where = f"{self.option} {self.folder}".strip()
        if not self.folder.is_dir():
            raise CamkitError(f"{where}: {'not a folder' if self.folder.exists() else 'no such folder'}; give the "
                              "folder of a `camkit explain --n-images all` run")
        record = self.previous()
        if record is None and (self.folder / EXPLANATION).is_file():
            raise CamkitError(f"{where}: it holds the {EXPLANATION} of a small explain run, not batches; explain "
                              "the whole folder with --n-images all")
        if record is None:
            raise CamkitError(f"{where}: no run.json; give the folder of a `camkit explain --n-images all` run")
        if isinstance(record, str):
            raise CamkitError(f"{where}: {self.run_path} is not a run record camkit wrote ({record}); rerun the "
                              "command that wrote it with --overwrite")
        for key in ("n_images", "batch_size"):
            value = record["settings"].get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CamkitError(f"{where}: {self.run_path}: settings.{key} must be a positive count, not "
                                  f"{value!r}; rerun the command that wrote it with --overwrite")
        missing = [key for key in required if key not in record["settings"]]
        if missing:
            raise CamkitError(f"{where}: {self.run_path} has no settings.{missing[0]}; rerun the command that wrote "
                              "it with --overwrite")
        return record

    def recorded(self, b: int) -> tuple[str, str] | None:
        """(the batch file's digest, what it was computed from) as recorded when it was written."""
        path = self.digest_path(b)
        if not path.is_file():
            return None
        own, _, depends = path.read_bytes().decode(errors="replace").strip().partition("\n")
        return own, depends

    def problem(self, b: int, data: bytes | None = None) -> str | None:
        """Why batch ``b`` cannot be used (missing, no digest, not the file its digest was recorded for), or None;
        ``data``: the file's bytes when already read."""
        record = self.recorded(b)
        if not self.path(b).is_file():
            return "is missing"
        if record is None:
            return f"has no {self.digest_path(b).name} (its digest)"
        own = file_digest(self.path(b)) if data is None else f"sha1:{hashlib.sha1(data).hexdigest()}"
        if own != record[0]:
            return f"does not match its {self.digest_path(b).name} (truncated or altered since it was written)"
        return None

    def is_done(self, b: int, depends: str = "") -> bool:
        """The batch file exists, has the digest recorded when it was written, and came from ``depends``."""
        record = self.recorded(b)
        return record is not None and record[1] == depends and self.problem(b) is None

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

    def read(self, b: int, keys: Sequence[str] | None = None) -> dict[str, Any]:
        """Batch ``b`` (only ``keys`` of an ``.npz``, if given), checked against its recorded digest (the bytes
        read are the bytes hashed)."""
        path = self.path(b)
        data = path.read_bytes() if path.is_file() else b""
        problem = self.problem(b, data)
        if problem is not None:
            raise CamkitError(f"{path} {problem}; {self.rerun} to recompute it")
        try:
            if self.suffix == ".json":
                return json.loads(data)
            with np.load(io.BytesIO(data), allow_pickle=False) as f:
                return {k: f[k] for k in (f.files if keys is None else keys)}
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise CamkitError(f"{path}: not a readable batch file ({exc}); {self.rerun} to recompute it") from None

    def n_batches(self) -> int:
        settings = self.run()["settings"]
        return -(-settings["n_images"] // settings["batch_size"])

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


@dataclass
class Opening:
    """A run about to be written into a store (:meth:`MapStore.prepare`); ``resume``: the folder holds it already."""

    store: MapStore
    record: dict[str, Any]
    digests: Digests
    resume: bool
    clear: tuple[Path, ...] = ()
    begun: bool = False

    def begin(self) -> None:
        """Once, before the first batch is written: remove an earlier, different run and record this one."""
        if not self.begun and not self.resume:
            self.store.remove(self.clear)
            atomic_write_json(self.store.inputs_path, self.digests.files)
            atomic_write_json(self.store.run_path, self.record)
        self.begun = True


@dataclass(frozen=True)
class BatchRun:
    """What :func:`run_batches` did: this shard's batches and those it computed (the others were done)."""

    n_batches: int
    batches: list[int]
    computed: list[int]


def run_batches(opening: Opening, n_batches: int, shard: Shard,
                compute: Callable[[list[int]], Iterable[tuple[int, Mapping[str, Any]]]],
                depends: Callable[[int], str] | None = None, progress: bool | None = None,
                desc: str = "batches") -> BatchRun:
    """The shard / resume loop: compute this shard's batches that are not done, and write each as it comes.

    ``compute(todo)`` yields ``(b, data)`` for the batches ``todo`` in order (so it can stream their inputs);
    ``depends(b)`` names what batch ``b`` is computed from (e.g. the digest of the maps batch it evaluates). The
    run is recorded (``opening.begin()``) just before its first batch is written, or at the end when none is.
    """
    store = opening.store
    mine = shard.batches(n_batches)
    source = depends or (lambda b: "")
    todo = [b for b in mine if not opening.resume or not store.is_done(b, source(b))]
    bar = tqdm(total=len(todo), unit="batch", desc=desc, leave=False,
               disable=progress is False or (progress is None and len(todo) < 2))
    with bar:
        for b, data in compute(todo):
            opening.begin()
            store.write(b, data, source(b))
            bar.update(1)
    opening.begin()
    return BatchRun(n_batches, mine, todo)
