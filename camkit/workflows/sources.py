"""Where ``camkit explain`` and ``camkit eval-localization`` get their inputs: model, data, image files, classes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

from camkit.errors import CamkitError


def _read_manifest_data(root: Path, name: str) -> dict:
    path = root / "results" / name / "manifest.json"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return json.loads(path.read_text()).get("config", {}).get("data", {}) or {}
    return {}


def resolve_source(model, config, experiment, dataset, images, data_root, preprocess, root) -> tuple[Any, str, dict]:
    """(model or model path, experiment name, data defaults) from the options."""
    from camkit.config import load_config
    from camkit.workflows.results import RunDirs

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
    data["root"] = data_root or data.get("root") or "data"
    data["preprocess"] = preprocess or data.get("preprocess") or "rescale"
    return model, exp, data


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
