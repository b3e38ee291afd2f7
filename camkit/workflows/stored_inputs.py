"""The model inputs of a stored batch, exactly as they were explained, and the model the maps were made with.

:meth:`StoredInputs.open` reads a whole-folder store (``camkit explain --n-images all``: ``run.json`` and
``source.json``) once; :meth:`StoredInputs.batch` gives batch ``b``'s inputs through the same readers the run used
(:mod:`camkit.workflows.folder_sources`): images re-read from the recorded folder at the recorded input size,
channels and preprocessing (``ImageFolder.dataset``), series sliced from the recorded dataset folder and split.
Nothing that changed since the maps were written is used: an image whose bytes differ from its digest in the
store's ``inputs.json`` (or that is gone), a split whose values or labels differ from ``run.json``'s
``inputs.series``, a model file whose digest differs from ``inputs.model`` is refused with one line naming the
store and what changed; so is a store without ``source.json``. A model given instead (``--model-path``) must be
the recorded file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from camkit.errors import CamkitError
from camkit.workflows.folder import SOURCE
from camkit.workflows.folder_sources import ImageInput, series_source
from camkit.workflows.records import array_digest, file_digest
from camkit.workflows.sources import load_explained_model, model_id
from camkit.workflows.store import MapStore

KINDS = ("images", "series")


def read_source(store: MapStore) -> dict[str, Any]:
    """The store's ``source.json``: where its inputs were read from (``folder``) and the model file (``model``)."""
    path = store.folder / SOURCE
    if not path.is_file():
        raise CamkitError(f"{store.shown}: no {SOURCE} (where its inputs were read from); rerun the camkit explain "
                          "that wrote it: it resumes and records it")
    try:
        source = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        source = None
    if not isinstance(source, dict) or not isinstance(source.get("folder"), str):
        raise CamkitError(f"{store.shown}: {path} is not a source record camkit wrote; rerun the camkit explain that "
                          "wrote it")
    return source


@dataclass(frozen=True)
class StoredInputs:
    """A store's run record and source, opened once; ``series`` and ``labels``: a series store's explained series
    and their class indices (checked)."""

    store: MapStore
    settings: dict[str, Any]
    inputs: dict[str, Any]
    source: dict[str, Any]
    series: np.ndarray | None = None
    labels: np.ndarray | None = None

    @classmethod
    def open(cls, maps_dir: Path | str, option: str = "--maps") -> StoredInputs:
        """Open the store at ``maps_dir`` (error lines name it as ``option DIR``); a series store loads its split
        and checks it against the recorded digest."""
        store = MapStore(Path(maps_dir), option=option)
        record = store.run(("kind",))
        settings = record["settings"]
        if settings["kind"] not in KINDS:
            raise CamkitError(f"{store.shown}: {store.run_path}: settings.kind must be images or series, not "
                              f"{settings['kind']!r}")
        opened = cls(store, settings, record["inputs"], read_source(store))
        return opened.with_series() if settings["kind"] == "series" else opened

    @property
    def kind(self) -> str:
        """``images`` or ``series``."""
        return str(self.settings["kind"])

    @property
    def folder(self) -> Path:
        """The image folder or the dataset's folder the inputs were read from."""
        return Path(self.source["folder"])

    @property
    def n_batches(self) -> int:
        return -(-self.settings["n_images"] // self.settings["batch_size"])

    def with_series(self) -> StoredInputs:
        """This store with its series loaded from the recorded folder and split, refused when they changed."""
        data = {"dataset": str(self.folder), "root": str(self.folder.parent), "znorm": self.settings["znorm"]}
        if not self.folder.is_dir():
            raise CamkitError(f"{self.store.shown}: the dataset folder {self.folder} is gone")
        source = series_source(data, self.settings["split"], self.settings["n_images"], None)
        if array_digest(source.x, source.y_true) != self.inputs.get("series"):
            split = self.settings["split"]
            raise CamkitError(f"{self.store.shown}: the {split} series of {self.folder} changed (their values or "
                              "labels) since these maps were written")
        return StoredInputs(self.store, self.settings, self.inputs, self.source, source.x, source.y_true)

    def rows(self, b: int) -> range:
        """The samples of batch ``b``; an error for a batch the store does not have."""
        if not 0 <= b < self.n_batches:
            raise CamkitError(f"{self.store.shown}: no batch {b} (the store has batches 0 to {self.n_batches - 1})")
        size = self.settings["batch_size"]
        return range(b * size, min((b + 1) * size, self.settings["n_images"]))

    def batch(self, b: int) -> np.ndarray:
        """Batch ``b``'s model inputs as they were explained: images (B, H, W, C), series (B, T, C), float32."""
        rows = self.rows(b)
        if self.series is not None:
            return self.series[rows.start : rows.stop]
        return self.images(b, len(rows))

    def images(self, b: int, count: int) -> np.ndarray:
        """Batch ``b``'s images (named in its batch file), each checked against its digest in ``inputs.json``."""
        names = [str(n) for n in self.store.read(b, ["names"])["names"]]
        recorded = self.store.recorded_files().get("images", {})
        for name in names:
            path = self.folder / name
            if not path.is_file():
                raise CamkitError(f"{self.store.shown}: the image {name} is gone from {self.folder} since these maps "
                                  "were written")
            if name not in recorded or file_digest(path) != recorded[name]:
                raise CamkitError(f"{self.store.shown}: the image {path} changed since these maps were written (its "
                                  "digest differs from the store's inputs.json)")
        settings = self.settings
        reader = ImageInput(tuple(settings["input_size"]), int(settings["channels"]), settings["preprocess"])
        x, paths = next(reader.read([self.folder / n for n in names], count), (np.zeros((0,)), []))
        if len(paths) != count:
            raise CamkitError(f"{self.store.shown}: an image of batch {b} ({names[0]} .. {names[-1]}) can no longer "
                              "be read")
        return x

    def model(self, given: str | Path | keras.Model | None = None) -> keras.Model | None:
        """The model the maps were made with: ``given`` (``--model-path``: a file must be the recorded one, an
        in-memory model is taken as it is), else loaded from the recorded file; None when the maps were made with an
        in-memory model and none is given. A recorded file that changed since (its digest differs from
        ``inputs.model``) or is gone is refused."""
        recorded = str(self.inputs.get("model", ""))
        if isinstance(given, keras.Model):
            return given
        if given is not None:
            if recorded.startswith("sha1:") and model_id(given) != recorded:
                raise CamkitError(f"--model-path {given}: not the model the maps of {self.store.folder} were made "
                                  "with (its digest differs from their run.json's inputs.model)")
            return load_explained_model(given)
        path = self.source.get("model")
        if path is None:
            return None
        if not Path(path).is_file():
            raise CamkitError(f"{self.store.shown}: the model file {path} is gone since these maps were written")
        if file_digest(path) != recorded:
            raise CamkitError(f"{self.store.shown}: the model file {path} changed since these maps were written")
        return load_explained_model(path)


def batch_inputs(maps_dir: Path | str, b: int, option: str = "--maps") -> np.ndarray:
    """The model inputs of batch ``b`` of the store at ``maps_dir`` (:meth:`StoredInputs.batch`)."""
    return StoredInputs.open(maps_dir, option).batch(b)


def model_for(maps_dir: Path | str, option: str = "--maps") -> keras.Model | None:
    """The model the store's maps were made with (:meth:`StoredInputs.model`); None for an in-memory model."""
    return StoredInputs.open(maps_dir, option).model()
