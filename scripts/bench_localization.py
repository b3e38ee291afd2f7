"""Weak-localization results on the cluttered-digits test set, for the README.

Trains the small GAP CNN of ``configs/cluttered_digits_cnn.yaml`` when ``models/cluttered_digits_cnn/best.keras``
is missing, then runs ``camkit eval-localization`` on the 500 test images for CAM, Grad-CAM, Grad-CAM++ and
Augmented Grad-CAM (every aggregation: single, max, avg, sr; ``n_augment`` 100 by default), with the protocol's
default box thresholds (20 % of the max for CAM, 15 % otherwise). Prints a Markdown table and, with ``--readme``,
replaces the ``bench_localization`` block of README.md. When the High-resolution CAM model of
``configs/hires_digits_full.yaml`` exists (train ``hires_digits_half.yaml`` then ``hires_digits_full.yaml``; about 15
minutes on 2 cores), its low-res CAM, high-res CAM and refined map get rows too (``--method hires -o output=all``).
Outputs stay under ``plots/<experiment>/`` (maps) and ``results/<experiment>/`` (scores); a rerun reuses finished
batches, and replaces outputs made with other settings (e.g. another ``--n-augment``).

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
HIRES_CONFIG = REPO / "configs" / "hires_digits_full.yaml"
NAMES = {"cam": "CAM", "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "single": "Augmented Grad-CAM, single",
         "max": "Augmented Grad-CAM, max", "avg": "Augmented Grad-CAM, avg",
         "sr": "Augmented Grad-CAM, super-resolution", "low": "High-res CAM: low-res CAM (`conv_aux`)",
         "high": "High-res CAM: high-res CAM", "refined": "High-res CAM: refined map"}


def ensure_model(root: Path) -> Path:
    from camkit.config import load_config
    from camkit.workflows.run import run_experiment

    path = root / "models" / "cluttered_digits_cnn" / "best.keras"
    if not path.is_file():
        run_experiment(load_config(CONFIG), root, progress=True)
    return path


def evaluate(method: str, args: argparse.Namespace) -> tuple[dict, float]:
    from camkit.workflows.localization import EvalRun, MapsSource, TruthFiles, eval_localization

    options = {"augmented-gradcam": {"n_augment": args.n_augment, "aggregate": "all"},
               "hires": {"output": "all"}}.get(method, {})
    start = time.perf_counter()
    source = MapsSource(method=method, config=HIRES_CONFIG if method == "hires" else CONFIG, options=options,
                        target="top1,true" if method == "hires" else None)
    result = eval_localization(source, TruthFiles(), EvalRun(root=args.root, overwrite=True))
    return result["summary"], time.perf_counter() - start


def accuracy(name: str, root: Path) -> str:
    path = root / "results" / name / "metrics.json"
    return f"{json.loads(path.read_text())['accuracy']:.1%}" if path.is_file() else "?"


def table(rows: list[tuple[str, str, dict]], args: argparse.Namespace) -> str:
    lines = [
        "`python scripts/bench_localization.py`: the 500 cluttered-digit test images (64×64), box threshold 20 % of "
        "the map's max for CAM and High-res CAM and 15 % otherwise, IoU ≥ 0.5; Augmented Grad-CAM with "
        f"{args.n_augment} augmentations. Models: the small GAP CNN of `configs/cluttered_digits_cnn.yaml` (maps "
        f"from its 8×8 `features` layer, test accuracy {accuracy('cluttered_digits_cnn', args.root)}) and the "
        "DenseNet-FCN of `configs/hires_digits_full.yaml` (`conv_aux` 4×4, high-res branch 64×64, test accuracy "
        f"{accuracy('hires_digits_full', args.root)}). Errors and accuracies in %; MaxBoxAcc with its best threshold.",
        "",
        "| model | maps | top-1 loc. error ↓ | top-5 loc. error ↓ | GT-known loc. acc. ↑ | MaxBoxAcc ↑ (threshold) | "
        "pointing game ↑ |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model, name, s in rows:
        lines.append(f"| {model} | {NAMES.get(name, name)} | {100 * s['top1_loc_error']:.1f} | "
                     f"{100 * s['top5_loc_error']:.1f} | "
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
    methods = [m.strip() for m in args.methods.split(",")]
    if (args.root / "models" / "hires_digits_full" / "best.keras").is_file() and "hires" not in methods:
        methods.append("hires")
    rows: list[tuple[str, str, dict]] = []
    timings = {}
    for method in methods:
        summary, seconds = evaluate(method, args)
        timings[method] = seconds
        model = "DenseNet-FCN" if method == "hires" else "small GAP CNN"
        rows += [(model, name, s) for name, s in summary.items()]
        print(f"{method}: {seconds:.0f} s", flush=True)
    text = table(rows, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "seconds": timings}, indent=2))
    if args.readme:
        from camkit.io import replace_marked_block

        replace_marked_block(REPO / "README.md", "bench_localization", text)


if __name__ == "__main__":
    main()
