"""Explaining a whole image folder: streamed, one ``.npz`` per batch, resumable, shardable.

``camkit explain --images DIR --n-images all`` (the default for ``augmented-gradcam``) lists the readable images
of DIR in file order, cuts the list into batches of ``--batch-size`` (batch ``b`` = images ``b·B .. b·B + B − 1``),
and writes under the save folder:

- ``run.json``: the settings (model, method and its options, layer, targets, batch size, input size,
  preprocessing, the image list's digest). A rerun into the same folder must use the same settings;
- ``batches/batch_BBBBB.npz``, one per batch, written atomically, so a batch file is complete or absent;
- ``figures/image_IIIII.png`` for the first ``n_figures`` images: the image with every map variant over it
  (augmented Grad-CAM: single | max | avg | super-resolution), each with its box (largest component of the
  map above 15 % of its max; 20 % for CAM) in the image's own pixels.

A batch file holds (B images, K target columns, strings as NumPy unicode): ``names`` (B,) paths relative to
DIR, ``indices`` (B,) positions in the listing, ``y_true`` (B,) class index from the class folder (−1 unknown),
``top5`` / ``top5_probs`` (B, ≤5) the model's best classes on the unaugmented image, ``columns`` (K,) (``top1``,
``top2``, ..., ``lowest``, ``true``, ``class<k>``), ``targets`` / ``scores`` (B, K) the explained class and its
logit, ``variants`` (A,) map names (the aggregations of augmented Grad-CAM, else the method's name), and for each
variant ``maps_<variant>`` (B, K, H, W) float16 in [0, 1] at the model's input size; augmented Grad-CAM with
``sr`` adds ``sr_iterations``, ``sr_objective``, ``sr_gap`` (B, K).

Rerunning skips the batches whose file exists, so an interrupted run resumes where it stopped and gives the same
files. ``--shard i/n`` (0 ≤ i < n) computes only the batches ``b`` with ``b mod n = i``: n machines writing into
copies of the folder produce disjoint batch files whose union is exactly the unsharded run's (each batch holds the
same images and is computed at the same batch shape).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from camkit.errors import CamkitError

N_TOP = 5
_TOKEN = re.compile(r"^(predicted|lowest|true|top(\d+)|(\d+))$")


@dataclass
class DatasetResult:
    """What :func:`explain_dataset` did."""

    save_dir: Path
    n_images: int
    n_batches: int
    batches: list[int]  # this shard's batches
    computed: list[int]  # batches computed by this run (the others were already there)
    figures: list[Path] = field(default_factory=list)
    layer: str = ""  # the layer the maps were taken at


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 ≤ i < n; None -> (0, 1)."""
    if text is None:
        return 0, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise CamkitError(f"--shard: expected i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def parse_columns(target: str | int | None, n_classes: int) -> list[str]:
    """``--target`` as a comma list of predicted, topK, lowest, true or a class index -> column names."""
    tokens = ["predicted"] if target is None else [t.strip().lower() for t in str(target).split(",") if t.strip()]
    columns: list[str] = []
    for token in tokens:
        match = _TOKEN.match(token)
        if not match:
            raise CamkitError(f"--target: {token!r} is not predicted, topK, lowest, true or a class index")
        if token == "predicted":
            columns.append("top1")
        elif match.group(2):
            k = int(match.group(2))
            if k < 1:
                raise CamkitError(f"--target: {token}: K must be at least 1")
            columns += [f"top{r + 1}" for r in range(min(k, n_classes))]  # top5 of a 3-class model: its 3
        elif match.group(3):
            if int(token) >= n_classes:
                raise CamkitError(f"--target: class {token} is out of range; the model has {n_classes} classes")
            columns.append(f"class{int(token)}")
        else:
            columns.append(token)
    return list(dict.fromkeys(columns))


def batch_path(save_dir: Path, index: int) -> Path:
    return save_dir / "batches" / f"batch_{index:05d}.npz"


def files_digest(names: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(names).encode()).hexdigest()


def check_settings(folder: Path, settings: dict[str, Any], overwrite: bool = False) -> None:
    """Write ``folder/run.json``, or check that the folder's earlier run used the same settings.

    With ``overwrite``, an earlier run with other settings is removed (its ``run.json``, ``batch_*`` files and
    ``batches/``, ``figures/`` folders) instead of refused.
    """
    from camkit.io import atomic_write_json, jsonable

    settings = json.loads(json.dumps(settings, default=jsonable))  # compare as JSON reads it back
    path = folder / "run.json"
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except ValueError:
            before = {"run.json": "unreadable"}
        diff = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if diff and not overwrite:
            raise CamkitError(f"{folder}: it holds a run with other settings ({', '.join(diff)}); choose another "
                              "folder, remove it, or pass --overwrite")
        if diff:
            for old in [path, *folder.glob("batch_*"), folder / "batches", folder / "figures"]:
                if old.is_dir():
                    shutil.rmtree(old)
                elif old.exists():
                    old.unlink()
    if not path.is_file():
        atomic_write_json(path, settings)


def _engine_targets(column: str, y_true: np.ndarray) -> Any:
    if column == "true":
        if (y_true < 0).any():
            raise CamkitError("--target true: some images are not in a class folder named after a model class")
        return y_true.astype(np.int64)
    if column.startswith("class"):
        return int(column[5:])
    if column.startswith("top"):
        return f"top{column[3:]}"
    return column  # lowest


def _explain_fields(model: keras.Model, x: np.ndarray, targets: Any, method: str, layer: Any,
                    options: dict[str, Any], batch_size: int) -> tuple[dict[str, np.ndarray], str]:
    import camkit

    exp = camkit.explain(model, x, method=method, layer=layer, targets=targets, batch_size=batch_size,
                         progress=False, **options)
    variants = {f"maps_{name}": maps for name, maps in exp.variants.items()}
    return {"targets": exp.targets, "scores": exp.scores, "": exp.maps, **variants, **exp.stats}, exp.layer or ""


def explain_batch_arrays(model: keras.Model, x: np.ndarray, columns: Sequence[str], y_true: np.ndarray,
                         method: str, layer: Any, options: dict[str, Any], batch_size: int) -> dict[str, np.ndarray]:
    """The arrays of one batch file (without names and indices): top-5, targets, scores and every map variant.

    Columns ``top1..topK`` come from one ``targets="topK"`` call; column ``true`` reuses the ``top1`` maps of the
    images whose true class is predicted and explains only the others.
    """
    from camkit.workflows.sources import probabilities

    probs = probabilities(model, x)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :N_TOP]
    out: dict[str, Any] = {"top5": top, "top5_probs": np.take_along_axis(probs, top, 1), "y_true": y_true,
                           "columns": list(columns)}
    k = max((int(c[3:]) for c in columns if c.startswith("top")), default=0)
    computed: dict[str, dict[str, np.ndarray]] = {}
    layer_path = ""
    if k:
        fields, layer_path = _explain_fields(model, x, f"top{k}", method, layer, options, batch_size)
        computed.update({f"top{r + 1}": {n: v[:, r] for n, v in fields.items()} for r in range(k)})
    for column in columns:
        if column in computed:
            continue
        if column == "true" and "top1" in computed:
            true = _engine_targets("true", y_true)
            fields = {n: v.copy() for n, v in computed["top1"].items()}
            other = np.flatnonzero(computed["top1"]["targets"] != true)
            if len(other):
                part, layer_path = _explain_fields(model, x[other], true[other], method, layer, options, batch_size)
                for n, v in part.items():
                    fields[n][other] = v
            computed[column] = fields
        else:
            computed[column], layer_path = _explain_fields(model, x, _engine_targets(column, y_true), method, layer,
                                                           options, batch_size)
    per_column = [computed[c] for c in columns]
    order = ("single", "max", "avg", "sr", "low", "high", "refined")  # augmented Grad-CAM's, then hires' variants
    found = [n[5:] for n in per_column[0] if n.startswith("maps_")]
    variants = sorted(found, key=lambda v: order.index(v) if v in order else len(order)) or [method]
    out["variants"] = variants
    out["layer"] = layer_path
    stack = {name: np.stack([c[name] for c in per_column], axis=1) for name in per_column[0]}
    out.update(targets=stack.pop("targets"), scores=stack.pop("scores"))
    plain = stack.pop("")
    for variant in variants:
        out[f"maps_{variant}"] = stack.pop(f"maps_{variant}", plain).astype(np.float16)
    out.update(stack)  # sr_iterations, sr_objective, sr_gap
    return out


def explain_dataset(model: keras.Model, folder: Any, base: Path, save_dir: Path, *, method: str,
                    options: dict[str, Any], layer: Any, target: str | int | None, class_names: Sequence[str],
                    size: tuple[int, int], channels: int, preprocess: Any, settings: dict[str, Any],
                    batch_size: int = 32, shard: str | None = None, n_figures: int = 8, fmt: str = "png",
                    progress: bool | None = None, true_labels: dict[str, int] | None = None,
                    overwrite: bool = False) -> DatasetResult:
    """Explain every image of ``folder`` (an :class:`~camkit.data.images.ImageFolder`) into ``save_dir``.

    ``true_labels``: image id (file stem) -> class index, for images not in class folders (e.g. from annotations).
    """
    from tqdm.auto import tqdm

    from camkit.data.images import ImageFolder
    from camkit.io import atomic_path, atomic_write_json

    i, n = parse_shard(shard)
    names = [p.relative_to(base).as_posix() for p in folder.files]
    y_true = np.array([class_names.index(folder.class_names[y]) if y >= 0 and folder.class_names[y] in class_names
                       else -1 for y in folder.labels], np.int64)
    if true_labels is not None:
        from camkit.data.boxes import image_id

        y_true = np.array([true_labels.get(image_id(name), -1) for name in names], np.int64)
    columns = parse_columns(target, len(class_names))
    check_settings(save_dir, {**settings, "method": method, "options": options, "columns": columns,
                               "batch_size": batch_size, "input_size": list(size), "n_images": len(names),
                               "files_sha1": files_digest(names)}, overwrite)
    atomic_write_json(save_dir / "source.json", {"folder": str(Path(base).resolve())})  # for eval figures
    n_batches = -(-len(names) // batch_size)
    mine = [b for b in range(n_batches) if b % n == i]
    todo = [b for b in mine if not batch_path(save_dir, b).is_file()]
    rows = [r for b in todo for r in range(b * batch_size, min((b + 1) * batch_size, len(names)))]
    pending = ImageFolder(folder.root, [folder.files[r] for r in rows], [folder.labels[r] for r in rows],
                          folder.class_names)
    stream = pending.dataset(size, batch_size=batch_size, preprocess=preprocess, channels=channels) if rows else []
    figures: list[Path] = []
    bar = tqdm(total=len(rows), unit="image", desc=f"explain {method}", leave=False,
               disable=progress is False or (progress is None and len(todo) < 2))
    with bar:
        for b, (x, _) in zip(todo, stream, strict=False):
            lo, hi = b * batch_size, min((b + 1) * batch_size, len(names))
            x = np.asarray(x, np.float32)
            if len(x) != hi - lo:
                raise CamkitError(f"--images: an image of batch {b} ({names[lo]} .. {names[hi - 1]}) became "
                                  "unreadable while explaining")
            arrays = explain_batch_arrays(model, x, columns, y_true[lo:hi], method, layer, options, batch_size)
            arrays.update(names=names[lo:hi], indices=np.arange(lo, hi), class_names=list(class_names))
            path = batch_path(save_dir, b)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})
            figures += _figures(save_dir, folder.files, arrays, method, n_figures, fmt)
            bar.update(hi - lo)
    layer_path = str(arrays["layer"]) if todo else _stored_layer(save_dir, mine)
    return DatasetResult(save_dir, len(names), n_batches, mine, todo, figures, layer_path)


def _stored_layer(save_dir: Path, batches: Sequence[int]) -> str:
    if not batches:
        return ""
    with np.load(batch_path(save_dir, batches[0]), allow_pickle=False) as f:
        return str(f["layer"])


def read_batches(save_dir: str | Path) -> dict[str, np.ndarray]:
    """Every batch file of a dataset run (or of merged shards) joined in image order; a missing image is an error."""
    folder = Path(save_dir) / "batches"
    paths = sorted(folder.glob("batch_*.npz"))
    if not paths:
        raise CamkitError(f"{folder}: no batch_*.npz files (run camkit explain --n-images all first)")
    parts = []
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as f:
                parts.append({k: f[k] for k in f.files})
        except (OSError, ValueError) as exc:
            raise CamkitError(f"{path}: not a readable batch file ({exc})") from None
    out = {k: np.concatenate([p[k] for p in parts]) for k, v in parts[0].items() if v.ndim and k != "columns"
           and k != "variants" and k != "class_names"}
    out.update({k: parts[0][k] for k in ("columns", "variants", "class_names", "layer")})
    run = folder.parent / "run.json"  # its image count also catches missing trailing batches
    n_images = json.loads(run.read_text())["n_images"] if run.is_file() else int(out["indices"].max()) + 1
    missing = sorted(set(range(n_images)) - set(out["indices"].tolist()))
    if missing:
        raise CamkitError(f"{folder}: images {missing[:5]}... are missing: a shard has not finished or was not "
                          "merged (copy every shard's batches/ into one folder)")
    return out


_TITLES = {"single": "single Grad-CAM", "max": "max", "avg": "avg", "sr": "super-resolution", "low": "low-res CAM",
           "high": "high-res CAM", "refined": "refined"}


def variant_figure(image: np.ndarray, arrays: dict[str, Any], j: int, threshold: float, column: int = 0,
                   gt_boxes: Sequence[tuple[int, int, int, int]] = ()) -> Any:
    """Image ``j`` of a batch file: the input, then every map variant of ``column`` over it with its box (white)
    and the ground-truth boxes (green, dashed) when given."""
    from camkit.metrics.map_boxes import Preprocessing, box_from_map
    from camkit.plots import Panel, panels_figure
    from camkit.plots.explain import class_text

    geometry = Preprocessing(tuple(arrays[f"maps_{arrays['variants'][0]}"].shape[-2:])).geometry(*image.shape[:2])
    panels = [Panel("image", image, "input", gt_boxes=gt_boxes)]
    for variant in arrays["variants"]:
        heat = arrays[f"maps_{variant}"][j, column].astype(np.float32)
        box = box_from_map(heat, geometry, threshold)
        panels.append(Panel("overlay", heat, _TITLES.get(str(variant), str(variant)), boxes=[box.as_tuple()],
                            gt_boxes=gt_boxes))
    probs = np.zeros(len(arrays["class_names"]))
    probs[arrays["top5"][j]] = arrays["top5_probs"][j]
    target = int(arrays["targets"][j, column])
    return panels_figure(image, panels, f"{arrays['names'][j]}: {class_text(arrays['class_names'], target, probs)}")


def _figures(save_dir: Path, files: Sequence[Path], arrays: dict[str, Any], method: str, n_figures: int,
             fmt: str) -> list[Path]:
    """The first ``n_figures`` images of the listing that fall in this batch: every variant with its box."""
    from camkit.data.images import load_original
    from camkit.methods import method_class
    from camkit.plots import save_figure

    written = []
    for j, index in enumerate(arrays["indices"]):
        if index >= n_figures:
            break
        figure = variant_figure(load_original(files[index]), arrays, j, method_class(method).box_threshold)
        written.append(save_figure(figure, save_dir / "figures" / f"image_{index:05d}.{fmt}"))
    return written


def _model_id(model: Any) -> str:
    """A model file's SHA-1 (the same weights under any path), or an in-memory model's name."""
    if isinstance(model, (str, Path)):
        digest = hashlib.sha1()
        with open(model, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return f"sha1:{digest.hexdigest()}"
    return f"model:{model.name}"


def run_folder(model: Any, data: dict[str, Any], exp_name: str, *, method: str, options: dict[str, Any], layer: Any,
               target: Any, split: str, labels: Any, imagenet_labels: bool, image_size: int | None,
               n_images: int | None, batch_size: int, save_dir: str | Path | None, root: str | Path,
               shard: str | None, n_figures: int, fmt: str, progress: bool | None,
               true_labels: Any = None, overwrite: bool = False) -> Any:
    """``camkit explain`` on a whole image folder (the module docstring): resolve inputs, run, summarise."""
    from camkit.data.splits import PREPROCESSORS
    from camkit.models.saving import load_model
    from camkit.workflows.explain import ExplainResult
    from camkit.workflows.sources import class_names_for, image_input, load_image_files

    model_id = _model_id(model)
    if not isinstance(model, keras.Model):
        model = load_model(model, compile=False)
    if len(model.inputs) != 1:
        raise CamkitError(f"model: explain needs a model with one input, this one has {len(model.inputs)}")
    size, channels = image_input(model, image_size)
    where, folder = load_image_files(data, split, n_images or 2**62)
    base = folder.root if Path(where).is_dir() else Path(where).parent
    n_classes = int(keras.tree.flatten(model.outputs)[0].shape[-1])
    class_names = class_names_for(n_classes, labels, imagenet_labels, folder.class_names or None)
    save_dir = Path(save_dir) if save_dir is not None else Path(root) / "plots" / exp_name / f"explain_{method}"
    settings = {"model": model_id, "layer": layer, "preprocess": data["preprocess"], "class_names": class_names}
    result = explain_dataset(
        model, folder, base, save_dir, method=method, options=options, layer=layer, target=target,
        class_names=class_names, size=size, channels=channels,
        preprocess=PREPROCESSORS.get(data["preprocess"], data["preprocess"]), settings=settings,
        batch_size=batch_size, shard=shard, n_figures=n_figures, fmt=fmt, progress=progress,
        true_labels=true_labels(class_names) if callable(true_labels) else true_labels, overwrite=overwrite)
    skipped = len(result.batches) - len(result.computed)
    notes = [f"{len(result.computed)} of {len(result.batches)} batch(es) computed, {skipped} already there"]
    if shard is not None:
        notes.append(f"shard {shard}: {len(result.batches)} of {result.n_batches} batches")
    return ExplainResult(save_dir, save_dir / "batches", result.figures, "images", result.n_images, [method],
                         [result.layer] if result.layer else [], str(where), notes)
