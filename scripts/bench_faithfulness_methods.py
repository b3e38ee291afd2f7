"""Every method's faithfulness on the shipped models, for the README: GunPoint FCN and the cluttered-digits CNN.

Trains ``configs/gunpoint_fcn.yaml`` and ``configs/cluttered_digits_cnn.yaml`` when their models are missing, then
runs ``camkit eval-faithfulness --method NAME`` (every metric, their defaults) for every classification method
that explains the model's kind of input (High-res CAM needs its own DenseNet-FCN: left out), on the first
``--n-series`` test series and ``--n-images`` test images. Prints a Markdown table per model (a row per method
and map variant, a column per metric with its direction) and, with ``--readme``, replaces the
``bench_faithfulness_methods`` block of README.md. Outputs stay under ``plots/<experiment>/explain_<method>/``
(maps) and ``results/<experiment>/faithfulness_<method>/`` (scores); a rerun resumes finished batches and replaces
outputs made with other settings.

    .venv/bin/python scripts/bench_faithfulness_methods.py --readme
    .venv/bin/python scripts/bench_faithfulness_methods.py --models gunpoint --methods gradcam,scorecam
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
MODELS = {"gunpoint": ("GunPoint FCN", REPO / "configs" / "gunpoint_fcn.yaml", "gunpoint_fcn", "series"),
          "digits": ("cluttered-digits CNN", REPO / "configs" / "cluttered_digits_cnn.yaml", "cluttered_digits_cnn",
                     "images")}


def ensure_model(config: Path, name: str, root: Path) -> None:
    from camkit.config import load_config
    from camkit.workflows.run import run_experiment

    if not (root / "models" / name / "best.keras").is_file():
        run_experiment(load_config(config), root, progress=True)


def methods_for(kind: str) -> list[str]:
    """The classification methods that explain ``kind`` inputs without a model of their own."""
    from camkit.methods import method_class, methods

    return [m for m in methods() if method_class(m).task == "classify" and not method_class(m).requires_model
            and kind in method_class(m).input_kinds]


def evaluate(method: str, config: Path, n: int, root: Path) -> tuple[dict[str, Any], list, float]:
    from camkit.workflows.faithfulness import FaithRun, eval_faithfulness
    from camkit.workflows.localization import MapsSource

    start = time.perf_counter()
    result = eval_faithfulness(MapsSource(method=method, config=config),
                               FaithRun(root=root, n_images=n, overwrite=True, n_figures=2))
    return result["summary"], result["metrics"], time.perf_counter() - start


def table(title: str, rows: list[tuple[str, dict]], metrics: list, n: int, seconds: float) -> str:
    keys = [(key, header, cls.higher_is_better) for cls in metrics for key, header in cls.table]
    lines = [f"**{title}**, first {n} test samples, column `top1`, every metric's defaults ({seconds:.0f} s):", "",
             "| maps | " + " | ".join(f"{h} {'↑' if up else '↓'}" for _, h, up in keys) + " |",
             "|---|" + "---:|" * len(keys)]
    for name, summary in rows:
        lines.append(f"| {name} | " + " | ".join(f"{summary[k]:.3f}" for k, _, _ in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--methods", help="comma list (default: every method that applies)")
    parser.add_argument("--n-series", type=int, default=150)
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--root", type=Path, default=REPO)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    args = parser.parse_args()
    blocks, saved = [], {}
    for key in args.models:
        title, config, name, kind = MODELS[key]
        ensure_model(config, name, args.root)
        n = args.n_series if kind == "series" else args.n_images
        rows: list[tuple[str, dict]] = []
        metrics: list = []
        start = time.perf_counter()
        for method in args.methods.split(",") if args.methods else methods_for(kind):
            summary, metrics, seconds = evaluate(method, config, n, args.root)
            rows += [(method if variant == method else f"{method}: {variant}", s) for variant, s in summary.items()]
            print(f"{title} {method}: {seconds:.0f} s", flush=True)
        blocks.append(table(title, rows, metrics, n, time.perf_counter() - start))
        saved[key] = rows
    text = "\n\n".join(blocks)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(saved, indent=1))
    if args.readme:
        from camkit.io import replace_marked_block

        replace_marked_block(REPO / "README.md", "bench_faithfulness_methods", text)


if __name__ == "__main__":
    main()
