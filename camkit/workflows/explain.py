"""``camkit explain``: a trained model's maps on a time-series split or on image files, as one ``.npz`` + figures.

:func:`explain_to_dir` runs an :class:`~camkit.workflows.plan.ExplainPlan`. What the method declares decides the
route: a clustering method (``task == "cluster"``) draws a clustering experiment's figures (``clusters.py``); an
image folder or a time-series split with ``--n-images all``, a ``--shard`` or a method that ``streams`` is
explained batch by batch into the map store (``folder.py``); anything else is a small run written here. Nothing
is written before every map is computed, and every file is written atomically, so a user error leaves nothing
behind.

``explanation.npz`` (strings are NumPy unicode arrays, no pickle), N samples, C classes:

- always: ``mode`` (``single`` | ``layers`` | ``panels``), ``method``, ``maps``, ``targets`` and ``scores``
  (the explained class and its logit), ``probabilities`` (N, C), ``predicted`` (N,), ``names`` (image paths
  relative to the folder, or ``"test[i]"``), ``indices`` (N,), ``class_names`` (C,), ``source``; ``split`` for
  series; ``y_true`` (N,) when known and ``true_names`` for class folders; ``run``: the run record (settings and
  digests of the model and the inputs, JSON).
- ``single``: ``maps`` (N, [K,] *input spatial) in [0, 1], ``raw`` (N, [K,] *layer spatial), ``layer``.
- ``layers`` (several ``--layer-backcount`` values; the first sample only, N = 1): ``maps`` (L, N, [K,] ...),
  ``layers`` (L,) paths, ``backcounts`` (L,), ``raw_0`` ... ``raw_{L-1}`` (shapes differ by layer).
- ``panels`` (notebook layout: the method's ``notebook_panels``; a method with variants gives one panel per
  variant, named ``<method>/<variant>``): ``maps`` (P, N, *input spatial), ``methods`` (P,), ``layers`` (P,)
  ("" where no layer is used), ``raw_0`` ... ``raw_{P-1}``.
- a K axis (``targets`` (N, K)) exists when several classes are explained per sample: the image viewer
  layout (top-1, top-2, top-3, lowest), ``--target topK`` or a list; ``columns`` (K,) names its entries.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from camkit.errors import CamkitError
from camkit.io import check_destination
from camkit.methods import Explanation, MethodNotApplicable, explain, method_class
from camkit.methods.targets import TargetPlan, parse_targets
from camkit.plots.explain import FigureText, PanelStyle, build_figures
from camkit.workflows.clusters import explain_clusters
from camkit.workflows.folder import explain_folder
from camkit.workflows.plan import ExplainPlan, ExplainResult, check_model_options, check_plan
from camkit.workflows.records import files_digest, folder_digest
from camkit.workflows.sources import (
    Inputs,
    Resolved,
    class_names_for,
    dataset_class_names,
    load_explained_model,
    load_image_inputs,
    load_series,
    model_id,
    probabilities,
    resolve_source,
)
from camkit.workflows.store import MapStore

MAX_SHOWN = 20  # --show opens at most this many figures
_OUR_FIGURES = re.compile(r"^(image_\d+_.*|series_\d+|series_grid|layer_\d+)\.(png|pdf|svg)$")


def explain_to_dir(plan: ExplainPlan) -> ExplainResult:
    """Explain the plan's samples; write ``explanation.npz`` + figures (or a store / a clustering's figures)."""
    check_plan(plan)
    if plan.save_dir is not None:
        check_destination(plan.save_dir, "--save-dir")
    else:
        check_destination(plan.source.root, "--root")
    if method_class(plan.method).task == "cluster":
        return explain_clusters(plan)
    resolved = resolve_source(plan.source)
    kind, kinds = "images" if resolved.is_images else "series", method_class(plan.method).input_kinds
    if kind not in kinds:
        raise CamkitError(f"--method {plan.method}: it explains {' and '.join(kinds)}, not {kind}")
    if streamed(plan):
        if len(plan.layer_backcount) > 1 or plan.layout == "notebook":
            raise CamkitError("a whole-folder run explains one layer with one method: drop --layer-backcount / "
                              "--layout notebook")
        return explain_folder(plan, resolved)
    return explain_small(plan, resolved)


def streamed(plan: ExplainPlan) -> bool:
    """Images or series explained batch by batch into the store: all of them, a shard, or a method that streams
    (``--n-images N`` with none of these is a small run of the first N)."""
    return (plan.into_store or plan.shard is not None or plan.n_images == "all"
            or method_class(plan.method).streams)


def layout_of(plan: ExplainPlan, images: bool) -> str:
    """The figure layout: the plan's, else notebook for methods drawn as guided gradients or with variants."""
    cls = method_class(plan.method)
    layout = plan.layout or ("notebook" if images and (cls.display == "guided" or cls.variants) else "viewer")
    multi = len(plan.layer_backcount) > 1
    if layout == "notebook" and not images:
        raise CamkitError("--layout notebook is for images; time series get one figure per sample")
    if layout == "notebook" and plan.options:
        raise CamkitError("--option: the notebook layout runs its own methods with their defaults")
    stacked = plan.target is not None and parse_targets(plan.target).stacked
    if layout == "notebook" and (multi or stacked):
        raise CamkitError("--layout notebook explains one class per image at one layer: "
                          "drop --target topK / lists / several --layer-backcount values")
    return layout


def load_inputs(plan: ExplainPlan, resolved: Resolved, model: keras.Model) -> Inputs:
    n = 1 if len(plan.layer_backcount) > 1 else plan.count
    if resolved.is_images:
        return load_image_inputs(model, resolved.data, plan.source, n, plan.batch_size)
    if plan.source.image_size is not None:
        raise CamkitError("--image-size is for images; time series keep their length")
    return load_series(resolved.data, plan.source.split, n, model)


def class_names(plan: ExplainPlan, inputs: Inputs, n_classes: int) -> list[str]:
    """The model's class names (``--labels``, ``--imagenet-labels``, the dataset's or the class folders')."""
    found, spec = inputs.class_names, plan.source
    names = (dataset_class_names(n_classes, spec, found, inputs.source) if inputs.kind == "timeseries" else
             class_names_for(n_classes, spec.labels, spec.imagenet_labels, found))
    if "true_names" in inputs.extra and set(inputs.extra["true_names"]) <= set(names):
        inputs.extra["y_true"] = np.array([names.index(t) for t in inputs.extra["true_names"]])
    return names


def target_plan(plan: ExplainPlan, n_classes: int, viewer_images: bool) -> TargetPlan:
    """The plan's targets; the image viewer's default is top-1, top-2, top-3 and the lowest class."""
    if plan.target is None and viewer_images:
        return parse_targets(f"top{min(3, n_classes)},lowest", n_classes)
    return parse_targets(plan.target, n_classes)


def run_method(model: keras.Model, inputs: Inputs, plan: ExplainPlan, call: dict[str, Any]) -> Explanation:
    """One engine call on the run's inputs (``call``: method, layer, targets and options)."""
    targets: TargetPlan = call["targets"]
    y_true = inputs.extra.get("y_true")
    if targets.needs_truth and y_true is None:
        raise CamkitError("--target true: the true classes are unknown (time series know them; images need class "
                          "folders named like the model's classes)")
    bar = plan.progress if plan.progress is not None else len(inputs.names) > 4 * plan.batch_size
    return explain(model, inputs.x, method=call["method"], layer=call["layer"], targets=targets,
                   batch_size=plan.batch_size, progress=bar, y_true=y_true, **call["options"])


def single_arrays(model, inputs: Inputs, plan: ExplainPlan, targets: TargetPlan) -> tuple[dict, FigureText]:
    call = {"method": plan.method, "layer": plan.layer_ref, "targets": targets,
            "options": plan.options}
    exp = run_method(model, inputs, plan, call)
    arrays = {"mode": "single", "maps": exp.maps, "raw": exp.raw, "layer": exp.layer or "",
              "targets": exp.targets, "scores": exp.scores}
    return arrays, FigureText(method_class(plan.method).title)


def layers_arrays(model, inputs: Inputs, plan: ExplainPlan, targets: TargetPlan) -> tuple[dict, FigureText]:
    calls = [{"method": plan.method, "layer": -b, "targets": targets, "options": plan.options}
             for b in plan.layer_backcount]
    per = [run_method(model, inputs, plan, call) for call in calls]
    arrays = {"mode": "layers", "layers": [e.layer or "" for e in per], "backcounts": list(plan.layer_backcount),
              "maps": np.stack([e.maps for e in per]), "targets": per[0].targets, "scores": per[0].scores,
              **{f"raw_{i}": e.raw for i, e in enumerate(per)}}
    return arrays, FigureText(method_class(plan.method).title)


def panel_runs(model, inputs: Inputs, plan: ExplainPlan, targets: TargetPlan, notes: list[str]):
    """(label, style, maps, raw, explanation) per notebook panel; a method that does not apply falls back."""
    for name in method_class(plan.method).notebook_panels:
        cls = method_class(name)
        call = {"method": name, "layer": plan.layer_ref, "targets": targets,
                "options": dict(cls.all_variants)}
        suffix = ""
        try:
            exp = run_method(model, inputs, plan, call)
        except MethodNotApplicable as exc:
            if exc.fallback is None:
                raise
            fallback = method_class(exc.fallback)
            notes.append(f"{exc} — {fallback.title} shown instead of {cls.title}")
            cls, suffix = fallback, f" ({cls.title} does not apply to this model)"
            exp = run_method(model, inputs, plan, {**call, "method": exc.fallback, "options": {}})
        if not exp.variants:
            yield exp.method, PanelStyle(cls.title + suffix, cls.display), exp.maps, exp.raw, exp
            continue
        for variant, title in cls.variants.items():
            raw = exp.variant_raw.get(variant, exp.raw)
            style = PanelStyle("{} ({}×{})".format(title, *raw.shape[-2:]), cls.display)
            yield f"{exp.method}/{variant}", style, exp.variants[variant], raw, exp


def panel_arrays(model, inputs: Inputs, plan: ExplainPlan, targets: TargetPlan,
                 notes: list[str]) -> tuple[dict, FigureText]:
    runs = list(panel_runs(model, inputs, plan, targets, notes))
    arrays = {"mode": "panels", "methods": [r[0] for r in runs], "layers": [r[4].layer or "" for r in runs],
              "maps": np.stack([r[2] for r in runs]), "targets": runs[0][4].targets, "scores": runs[0][4].scores,
              **{f"raw_{i}": r[3] for i, r in enumerate(runs)}}
    return arrays, FigureText(method_class(plan.method).title, tuple(r[1] for r in runs))


def explain_small(plan: ExplainPlan, resolved: Resolved) -> ExplainResult:
    """Explain a few samples (one image, several layers, notebook panels, series) into ``explanation.npz``."""
    model = load_explained_model(resolved.model)
    layout = layout_of(plan, resolved.is_images)
    inputs = load_inputs(plan, resolved, model)
    probs = probabilities(model, inputs.x)
    if len(probs) != len(inputs.names):
        raise CamkitError(f"--images: {len(inputs.names) - len(probs)} image(s) became unreadable while explaining")
    check_model_options(plan, model, probs.shape[1])
    names = class_names(plan, inputs, probs.shape[1])
    targets = target_plan(plan, probs.shape[1], resolved.is_images and layout == "viewer")
    notes: list[str] = []
    if len(plan.layer_backcount) > 1:
        arrays, text = layers_arrays(model, inputs, plan, targets)
    elif layout == "notebook":
        arrays, text = panel_arrays(model, inputs, plan, targets, notes)
    else:
        arrays, text = single_arrays(model, inputs, plan, targets)
    n = len(inputs.names)
    arrays.update(method=plan.method, probabilities=probs, predicted=probs.argmax(axis=1), names=inputs.names,
                  indices=np.arange(n), class_names=names, source=inputs.source, **inputs.extra)
    if targets.stacked:
        arrays["columns"] = targets.names
    save_dir = plan.save_dir if plan.save_dir is not None else default_dir(plan, resolved.name, layout)
    record = {"settings": settings_of(plan, layout), "inputs": {"model": model_id(resolved.model),
                                                                  "data": inputs_digest(inputs, resolved)}}
    figures = build_figures(arrays, inputs, targets.names, plan.fmt, text)
    npz, written = write(Path(save_dir), arrays, record, figures, plan.progress)
    if plan.show:
        show([build for _, build in figures[:MAX_SHOWN]])
    layers = list(dict.fromkeys(str(x) for x in arrays.get("layers", [arrays.get("layer", "")]) if x))
    return ExplainResult(Path(save_dir), npz, written, inputs.kind, n, [str(m) for m in arrays.get(
        "methods", [plan.method])], layers, inputs.source, notes)


def default_dir(plan: ExplainPlan, name: str, layout: str) -> Path:
    """``ROOT/plots/<exp>/explain_<method>[_notebook]`` (no suffix when the notebook draws the method's variants)."""
    cls = method_class(plan.method)
    notebook = layout == "notebook" and not cls.variants
    return Path(plan.source.root) / "plots" / name / f"explain_{plan.method}{'_notebook' if notebook else ''}"


def settings_of(plan: ExplainPlan, layout: str) -> dict[str, Any]:
    return {"method": plan.method, "options": plan.options, "layer": plan.layer, "target": plan.target,
            "layer_backcount": list(plan.layer_backcount), "layout": layout, "n_images": plan.n_images,
            "batch_size": plan.batch_size, "split": plan.source.split}


def inputs_digest(inputs: Inputs, resolved: Resolved) -> str:
    """The digest of the image files explained, or of the time-series dataset's folder."""
    if inputs.files:
        return files_digest(inputs.files)
    from camkit.data.timeseries import resolve_dataset_dir

    return folder_digest(resolve_dataset_dir(resolved.data["dataset"], resolved.data["root"]))


def write(save_dir: Path, arrays: dict, record: dict, figures: list[tuple[str, Callable]],
          progress: bool | None) -> tuple[Path, list[Path]]:
    """``explanation.npz`` and the figures, made in a staging folder and moved in together; a previous run's
    other figures are removed. A failure (a full disk) leaves the folder as it was."""
    from tqdm.auto import tqdm

    from camkit.plots import save_figure

    ours = (save_dir / "explanation.npz").is_file()
    with staging_folder(save_dir) as staging:
        made = [MapStore(staging).write_explanation(arrays, record)]
        bar = tqdm(figures, desc="figures", unit="figure", leave=False,
                   disable=progress is False or len(figures) < 10)
        made += [save_figure(build(), staging / name) for name, build in bar]
        moved = [save_dir / p.relative_to(staging) for p in made]
        for src, dst in zip(made, moved, strict=True):
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    npz, written = moved[0], moved[1:]
    if ours:  # a previous run's figures that this run did not rewrite
        keep = {p.name for p in written}
        for old in save_dir.iterdir():
            if _OUR_FIGURES.match(old.name) and old.name not in keep:
                old.unlink(missing_ok=True)
    return npz, written


@contextlib.contextmanager
def staging_folder(save_dir: Path) -> Iterator[Path]:
    """A hidden folder inside ``save_dir`` (made if missing, removed again on failure), deleted afterwards."""
    import shutil
    import tempfile

    new = not save_dir.exists()
    save_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging.", dir=save_dir))
    try:
        yield staging
    except BaseException:
        if new:
            shutil.rmtree(save_dir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def show(builders: list[Callable]) -> None:
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
