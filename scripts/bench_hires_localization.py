"""High-resolution CAM localization on the cluttered-digits test set: low-res CAM, high-res CAM, refined map.

With a trained ``densenet-full`` model (``configs/hires_digits_half.yaml`` then ``hires_digits_full.yaml``), for
each of the three maps of method ``hires``: GT-known localization accuracy (box of the largest component above
0.20 × max, the CAM threshold, IoU >= 0.5), MaxBoxAcc (best threshold, IoU 0.5) and the top-1 localization
error (map and label of the predicted class), with ``camkit.metrics.localization`` / ``map_boxes``. Prints a
Markdown table; ``--readme`` also writes it between the ``<!-- hires_localization -->`` markers of README.md.

    .venv/bin/python scripts/bench_hires_localization.py --readme

:func:`hires_maps` is the per-method map computation (the hook a general localization command can call).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

REPO = Path(__file__).resolve().parent.parent
MAPS = {"low-res CAM (conv_aux)": "low", "high-res CAM (highres_features)": "high", "refined map (hires)": "refined"}


def hires_maps(model: keras.Model, x: np.ndarray, targets: np.ndarray, output: str, batch_size: int = 32) -> np.ndarray:
    """(N, H, W) maps in [0, 1] of method ``hires`` (``output``: low | high | refined) for one class per image."""
    import camkit

    return camkit.explain(model, x, method="hires", output=output, targets=targets, batch_size=batch_size,
                          progress=False).maps


def load_split(dataset: Path, split: str, model: keras.Model, limit: int | None) -> tuple:
    """(x, y, image ids, class names, annotations) of a benchmark split, at the model's input size, in [0, 1]."""
    from camkit.data.boxes import load_annotations
    from camkit.data.images import load_split as load_folder

    folder = load_folder(dataset, split)
    if limit:
        folder.files, folder.labels = folder.files[:limit], folder.labels[:limit]
    size = tuple(model.input_shape[1:3])
    x = np.concatenate([b for b, _ in folder.dataset(size, batch_size=64).as_numpy_iterator()])
    annotations = load_annotations(dataset / "annotations" / split)
    return x, np.asarray(folder.labels), [p.stem for p in folder.files], folder.class_names, annotations


def localization_rows(model: keras.Model, x: np.ndarray, y: np.ndarray, ids: list[str], class_names: list[str],
                      annotations: dict, batch_size: int = 32) -> tuple[list[dict], float]:
    """One row of metrics per map kind, and the classification accuracy."""
    from camkit.hires_experiment import class_probabilities
    from camkit.metrics.localization import gt_known_accuracy, localization_errors, max_box_acc
    from camkit.metrics.map_boxes import CAM_THRESHOLD, box_from_map

    predicted = class_probabilities(model, x).argmax(axis=1)
    rows = []
    for name, output in MAPS.items():
        start = time.perf_counter()
        gt_maps = hires_maps(model, x, y, output, batch_size)
        pred_maps = hires_maps(model, x, predicted, output, batch_size)
        seconds = time.perf_counter() - start
        by_id = dict(zip(ids, gt_maps, strict=True))
        gt_known = gt_known_accuracy(by_id, annotations, threshold=CAM_THRESHOLD)
        best = max_box_acc(by_id, annotations)
        guesses = {i: [(class_names[p], box_from_map(m, threshold=CAM_THRESHOLD))]
                   for i, p, m in zip(ids, predicted, pred_maps, strict=True)}
        top1 = localization_errors(guesses, annotations, k=1).errors[1]
        rows.append({"map": name, "resolution": "x".join(map(str, _resolution(model, output))),
                     "gt_known": gt_known.value, "maxboxacc": best.value, "best_threshold": best.best_thresholds[0.5],
                     "top1_loc_error": top1, "seconds": seconds})
        print(f"{name}: GT-known {gt_known.value:.3f}, MaxBoxAcc {best.value:.3f}, top-1 loc. error {top1:.3f}",
              flush=True)
    return rows, float(np.mean(predicted == y))


def _resolution(model: keras.Model, output: str) -> tuple[int, int]:
    layer = "conv_aux" if output == "low" else "highres_features"
    return tuple(int(d) for d in model.get_layer(layer).output.shape[1:3])


def table(rows: list[dict], accuracy: float, n: int, model_path: str, command: str) -> str:
    cpu = f"{os.cpu_count()} CPU cores ({platform.machine()})"
    lines = [
        f"`{model_path}` on the {n} cluttered-digits test images (classification accuracy {accuracy:.3f}), "
        f"{cpu}; `{command}`.",
        "",
        "| map | resolution | GT-known loc. acc. (0.20 × max) | MaxBoxAcc (IoU 0.5) | best threshold "
        "| top-1 loc. error | maps, s (2 passes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['map']} | {r['resolution']} | {r['gt_known']:.3f} | {r['maxboxacc']:.3f} "
                     f"| {r['best_threshold']:.2f} | {r['top1_loc_error']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/hires_digits_full/best.keras", help="a densenet-full .keras file")
    parser.add_argument("--dataset", default=str(REPO / "data" / "cluttered_digits"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    from camkit.training import load_model

    model = load_model(args.model, compile=False)
    x, y, ids, class_names, annotations = load_split(Path(args.dataset), args.split, model, args.limit)
    rows, accuracy = localization_rows(model, x, y, ids, class_names, annotations, args.batch_size)
    command = "python scripts/bench_hires_localization.py" + (f" --limit {args.limit}" if args.limit else "")
    text = table(rows, accuracy, len(ids), args.model, command)
    print(text)
    if args.readme:
        from camkit.runs import replace_marked_block

        replace_marked_block(REPO / "README.md", "hires_localization", text)


if __name__ == "__main__":
    main()
