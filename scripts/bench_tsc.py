"""Time-series classification results for the README: shipped FCN configs, several seeds.

Trains and evaluates each config once per seed (in a scratch folder), and prints a Markdown
table of dataset, epochs, test accuracy (mean, min, max over seeds), training wall time and the
published FCN figure (Fawaz et al. 2019, mean of 10 runs). With ``--readme`` the table also
replaces the block between ``<!-- bench_tsc -->`` markers in README.md.

    .venv/bin/python scripts/bench_tsc.py --seeds 0 1 2 --readme
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from camkit.config import load_config
from camkit.workflows.train import evaluate_experiment, train_experiment

REPO = Path(__file__).resolve().parent.parent
PUBLISHED = {"GunPoint": 1.000, "ItalyPowerDemand": 0.961}
CONFIGS = ("configs/gunpoint_fcn.yaml", "configs/italypower_fcn.yaml")


def bench(config_path: str, seeds: list[int], scratch: Path) -> dict:
    accuracies, times = [], []
    for seed in seeds:
        config = load_config(REPO / config_path, {"train.seed": seed, "data.root": str(REPO / "data")})
        summary = train_experiment(config, scratch, progress=False)
        report = evaluate_experiment(config, scratch)
        accuracies.append(report["accuracy"])
        times.append(summary["train_wall_time_s"])
        print(f"{config.data.dataset} seed {seed}: accuracy {report['accuracy']:.4f}, "
              f"{summary['train_wall_time_s']:.1f} s", flush=True)
    return {"dataset": config.data.dataset, "epochs": config.train.epochs, "accuracies": accuracies,
            "times": times}


def table(rows: list[dict], seeds: list[int]) -> str:
    cpu = f"{os.cpu_count()} CPU cores ({platform.machine()})"
    lines = [
        f"FCN, shipped configs, seeds {', '.join(map(str, seeds))}, on {cpu}; "
        "`python scripts/bench_tsc.py --seeds " + " ".join(map(str, seeds)) + "`.",
        "",
        "| dataset | epochs | test accuracy, mean (min–max) | training wall time per run | published FCN |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        acc, t = r["accuracies"], r["times"]
        lines.append(
            f"| {r['dataset']} | {r['epochs']} | {statistics.mean(acc):.3f} ({min(acc):.3f}–{max(acc):.3f}) "
            f"| {statistics.mean(t):.0f} s | {PUBLISHED.get(r['dataset'], float('nan')):.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [bench(c, args.seeds, Path(scratch)) for c in CONFIGS]
    text = table(rows, args.seeds)
    print(text)
    if args.readme:
        from camkit.io import replace_marked_block

        replace_marked_block(REPO / "README.md", "bench_tsc", text)


if __name__ == "__main__":
    main()
