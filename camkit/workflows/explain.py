"""``camkit explain``: a trained model's maps on a time-series split or on image files, as one ``.npz`` + figures.

:func:`explain_to_dir` does everything the command does and returns the paths. Nothing is written before
every map is computed, and every file is written atomically, so a user error leaves nothing behind.

``explanation.npz`` (strings are NumPy unicode arrays, no pickle), N samples, C classes:

- always: ``mode`` (``single`` | ``layers`` | ``panels``), ``method``, ``maps``, ``targets`` and ``scores``
  (the explained class and its logit), ``probabilities`` (N, C), ``predicted`` (N,), ``names`` (image paths
  relative to the folder, or ``"test[i]"``), ``indices`` (N,) (position in the file listing or the split),
  ``class_names`` (C,), ``source`` (dataset or image folder); ``split`` for series; ``y_true`` (N,) when
  known (series; class folders whose names are model classes) and ``true_names`` for class folders.
- ``single``: ``maps`` (N, [K,] *input spatial) in [0, 1], ``raw`` (N, [K,] *layer spatial), ``layer``.
- ``layers`` (several ``--layer-backcount`` values; the first sample only, N = 1): ``maps`` (L, N, [K,] ...),
  ``layers`` (L,) paths, ``backcounts`` (L,), ``raw_0`` ... ``raw_{L-1}`` (shapes differ by layer).
- ``panels`` (notebook layout; method hires: ``hires/low``, ``hires/high``, ``hires/refined``): ``maps``
  (P, N, *input spatial), ``methods`` (P,), ``layers`` (P,) ("" for guided-backprop), ``raw_0`` ... ``raw_{P-1}``.
- a K axis (``targets`` (N, K)) exists when several classes are explained per sample: the image viewer
  layout (top-1, top-2, top-3, lowest) or ``--target topK``; ``columns`` (K,) names its entries.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from camkit.errors import CamkitError
from camkit.workflows.sources import (
    class_names_for,
    image_input,
    load_image_files,
    probabilities,
    resolve_source,
)

FORMATS = ("png", "pdf", "svg")
PREPROCESS = ("rescale", "vgg16", "none")
LAYOUTS = ("viewer", "notebook")
CLUSTER_METHODS = ("gradceam", "guided-gradceam")
HIRES_PANELS = ("low", "high", "refined")  # method hires: its three maps, drawn beside the image
MAX_SHOWN = 20  # --show opens at most this many figures
_OUR_FIGURES = re.compile(r"^(image_\d+_.*|series_\d+|series_grid|layer_\d+)\.(png|pdf|svg)$")


@dataclass
class ExplainResult:
    """What :func:`explain_to_dir` wrote and a summary of it."""

    save_dir: Path
    npz: Path
    figures: list[Path]
    kind: str  # "timeseries" | "images"
    n: int
    methods: list[str]  # the requested method, or the notebook layout's panels
    layers: list[str]
    source: str
    notes: list[str] = field(default_factory=list)


@dataclass
class _Data:
    kind: str
    source: str
    names: list[str]
    class_names: list[str] | None  # from the dataset / class folders; None when unknown
    x: Any  # (N, T, C) array, or a tf.data.Dataset of image batches
    series: np.ndarray | None = None
    files: list[Path] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # y_true, true_names, split


def parse_target(target: str | int | None) -> str | int | None:
    """``predicted``/None -> None, ``lowest``, ``topK`` -> ``"topK"``, an integer -> the class index."""
    if target is None or isinstance(target, int):
        return target
    text = str(target).strip().lower()
    if text == "predicted":
        return None
    if text == "lowest" or re.fullmatch(r"top[1-9]\d*", text):
        return text
    if re.fullmatch(r"\d+", text):
        return int(text)
    raise CamkitError(f"--target: expected predicted, lowest, topK (e.g. top3) or a class index, got {target!r}")


def parse_layer(layer: str | int | None) -> str | int | None:
    """A layer name or path; ``-N`` (N-th conv from the end) becomes an int."""
    if isinstance(layer, str) and re.fullmatch(r"-\d+", layer.strip()):
        return int(layer)
    return layer


def _load_series(data: dict, split: str, n: int) -> _Data:
    from camkit.data.timeseries import load_timeseries

    ds = load_timeseries(data["dataset"], data["root"], znorm=bool(data.get("znorm")))
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    n = min(n, len(x))
    return _Data("timeseries", ds.name, [f"{split}[{i}]" for i in range(n)], list(ds.labels), x[:n], series=x[:n],
                 extra={"y_true": y[:n], "split": split})


def _target_plan(target: Any, n_classes: int, images: bool) -> tuple[list[tuple[Any, list[str]]], bool]:
    """[(engine targets, column names)] and whether the result gets a K axis."""
    if target is None and images:  # the Grad-CAM viewer: top-1, top-2, top-3 and the lowest class
        k = min(3, n_classes)
        return [(f"top{k}", [f"top{r + 1}" for r in range(k)]), ("lowest", ["lowest"])], True
    if isinstance(target, str) and target.startswith("top"):
        return [(target, [f"top{r + 1}" for r in range(int(target[3:]))])], True
    return [(target, ["predicted" if target is None else "lowest" if target == "lowest" else "target"])], False


def _explain(model, x, method, layer, plan, with_k, batch_size, progress, options) -> dict[str, Any]:
    import camkit

    parts = []
    for targets, _ in plan:
        exp = camkit.explain(model, x, method=method, layer=layer, targets=targets, batch_size=batch_size,
                             progress=progress, **options)
        fields = [exp.maps, exp.raw, exp.targets, exp.scores]
        is_top = isinstance(targets, str) and targets.startswith("top")
        parts.append([f if is_top or not with_k else f[:, None] for f in fields] + [exp.layer])
    out = {key: np.concatenate([p[i] for p in parts], axis=1) if with_k else parts[0][i]
           for i, key in enumerate(["maps", "raw", "targets", "scores"])}
    out["layer"] = parts[0][4] or ""
    return out


def explain_to_dir(
    model: str | Path | keras.Model | None = None, *, config: str | Path | None = None, experiment: str | None = None,
    dataset: str | None = None, images: str | Path | None = None, data_root: str | Path | None = None,
    split: str = "test", method: str = "gradcam", layer: str | int | None = None,
    layer_backcount: Sequence[int] = (), n_images: int | str | None = None, target: str | int | None = None,
    labels: str | Path | None = None, imagenet_labels: bool = False, image_size: int | None = None,
    preprocess: str | None = None, layout: str | None = None, batch_size: int = 32,
    save_dir: str | Path | None = None, root: str | Path = ".", fmt: str = "png", show: bool = False,
    progress: bool | None = None, shard: str | None = None, options: dict[str, Any] | None = None,
    n_figures: int = 8, overwrite: bool = False,
) -> ExplainResult:
    """Explain ``n_images`` samples of a dataset split or image files; write ``explanation.npz`` + figures.

    ``model``: a .keras/.h5 path or a keras.Model; or name an experiment with ``config`` (a YAML path) or
    ``experiment`` (``<root>/models/NAME/best.keras``), whose dataset is then the default. ``layer_backcount``:
    the Grad-CAM viewer's count of conv layers from the end (1 = last); several values explain the first
    sample at every one of those layers. ``layout``: images only, ``viewer`` (default) or ``notebook``
    (input | CAM | guided backprop | guided Grad-CAM; the default for guided methods). ``n_images``: a count
    (default 8; all for ``augmented-gradcam``) or ``"all"``; ``options`` go to the method. Images with
    ``n_images="all"``, a ``shard`` or method ``augmented-gradcam`` (the first ``n_images``) are explained batch
    by batch into ``save_dir/batches/`` (``explain_dataset.py``: resumable and shardable, ``n_figures`` figures).
    ``method`` gradceam or guided-gradceam: the best / worst / centre figures of a clustering experiment
    (``explain_clusters.py``).
    """
    import camkit
    from camkit.data.splits import PREPROCESSORS
    from camkit.methods import NoCamHead
    from camkit.models.saving import load_model

    column_list = isinstance(target, str) and ("," in target or target.strip().lower() == "true")
    target = target if column_list else parse_target(target)
    layer = parse_layer(layer)
    for ok, message in [
        (fmt in FORMATS, f"--format: choose one of {', '.join(FORMATS)}, not {fmt!r}"),
        (split in ("test", "train"), f"--split: choose test or train, not {split!r}"),
        (layout in (None, *LAYOUTS), f"--layout: choose viewer or notebook, not {layout!r}"),
        (n_images in (None, "all") or (str(n_images).isdigit() and int(n_images) >= 1),
         f"--n-images: expected a positive count or all, not {n_images!r}"),
        (batch_size >= 1, "--batch-size must be at least 1"),
        (all(b >= 1 for b in layer_backcount), "--layer-backcount counts conv layers from 1 (the last)"),
        (layer is None or not layer_backcount, "give --layer or --layer-backcount, not both"),
        (method in camkit.methods(), f"--method: unknown method {method!r}; choose one of "
                                     f"{', '.join(camkit.methods())}"),
    ]:
        if not ok:
            raise CamkitError(message)
    if method in CLUSTER_METHODS:  # a clustering experiment's best / worst / centre figures
        from camkit.workflows.clusters import explain_clusters

        return explain_clusters(config=config, experiment=experiment, dataset=dataset, data_root=data_root,
                                split=split, layer=layer, batch_size=batch_size, root=root, fmt=fmt,
                                save_dir=save_dir, progress=progress)
    model, exp_name, data = resolve_source(model, config, experiment, dataset, images, data_root, preprocess, root)
    if data["preprocess"] not in PREPROCESS:
        raise CamkitError(f"--preprocess: choose one of {', '.join(PREPROCESS)}, not {data['preprocess']!r}")
    is_images = data.get("kind") == "images"
    multi = len(layer_backcount) > 1
    if layer_backcount and not multi:
        layer = -layer_backcount[0]
    layout = layout or ("notebook" if (method.startswith("guided") or method == "hires") and is_images else "viewer")
    if layout == "notebook" and not is_images:
        raise CamkitError("--layout notebook is for images; time series get one figure per sample")
    if layout == "notebook" and options:
        raise CamkitError("--option: the notebook layout runs its own methods with their defaults")
    if layout == "notebook" and (multi or (isinstance(target, str) and target.startswith("top"))):
        raise CamkitError("--layout notebook explains one class per image at one layer: "
                          "drop --target topK / several --layer-backcount values")
    streamed = is_images and (shard is not None or n_images == "all" or method == "augmented-gradcam")
    if shard is not None and not streamed:
        raise CamkitError("--shard splits an image folder's batches: it needs --images")
    if column_list and not streamed:
        raise CamkitError(f"--target {target}: lists and 'true' are for whole-folder runs (--n-images all)")
    if streamed:
        if multi or layout == "notebook":
            raise CamkitError("a whole-folder run explains one layer with one method: drop --layer-backcount / "
                              "--layout notebook")
        from camkit.workflows.folder import run_folder

        return run_folder(model, data, exp_name, method=method, options=options or {}, layer=layer, target=target,
                          split=split, labels=labels, imagenet_labels=imagenet_labels, image_size=image_size,
                          n_images=None if n_images in (None, "all") else int(n_images), batch_size=batch_size,
                          save_dir=save_dir, root=root, shard=shard, n_figures=n_figures, fmt=fmt, progress=progress,
                          overwrite=overwrite)  # loads the model itself, after hashing its file
    if not isinstance(model, keras.Model):
        model = load_model(model, compile=False)
    if len(model.inputs) != 1:
        raise CamkitError(f"model: explain needs a model with one input, this one has {len(model.inputs)}")
    n_images = 8 if n_images is None else int(n_images)
    if is_images:
        size, channels = image_input(model, image_size)
        where, folder = load_image_files(data, split, 1 if multi else n_images)
        pre = PREPROCESSORS.get(data["preprocess"], data["preprocess"])
        x = folder.dataset(size, batch_size=batch_size, preprocess=pre, channels=channels)
        base = folder.root if Path(where).is_dir() else Path(where).parent
        d = _Data("images", str(where), [p.relative_to(base).as_posix() for p in folder.files],
                  folder.class_names or None, x, files=folder.files)
        if folder.class_names:
            d.extra["true_names"] = [folder.class_names[i] for i in folder.labels]
    else:
        if image_size is not None:
            raise CamkitError("--image-size is for images; time series keep their length")
        d = _load_series(data, split, 1 if multi else n_images)
        expected = tuple(model.input_shape[1:])
        if len(expected) != 2 or any(e is not None and e != s for e, s in zip(expected, d.x.shape[1:], strict=True)):
            raise CamkitError(f"--dataset: the model expects inputs {expected} but {d.source} gives {d.x.shape[1:]}")
    bar = progress if progress is not None else len(d.names) > 4 * batch_size  # a bar for long work only
    probs = probabilities(model, d.x)
    if len(probs) != len(d.names):
        raise CamkitError(f"--images: {len(d.names) - len(probs)} image(s) became unreadable while explaining")
    n_classes = probs.shape[1]
    if not is_images and labels is None and not imagenet_labels and len(d.class_names) != n_classes:
        raise CamkitError(f"--dataset: {d.source} has {len(d.class_names)} classes but the model has "
                          f"{n_classes} outputs")
    class_names = class_names_for(n_classes, labels, imagenet_labels, d.class_names)
    if "true_names" in d.extra and set(d.extra["true_names"]) <= set(class_names):
        d.extra["y_true"] = np.array([class_names.index(t) for t in d.extra["true_names"]])

    plan, with_k = _target_plan(target, n_classes, is_images and layout == "viewer")
    columns = [c for _, cols in plan for c in cols]
    arrays: dict[str, Any] = {}
    notes: list[str] = []
    if multi:
        per = [_explain(model, d.x, method, -b, plan, with_k, batch_size, bar, options or {})
               for b in layer_backcount]
        arrays.update(mode="layers", layers=[p["layer"] for p in per], backcounts=list(layer_backcount),
                      maps=np.stack([p["maps"] for p in per]), **{f"raw_{i}": p["raw"] for i, p in enumerate(per)})
        first = per[0]
    elif layout == "notebook":
        guided = "guided-gradcam++" if method in ("gradcam++", "guided-gradcam++") else "guided-gradcam"
        per = []
        if method == "hires":  # image | low-res CAM | high-res CAM | refined map
            for output in HIRES_PANELS:
                per.append(_explain(model, d.x, method, layer, plan, False, batch_size, bar, {"output": output})
                           | {"method": f"hires/{output}"})
        for m in (() if method == "hires" else ("cam", "guided-backprop", guided)):
            try:
                per.append(_explain(model, d.x, m, layer, plan, False, batch_size, bar, {}) | {"method": m})
            except NoCamHead as exc:
                notes.append("the model has no GAP -> Dense head: Grad-CAM shown instead of CAM")
                per.append(_explain(model, d.x, exc.fallback, layer, plan, False, batch_size, bar, {})
                           | {"method": exc.fallback})
        arrays.update(mode="panels", methods=[p["method"] for p in per], layers=[p["layer"] for p in per],
                      maps=np.stack([p["maps"] for p in per]), **{f"raw_{i}": p["raw"] for i, p in enumerate(per)})
        first = per[0]
    else:
        first = _explain(model, d.x, method, layer, plan, with_k, batch_size, bar, options or {})
        arrays.update(mode="single", maps=first["maps"], raw=first["raw"], layer=first["layer"])
    n = len(first["targets"])
    arrays.update(method=method, targets=first["targets"], scores=first["scores"], probabilities=probs,
                  predicted=probs.argmax(axis=1), names=d.names, indices=np.arange(n), class_names=class_names,
                  source=d.source, **d.extra)
    if with_k:
        arrays["columns"] = columns

    from camkit.plots.explain import build_figures

    save_dir = Path(save_dir) if save_dir is not None else (
        Path(root) / "plots" / exp_name
        / f"explain_{method}{'_notebook' if layout == 'notebook' and method != 'hires' else ''}")
    figures = build_figures(arrays, d, columns, fmt)
    npz, written = _write(save_dir, arrays, figures, progress)
    if show:
        _show([build for _, build in figures[:MAX_SHOWN]])
    layers = list(dict.fromkeys(str(x) for x in arrays.get("layers", [arrays.get("layer", "")]) if x))
    methods = [str(m) for m in arrays.get("methods", [method])]
    return ExplainResult(save_dir, npz, written, d.kind, n, methods, layers, d.source, notes)


def _write(save_dir: Path, arrays: dict, figures: list[tuple[str, Callable]], progress: bool | None):
    from tqdm.auto import tqdm

    from camkit.io import atomic_path
    from camkit.plots import save_figure

    ours = (save_dir / "explanation.npz").is_file()
    npz = save_dir / "explanation.npz"
    with atomic_path(npz) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})
    written = []
    bar = tqdm(figures, desc="figures", unit="figure", leave=False, disable=progress is False or len(figures) < 10)
    for name, build in bar:
        written.append(save_figure(build(), save_dir / name))
    if ours:  # a previous run's figures that this run did not rewrite
        keep = {p.name for p in written}
        for old in save_dir.iterdir():
            if _OUR_FIGURES.match(old.name) and old.name not in keep:
                old.unlink(missing_ok=True)
    return npz, written


def _show(builders: list[Callable]) -> None:
    """Open the figures in an interactive window (camkit.plots selects Agg, so switch back if possible)."""
    import matplotlib
    import matplotlib.pyplot as plt

    if matplotlib.get_backend().lower() == "agg":
        with contextlib.suppress(Exception):
            plt.switch_backend(os.environ.get("MPLBACKEND") or matplotlib.rcsetup._auto_backend_sentinel)
    for build in builders:
        build()
    plt.show()
    plt.close("all")
