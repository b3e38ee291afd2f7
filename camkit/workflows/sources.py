"""Where explain and evaluation runs get their inputs: the model, the data, image files and class names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from camkit.errors import CamkitError

PREPROCESS = ("rescale", "vgg16", "none")


@dataclass(frozen=True)
class SourceSpec:
    """The model and data a run asks for: a model file, or an experiment (``config`` / ``experiment``) whose
    model and dataset are the defaults; a time-series ``dataset`` or ``images`` replace its data."""

    model: str | Path | keras.Model | None = None
    config: Path | None = None
    experiment: str | None = None
    dataset: str | None = None
    images: Path | None = None
    data_root: str | None = None
    split: str = "test"
    preprocess: str | None = None
    image_size: int | None = None
    labels: Path | None = None
    imagenet_labels: bool = False
    root: Path = Path(".")


@dataclass
class Resolved:
    """A source with its defaults filled in: the model (a path or a model), the experiment name, the data keys."""

    model: Any
    name: str
    data: dict[str, Any]

    @property
    def is_images(self) -> bool:
        return self.data.get("kind") == "images"


@dataclass
class Inputs:
    """The samples of one run: names, the model inputs (an array or a dataset of image batches), and what is known
    about them (image files, series values, true classes)."""

    kind: str  # "timeseries" | "images"
    source: str
    names: list[str]
    x: Any
    series: np.ndarray | None = None
    files: list[Path] = field(default_factory=list)
    class_names: list[str] | None = None  # the dataset's labels or the class folders; None when unknown
    extra: dict[str, Any] = field(default_factory=dict)  # y_true, true_names, split: written with the maps


def _read_manifest_data(root: Path, name: str) -> dict:
    """The data section of a trained experiment (a CamkitError naming --experiment if there is none by that name)."""
    from camkit.workflows.results import experiment_data

    return experiment_data(name, root)


def resolve_source(spec: SourceSpec) -> Resolved:
    """The model (or its path), the experiment name and the data keys of a source, defaults filled in."""
    from camkit.config import load_config
    from camkit.workflows.results import RunDirs

    model, config, experiment, dataset, images = spec.model, spec.config, spec.experiment, spec.dataset, spec.images
    root = spec.root

    if config is not None and experiment is not None:
        raise CamkitError("give -c/--config or --experiment, not both")
    data: dict = {}
    exp = None
    if config is not None:
        cfg = load_config(config)
        exp, data = cfg.name, cfg.data.__dict__.copy()
    elif experiment is not None:
        exp, data = experiment, _read_manifest_data(Path(root), experiment)
    if model is None:
        if exp is None:
            raise CamkitError("no model: give --model-path FILE, -c CONFIG or --experiment NAME")
        model = RunDirs(exp, Path(root)).best_model
    if exp is None:
        path = Path(model) if isinstance(model, (str, Path)) else None
        if path is None:
            exp = model.name
        elif path.stem == "best" and path.parent.parent.name == "models":
            exp = path.parent.name  # models/<exp>/best.keras
        else:
            exp = path.stem
    if (dataset is None) == (images is None) and (dataset is not None or not data.get("dataset")):
        raise CamkitError("give either --dataset NAME (time series) or --images DIR (image files), not "
                          f"{'both' if dataset is not None else 'neither'}")
    if dataset is not None or images is not None:  # explicit data replace the experiment's
        data = {**data, "dataset": dataset, "kind": "timeseries" if dataset is not None else "images",
                "images": images}
        if dataset is not None:
            data.pop("preprocess", None)
    data["root"] = spec.data_root or data.get("root") or "data"
    data["preprocess"] = spec.preprocess or data.get("preprocess") or "rescale"
    if data["preprocess"] not in PREPROCESS:
        raise CamkitError(f"--preprocess: choose one of {', '.join(PREPROCESS)}, not {data['preprocess']!r}")
    return Resolved(model, exp, data)


def load_image_files(data: dict, split: str, n: int):
    from camkit.data.images import ImageFolder, load_images
    from camkit.data.splits import class_list
    from camkit.data.timeseries import resolve_dataset_dir

    path, names = data.get("images"), None
    if path is None:  # an image experiment's dataset: its split folder (and data.classes' label order)
        path = resolve_dataset_dir(data["dataset"], data["root"]) / split
        names = class_list(data["classes"]) if data.get("classes") else None
    folder = load_images(path, class_names=names)
    return path, ImageFolder(folder.root, folder.files[:n], folder.labels[:n], folder.class_names)


def image_input(model: keras.Model, image_size: int | None) -> tuple[tuple[int, int], int]:
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3:
        raise CamkitError(f"--images: the model takes inputs of shape {shape}, not images (H, W, C)")
    (h, w, c), size = shape, (image_size, image_size) if image_size else None
    if size and h is not None and w is not None and size != (h, w):
        raise CamkitError(f"--image-size {image_size}: the model expects {h}x{w} images")
    if c not in (1, 3):
        raise CamkitError(f"--images: the model expects {c}-channel inputs; images give 1 or 3")
    return size or (h or 224, w or 224), c


def class_names_for(n_classes: int, labels, imagenet: bool, found: list[str] | None) -> list[str]:
    from camkit.data.labels import imagenet_labels, read_labels

    if labels is not None and imagenet:
        raise CamkitError("give --labels FILE or --imagenet-labels, not both")
    if labels is not None or imagenet:
        names = read_labels(labels) if labels is not None else imagenet_labels()
        if len(names) != n_classes:
            what = f"--labels: {labels} has" if labels is not None else "--imagenet-labels: ImageNet has"
            raise CamkitError(f"{what} {len(names)} class names but the model has {n_classes} outputs")
        return names
    if found is not None and len(found) == n_classes:
        return found
    return [f"class {k}" for k in range(n_classes)]


def probabilities(model: keras.Model, x: Any) -> np.ndarray:
    batches = [x] if isinstance(x, np.ndarray) else (b[0] for b in x)
    outs = [np.asarray(keras.tree.flatten(model(b, training=False))[0], dtype=np.float64) for b in batches]
    out = np.concatenate(outs)
    if out.ndim != 2:
        raise CamkitError(f"model: its output has shape {out.shape[1:]}; explain needs one score per class")
    if (out >= 0).all() and np.allclose(out.sum(axis=1), 1, atol=1e-3):
        return out.astype(np.float32)
    e = np.exp(out - out.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def model_id(model: Any) -> str:
    """A model file's digest (the same weights under any path), or an in-memory model's name."""
    from camkit.workflows.store import file_digest

    if isinstance(model, (str, Path)):
        if not Path(model).is_file():
            raise CamkitError(f"{model}: model file not found")
        return file_digest(model)
    return f"model:{model.name}"


def load_explained_model(model: Any) -> keras.Model:
    """The model to explain (loaded from its file if needed); it must have one input."""
    from camkit.models.saving import load_model

    if not isinstance(model, keras.Model):
        model = load_model(model, compile=False)
    if len(model.inputs) != 1:
        raise CamkitError(f"model: explain needs a model with one input, this one has {len(model.inputs)}")
    return model


def dataset_class_names(n_classes: int, spec: SourceSpec, found: list[str], source: str) -> list[str]:
    """A time-series model's class names: ``--labels`` / ``--imagenet-labels``, else the dataset's, which must be
    one per model output."""
    if spec.labels is None and not spec.imagenet_labels and len(found) != n_classes:
        raise CamkitError(f"--dataset: {source} has {len(found)} classes but the model has {n_classes} outputs")
    return class_names_for(n_classes, spec.labels, spec.imagenet_labels, found)


def load_series(data: dict, split: str, n: int | None, model: keras.Model | None) -> Inputs:
    """The first ``n`` series of a split (all when None), checked against the model's input shape when given."""
    from camkit.data.timeseries import load_timeseries

    ds = load_timeseries(data["dataset"], data["root"], znorm=bool(data.get("znorm")))
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    n = len(x) if n is None else min(n, len(x))
    expected = tuple(model.input_shape[1:]) if model is not None else x.shape[1:]
    if len(expected) != 2 or any(e is not None and e != s for e, s in zip(expected, x.shape[1:], strict=True)):
        raise CamkitError(f"--dataset: the model expects inputs {expected} but {ds.name} gives {x.shape[1:]}")
    return Inputs("timeseries", ds.name, [f"{split}[{i}]" for i in range(n)], x[:n], series=x[:n],
                  class_names=list(ds.labels), extra={"y_true": y[:n], "split": split})


def load_image_inputs(model: keras.Model, data: dict, spec: SourceSpec, n: int | None, batch_size: int) -> Inputs:
    """The first ``n`` image files of the source as a dataset of model-ready batches."""
    from camkit.data.splits import PREPROCESSORS

    size, channels = image_input(model, spec.image_size)
    where, folder = load_image_files(data, spec.split, 2**62 if n is None else n)
    pre = PREPROCESSORS.get(data["preprocess"], data["preprocess"])
    x = folder.dataset(size, batch_size=batch_size, preprocess=pre, channels=channels)
    base = folder.root if Path(where).is_dir() else Path(where).parent
    inputs = Inputs("images", str(where), [p.relative_to(base).as_posix() for p in folder.files], x,
                    files=folder.files, class_names=folder.class_names or None)
    if folder.class_names:
        inputs.extra["true_names"] = [folder.class_names[i] for i in folder.labels]
    return inputs
