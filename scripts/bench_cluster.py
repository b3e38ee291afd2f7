"""Time-series clustering results for the README: camkit's autoencoder + k-means beside k-means on the raw series.

For each shipped clustering config and seed: trains the autoencoder (the config's settings, 50 epochs) in a
scratch folder and reads ACC / NMI / ARI on train and test; as a baseline, k-means with the same k,
``n_init`` and seed on the raw series (z-normalised as the config does, flattened), fitted on train and
assigning test to the nearest centroid. Prints a Markdown table; with ``--readme`` the table also replaces
the block between ``<!-- bench_cluster -->`` markers in README.md.

    .venv/bin/python scripts/bench_cluster.py --seeds 0 --readme
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from camkit.config import load_config
from camkit.data.timeseries import load_timeseries
from camkit.metrics.clustering import clustering_report
from camkit.workflows.recipes.cluster import fit_kmeans
from camkit.workflows.train import train_experiment

REPO = Path(__file__).resolve().parent.parent
CONFIGS = ("configs/gunpoint_cluster.yaml", "configs/italypower_cluster.yaml")
SPLITS = ("train", "test")


def raw_kmeans(config, seed: int) -> dict[str, dict[str, float]]:
    """k-means on the flattened (z-normalised as configured) series: fitted on train, test assigned."""
    ds = load_timeseries(config.data.dataset, config.data.root, znorm=config.data.znorm)
    k = config.cluster.n_clusters or ds.n_classes
    kmeans = fit_kmeans(ds.x_train.reshape(len(ds.x_train), -1), k, config.cluster.n_init, seed)
    return {"train": clustering_report(ds.y_train, kmeans.labels_),
            "test": clustering_report(ds.y_test, kmeans.predict(ds.x_test.reshape(len(ds.x_test), -1)
                                                                 .astype(np.float64)))}


def bench(config_path: str, seeds: list[int], scratch: Path) -> dict:
    runs: dict[str, list[dict]] = {"camkit": [], "raw": []}
    times = []
    for seed in seeds:
        config = load_config(REPO / config_path, {"train.seed": seed, "data.root": str(REPO / "data")})
        summary = train_experiment(config, scratch, progress=False)
        runs["camkit"].append({s: summary["clustering"][s] for s in SPLITS})
        runs["raw"].append(raw_kmeans(config, seed))
        times.append(summary["train_wall_time_s"])
        print(f"{config.data.dataset} seed {seed}: autoencoder {runs['camkit'][-1]['test']}, raw k-means "
              f"{runs['raw'][-1]['test']}, {summary['train_wall_time_s']:.1f} s", flush=True)
    return {"dataset": config.data.dataset, "epochs": config.train.epochs, "runs": runs, "times": times}


def _cell(runs: list[dict], split: str, metric: str) -> str:
    values = [r[split][metric] for r in runs]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def table(rows: list[dict], seeds: list[int]) -> str:
    cpu = f"{os.cpu_count()} CPU cores ({platform.machine()})"
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}, mean (min–max)"
    lines = [
        f"Shipped clustering configs ({seed_text}) on {cpu}; "
        "`python scripts/bench_cluster.py --seeds " + " ".join(map(str, seeds)) + "`. k = number of classes, "
        "k-means with 20 restarts; raw k-means clusters the z-normalised series themselves.",
        "",
        "| dataset | clustering | test ACC | test NMI | test ARI | train ACC | train NMI | train ARI | training time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for name, label in (("camkit", f"autoencoder ({r['epochs']} epochs) + k-means"), ("raw", "raw k-means")):
            cells = [_cell(r["runs"][name], s, m) for s in ("test", "train") for m in ("acc", "nmi", "ari")]
            time_text = f"{statistics.mean(r['times']):.0f} s" if name == "camkit" else "–"
            lines.append(f"| {r['dataset']} | {label} | " + " | ".join(cells) + f" | {time_text} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [bench(c, args.seeds, Path(scratch)) for c in CONFIGS]
    text = table(rows, args.seeds)
    print(text)
    if args.readme:
        from camkit.io import replace_marked_block

        replace_marked_block(REPO / "README.md", "bench_cluster", text)


if __name__ == "__main__":
    main()
