"""Weak-localization results on the cluttered-digits test set, for the README.

Trains the small GAP CNN of ``configs/cluttered_digits_cnn.yaml`` when ``models/cluttered_digits_cnn/best.keras``
is missing, then runs ``camkit eval-localization`` on the 500 test images for CAM, Grad-CAM, Grad-CAM++ and
Augmented Grad-CAM (every aggregation: single, max, avg, sr; ``n_augment`` 100 by default), with the protocol's
default box thresholds (20 % of the max for CAM, 15 % otherwise). Prints a Markdown table and, with ``--readme``,
replaces the ``bench_localization`` block of README.md. Outputs stay under ``results/cluttered_digits_cnn/``;
a rerun reuses finished batches (a different ``--n-augment`` needs the old
``plots/cluttered_digits_cnn/explain_augmented-gradcam/`` removed first).

    .venv/bin/python scripts/bench_localization.py --readme
    .venv/bin/python scripts/bench_localization.py --methods gradcam,augmented-gradcam --n-augment 30
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "cluttered_digits_cnn.yaml"
NAMES = {"cam": "CAM", "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "single": "Augmented Grad-CAM, single",
         "max": "Augmented Grad-CAM, max", "avg": "Augmented Grad-CAM, avg",
         "sr": "Augmented Grad-CAM, super-resolution"}


def ensure_model(root: Path) -> Path:
    from camkit.config import load_config
    from camkit.experiment import run_experiment

    path = root / "models" / "cluttered_digits_cnn" / "best.keras"
    if not path.is_file():
        run_experiment(load_config(CONFIG), root, progress=True)
    return path


def evaluate(method: str, args: argparse.Namespace) -> tuple[dict, float]:
    from camkit.eval_localization import eval_localization

    options = {"n_augment": args.n_augment, "aggregate": "all"} if method == "augmented-gradcam" else {}
    start = time.perf_counter()
    result = eval_localization(method=method, config=CONFIG, root=args.root, options=options)
    return result["summary"], time.perf_counter() - start


def table(rows: list[tuple[str, dict]], args: argparse.Namespace, accuracy: float | None) -> str:
    acc = f", test accuracy {accuracy:.1%}" if accuracy is not None else ""
    lines = [
        f"`python scripts/bench_localization.py`: the small GAP CNN of `configs/cluttered_digits_cnn.yaml`{acc}, "
        f"the 500 cluttered-digit test images (64×64, maps from the 8×8 `features` layer), box threshold 20 % of the "
        f"map's max for CAM and 15 % otherwise, IoU ≥ 0.5; Augmented Grad-CAM with {args.n_augment} augmentations. "
        "Errors and accuracies in %; MaxBoxAcc with its best threshold.",
        "",
        "| maps | top-1 loc. error ↓ | top-5 loc. error ↓ | GT-known loc. acc. ↑ | MaxBoxAcc ↑ (threshold) | "
        "pointing game ↑ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in rows:
        lines.append(f"| {NAMES.get(name, name)} | {100 * s['top1_loc_error']:.1f} | {100 * s['top5_loc_error']:.1f} | "
                     f"{100 * s['gt_known_loc_accuracy']:.1f} | {100 * s['max_box_acc']:.1f} "
                     f"({s['max_box_acc_threshold']:.2f}) | {100 * s['pointing_game']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="cam,gradcam,gradcam++,augmented-gradcam")
    parser.add_argument("--n-augment", type=int, default=100)
    parser.add_argument("--root", type=Path, default=REPO)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    ensure_model(args.root)
    rows: list[tuple[str, dict]] = []
    timings = {}
    for method in args.methods.split(","):
        summary, seconds = evaluate(method.strip(), args)
        timings[method] = seconds
        rows += list(summary.items())
        print(f"{method}: {seconds:.0f} s", flush=True)
    metrics = args.root / "results" / "cluttered_digits_cnn" / "metrics.json"
    accuracy = json.loads(metrics.read_text())["accuracy"] if metrics.is_file() else None
    text = table(rows, args, accuracy)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "seconds": timings}, indent=2))
    if args.readme:
        from camkit.runs import replace_marked_block

        replace_marked_block(REPO / "README.md", "bench_localization", text)


if __name__ == "__main__":
    main()
