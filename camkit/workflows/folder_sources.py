"""Where a whole-folder run's batches come from: image files streamed through ``tf.data``, or a time-series split
sliced from the loaded arrays.

A :class:`BatchSource` knows its samples (names, true classes, class names), what of it goes into the store's
``run.json`` (:meth:`~BatchSource.settings`: what identifies the data and how it becomes model inputs;
:meth:`~BatchSource.digests`: the digests of its contents), how to give the model inputs of a list of batches in
order (:meth:`~BatchSource.batches`), where it was read from (:meth:`~BatchSource.record`, ``source.json``) and
how one sample is drawn. :mod:`camkit.workflows.stored_inputs` reads a stored batch's inputs through the same
:class:`ImageInput` and :func:`series_source`.

Series are named ``<split>_IIIII`` (``test_00000``: the split and the series' position in it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
from matplotlib.figure import Figure

from camkit.errors import CamkitError
from camkit.workflows.plan import ExplainPlan
from camkit.workflows.records import Digests, array_digest, digest_files, value_digest
from camkit.workflows.sources import (
    Resolved,
    class_names_for,
    dataset_class_names,
    image_input,
    load_image_files,
    load_series,
)

TrueLabels = Callable[[Sequence[str]], dict[str, int]]


class BatchSource(Protocol):
    """The samples of a whole-folder run and how their batches are read (the module docstring)."""

    kind: str  # "images" | "series": settings.kind
    item: str  # what one sample's figure is named after: image_IIIII, series_IIIII
    where: str  # what was explained, for the run's summary line
    names: list[str]
    y_true: np.ndarray
    class_names: list[str]

    def settings(self) -> dict[str, Any]: ...

    def digests(self) -> Digests: ...

    def batches(self, rows: Sequence[range], batch_size: int) -> Iterator[np.ndarray]: ...

    def record(self) -> dict[str, Any]: ...

    def figure(self, index: int, arrays: Mapping[str, Any], j: int, titles: Mapping[str, str],
               threshold: float) -> Figure: ...


@dataclass(frozen=True)
class ImageInput:
    """How image files become model inputs: the input size (H, W), channels and preprocessing (its name)."""

    size: tuple[int, int]
    channels: int
    preprocess: str

    def read(self, files: Sequence[Path], batch_size: int) -> Iterator[tuple[np.ndarray, list[str]]]:
        """The images of ``files`` in batches of ``batch_size`` as the model gets them (``ImageFolder.dataset``),
        each with the paths it holds: a file that fails to decode is left out."""
        from camkit.data.images import ImageFolder
        from camkit.data.splits import PREPROCESSORS

        if not files:
            return
        folder = ImageFolder(Path(files[0]).parent, list(files), [0] * len(files), [])
        preprocess = PREPROCESSORS.get(self.preprocess, self.preprocess)
        for x, _, paths in folder.dataset(self.size, batch_size=batch_size, preprocess=preprocess,
                                          channels=self.channels, with_paths=True):
            yield np.asarray(x, np.float32), [p.decode() for p in paths.numpy()]


@dataclass(frozen=True)
class ImageSource:
    """Image files under ``base`` (names relative to it), streamed batch by batch."""

    base: Path
    files: list[Path]
    names: list[str]
    y_true: np.ndarray
    class_names: list[str]
    input: ImageInput
    where: str
    kind: str = "images"
    item: str = "image"

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "input_size": list(self.input.size), "channels": self.input.channels,
                "preprocess": self.input.preprocess}

    def digests(self) -> Digests:
        """The image files' names and contents (and each file's digest), and their true classes."""
        digest, files = digest_files(self.files, self.base)
        return Digests({"images": digest, "true_classes": value_digest(self.y_true)}, {"images": files})

    def batches(self, rows: Sequence[range], batch_size: int) -> Iterator[np.ndarray]:
        """The images of each range of rows in order, streamed (only the last range may be short)."""
        images = self.input.read([self.files[r] for part in rows for r in part], batch_size)
        for part in rows:
            x, paths = next(images, (None, []))
            lost = [self.names[r] for r in part if str(self.files[r]) not in paths]
            if lost or len(paths) != len(part):
                raise CamkitError(f"--images: {lost[0] if lost else self.names[part.start]} became unreadable while "
                                  "explaining")
            yield x

    def record(self) -> dict[str, Any]:
        return {"folder": str(self.base.resolve())}

    def figure(self, index: int, arrays: Mapping[str, Any], j: int, titles: Mapping[str, str],
               threshold: float) -> Figure:
        """The image at its own size with every variant over it, each with its box."""
        from camkit.data.images import load_original
        from camkit.plots.variants import variant_figure

        return variant_figure(load_original(self.files[index]), arrays, j, threshold, titles)


@dataclass(frozen=True)
class SeriesSource:
    """The first series of a time-series split (the dataset's folder), sliced batch by batch."""

    folder: Path
    dataset: str
    split: str
    znorm: bool
    x: np.ndarray
    y_true: np.ndarray
    class_names: list[str]
    names: list[str]
    kind: str = "series"
    item: str = "series"

    @property
    def where(self) -> str:
        return self.dataset

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "dataset": self.dataset, "split": self.split, "znorm": self.znorm}

    def digests(self) -> Digests:
        """The explained series' values and labels."""
        return Digests({"series": array_digest(self.x, self.y_true)})

    def batches(self, rows: Sequence[range], batch_size: int) -> Iterator[np.ndarray]:
        for part in rows:
            yield self.x[part.start : part.stop]

    def record(self) -> dict[str, Any]:
        return {"folder": str(self.folder.resolve())}

    def figure(self, index: int, arrays: Mapping[str, Any], j: int, titles: Mapping[str, str],
               threshold: float) -> Figure:
        """The series' channels coloured by every variant (no boxes: ``threshold`` is for images)."""
        from camkit.plots.variants import series_variant_figure

        return series_variant_figure(self.x[index], arrays, j, titles)


def folder_count(plan: ExplainPlan) -> int | None:
    """How many samples a whole-folder run explains: ``--n-images N``, else all of them."""
    return None if plan.n_images in (None, "all") else int(plan.n_images)


def series_source(data: Mapping[str, Any], split: str, count: int | None, model: keras.Model | None) -> SeriesSource:
    """The first ``count`` series of ``split`` (all when None), named ``<split>_IIIII``, with the dataset's class
    names; ``data``: the ``dataset`` (a name or a folder), its ``root`` and ``znorm``."""
    from camkit.data.timeseries import resolve_dataset_dir

    inputs = load_series(dict(data), split, count, model)
    folder = resolve_dataset_dir(data["dataset"], data["root"])
    return SeriesSource(folder, inputs.source, split, bool(data.get("znorm")), inputs.x, inputs.extra["y_true"],
                        list(inputs.class_names or []), [f"{split}_{i:05d}" for i in range(len(inputs.x))])


def open_series(plan: ExplainPlan, resolved: Resolved, model: keras.Model, n_classes: int) -> SeriesSource:
    """The plan's series, their classes named (``--labels``, or the dataset's, one per model output)."""
    if plan.source.image_size is not None:
        raise CamkitError("--image-size is for images; time series keep their length")
    source = series_source(resolved.data, plan.source.split, folder_count(plan), model)
    return replace(source, class_names=dataset_class_names(n_classes, plan.source, source.class_names,
                                                           source.dataset))


def open_images(plan: ExplainPlan, resolved: Resolved, model: keras.Model, n_classes: int, columns: Sequence[str],
                true_labels: TrueLabels | None) -> ImageSource:
    """The plan's image files in file order, their true classes (class folders or ``true_labels``) checked
    against a ``true`` column."""
    size, channels = image_input(model, plan.source.image_size)
    count = folder_count(plan)
    where, folder = load_image_files(resolved.data, plan.source.split, 2**62 if count is None else count)
    base = folder.root if Path(where).is_dir() else Path(where).parent
    names = [p.relative_to(base).as_posix() for p in folder.files]
    spec = plan.source
    class_names = class_names_for(n_classes, spec.labels, spec.imagenet_labels, folder.class_names or None)
    y_true = true_classes(folder, names, class_names, true_labels)
    check_truth(columns, names, y_true, true_labels is not None)
    return ImageSource(base, folder.files, names, y_true, class_names,
                       ImageInput(size, channels, resolved.data["preprocess"]), str(where))


def true_classes(folder: Any, names: list[str], class_names: list[str], true_labels: TrueLabels | None) -> np.ndarray:
    """Each image's true class index: from its class folder, or from ``true_labels`` (e.g. annotations)."""
    if true_labels is not None:
        from camkit.data.boxes import image_id

        by_id = true_labels(class_names)
        return np.array([by_id.get(image_id(name), -1) for name in names], np.int64)
    return np.array([class_names.index(folder.class_names[y]) if y >= 0 and folder.class_names[y] in class_names
                     else -1 for y in folder.labels], np.int64)


def check_truth(columns: Sequence[str], names: Sequence[str], y_true: np.ndarray, from_annotations: bool) -> None:
    """A ``true`` column needs every image's class: refused before anything is computed or written."""
    unknown = [n for n, y in zip(names, y_true, strict=True) if y < 0]
    if "true" in columns and unknown:
        where = ("have no annotated label among the model's classes" if from_annotations else
                 "are not in a class folder named after a model class")
        raise CamkitError(f"--target true: {len(unknown)} of {len(names)} images {where} (e.g. {unknown[0]}); "
                          "explain them without the column true")
