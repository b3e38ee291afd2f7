"""One comparison of every method on camkit's benchmarks with ground truth: localization, faithfulness, speed.

For each benchmark (``BENCHMARKS``: a shipped config, its test split or another image folder with its ground truth,
and the map column scored), the model is trained from its config when ``models/<experiment>/best.keras`` is
missing. Then, for every registered classification method that explains the benchmark's kind of input (the
baselines ``center-gaussian`` and ``random-map`` included; High-res CAM needs its own model: left out):

1. ``camkit eval-localization --method NAME`` (maps of the columns ``top1,true`` into a map store of its own under
   ``--root``'s ``bench_methods/<benchmark>/``): top-1 localization error, GT-known accuracy, MaxBoxAcc and the
   pointing game (images: 15 px; series: 0 samples). Image benchmarks use the first ``--per-class`` images of each
   class folder (default 20: 200 of the test split's 500 images, 200 of the pairs split's 500 files), linked under
   ``bench_methods/<benchmark>/inputs/``; series benchmarks their whole test split;
2. ``camkit eval-faithfulness --maps`` of that same store on the benchmark's column: deletion, insertion, Average
   Drop, Increase in Confidence and ROAD (every metric's defaults, except deletion and insertion in 64 steps on the
   256-step series);
3. seconds per map: ``explain`` of the first ``--n-timed`` samples, batch 32, after one warm-up call, in this
   process (wall clock; median of ``--rounds``).

Prints a Markdown table per benchmark (a row per method and map variant) and writes a figure grid per benchmark
(methods × ``--n-examples`` inputs, ground truth drawn, a multichannel series as the channel of its pattern) to
``plots/bench_methods/<benchmark>.png``; with ``--readme`` each table goes into README.md's
``bench_methods_<benchmark>`` block and the figures under ``docs/``.
A rerun resumes every finished batch (same settings) and recomputes what changed.

    .venv/bin/python scripts/bench_methods.py --readme
    .venv/bin/python scripts/bench_methods.py --benchmarks digits --methods gradcam,center-gaussian
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
FAITHFULNESS = "deletion,insertion,average-drop,increase-in-confidence,road"


@dataclass(frozen=True)
class Benchmark:
    """A config, the inputs explained (None: its test split; images: a class-folder split whose first
    ``--per-class`` files of each class are taken), their ground truth, and the column scored."""

    key: str
    title: str
    config: Path
    kind: str
    images: Path | None = None
    annotations: Path | None = None
    column: str = "top1"
    steps: int | None = None  # deletion's and insertion's (None: the metrics' default)


DIGITS = REPO / "data" / "cluttered_digits"
CNN16 = REPO / "configs" / "cluttered_digits_cnn16.yaml"
SERIES_STEPS = 64  # deletion / insertion of 4 samples a step on the 256-step series (their default, T, costs 4×)
BENCHMARKS = (
    Benchmark("digits", "cluttered digits, test split (CNN, 16×16 CAM grid)", CNN16, "images",
              images=DIGITS / "test", annotations=DIGITS / "annotations" / "test"),
    Benchmark("pairs", "cluttered digits, pairs split: the map of each file's class (CNN, 16×16 CAM grid)", CNN16,
              "images", images=DIGITS / "pairs", annotations=DIGITS / "annotations" / "pairs", column="true"),
    Benchmark("planted", "planted patterns, test split (FCN)", REPO / "configs" / "planted_fcn.yaml", "series",
              annotations=REPO / "data" / "planted_patterns" / "intervals_test.csv", steps=SERIES_STEPS),
    Benchmark("planted_mv", "planted patterns, 3 channels, test split (FCN)", REPO / "configs" / "planted_fcn_mv.yaml",
              "series", annotations=REPO / "data" / "planted_patterns_mv" / "intervals_test.csv", steps=SERIES_STEPS),
)


def image_subset(bench: Benchmark, per_class: int, dest: Path) -> Benchmark:
    """``bench`` on the first ``per_class`` images of each class folder (sorted names), hard-linked (or copied)
    with their annotations into ``dest``; the same benchmark when ``per_class`` is 0 or it has no image folder."""
    if not per_class or bench.images is None or bench.annotations is None:
        return bench
    images, annotations = dest / bench.images.name, dest / "annotations" / bench.images.name
    shutil.rmtree(dest, ignore_errors=True)
    annotations.mkdir(parents=True)
    for folder in sorted(p for p in bench.images.iterdir() if p.is_dir()):
        (images / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:per_class]:
            for source, target in ((image, images / folder.name / image.name),
                                   (bench.annotations / f"{image.stem}.xml", annotations / f"{image.stem}.xml")):
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)
    return replace(bench, images=images, annotations=annotations)


def ensure_model(config: Path, root: Path) -> Path:
    """The config's best model under ``root``, trained first when missing."""
    from camkit.config import load_config
    from camkit.workflows.run import run_experiment

    cfg = load_config(config)
    best = root / "models" / cfg.name / "best.keras"
    if not best.is_file():
        run_experiment(cfg, root, progress=True)
    return best


def methods_for(kind: str) -> list[str]:
    """The classification methods that explain ``kind`` inputs without a model of their own."""
    from camkit.methods import method_class, methods

    return [m for m in methods() if method_class(m).task == "classify" and not method_class(m).requires_model
            and kind in method_class(m).input_kinds]


def localize(bench: Benchmark, method: str, model: Path, root: Path) -> dict[str, Any]:
    from camkit.workflows.localization import EvalRun, MapsSource, TruthFiles, eval_localization

    source = MapsSource(method=method, model=model, config=bench.config, images=bench.images, target="top1,true")
    run = EvalRun(root=root, out=root / "results" / method / "localization", n_figures=0, progress=False,
                  overwrite=True)
    return eval_localization(source, TruthFiles(annotations=bench.annotations), run)


def faithfulness(bench: Benchmark, method: str, maps: Path, root: Path) -> dict[str, Any]:
    from camkit.workflows.faithfulness import FaithRun, eval_faithfulness
    from camkit.workflows.localization import MapsSource

    options = {} if bench.steps is None else {"steps": bench.steps}
    run = FaithRun(metric=FAITHFULNESS, options=options, column=bench.column,
                   out=root / "results" / method / "faithfulness", n_figures=0, progress=False, overwrite=True)
    return eval_faithfulness(MapsSource(maps=maps), run)


def seconds_per_map(method: str, maps: Path, n: int, rounds: int) -> float:
    """Median wall seconds per map of ``explain`` on the store's first ``n`` inputs (one warm-up call first)."""
    from camkit.methods import explain
    from camkit.workflows.stored_inputs import StoredInputs

    inputs = StoredInputs.open(maps, option="--maps")
    model, x = inputs.model(None), inputs.batch(0)[:n]
    explain(model, x[:2], method=method, progress=False)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        explain(model, x, method=method, batch_size=32, progress=False)
        times.append((time.perf_counter() - start) / len(x))
    return statistics.median(times)


def rows_of(method: str, loc: dict[str, Any], faith: dict[str, Any], seconds: float) -> list[tuple[str, dict]]:
    """A row per map variant: every summary value of both evaluations and the seconds per map."""
    rows = []
    for variant, summary in loc["summary"].items():
        name = method if variant == method else f"{method}: {variant}"
        rows.append((name, {**summary, **faith["summary"].get(variant, {}), "seconds": seconds}))
    return rows


def table(bench: Benchmark, rows: list[tuple[str, dict]], metrics: list, n: int) -> str:
    keys = [(key, header, cls.higher_is_better) for cls in metrics for key, header in cls.table
            if key != "top5_loc_error"]
    settings = "" if bench.steps is None else f"; deletion and insertion in {bench.steps} steps"
    lines = [f"**{bench.title}** ({n} samples; faithfulness on column `{bench.column}`{settings}):", "",
             "| maps | " + " | ".join(f"{h} {'↑' if up else '↓'}" for _, h, up in keys) + " | s / map |",
             "|---|" + "---:|" * (len(keys) + 1)]
    for name, values in rows:
        cells = [f"{values[k]:.3f}" if isinstance(values.get(k), float) else "–" for k, _, _ in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {values['seconds']:.4f} |")
    return "\n".join(lines)


def grid_figure(bench: Benchmark, stores: dict[str, Path], n: int, out: Path) -> Path:
    """Methods × ``n`` inputs spread evenly over the benchmark (classes come in order), each map of the scored
    column with the ground truth."""
    import numpy as np

    from camkit.plots import save_figure
    from camkit.plots.comparison import method_grid_figure
    from camkit.workflows.store import MapStore
    from camkit.workflows.stored_inputs import StoredInputs

    first = next(iter(stores.values()))
    names = [str(v) for v in MapStore(first).read_all()["names"]]
    picked = np.linspace(0, len(names) - 1, n).round().astype(int)
    inputs = StoredInputs.open(first, option="--maps")
    size = len(inputs.batch(0))
    batches = {b: inputs.batch(b) for b in sorted({int(i) // size for i in picked})}  # each batch read once
    x = np.stack([batches[int(i) // size][int(i) % size] for i in picked])
    rows = {}
    for method, maps_dir in stores.items():
        arrays = MapStore(maps_dir).read_all()
        col = [str(c) for c in arrays["columns"]].index(bench.column)
        rows[method] = arrays[f"maps_{arrays['variants'][-1]}"][picked, col].astype("float32")  # the last variant
    truths, titles, channels = ground_truth(bench, names, picked)
    if channels is not None and x.shape[-1] > 1:  # a series drawn as the channel its pattern sits in
        x = np.stack([x[j, :, c:c + 1] for j, c in enumerate(channels)])
        titles = [f"{t} (channel {c})" for t, c in zip(titles, channels, strict=True)]
    return save_figure(method_grid_figure(x, rows, truths, titles, bench.title), out, dpi=80)


def ground_truth(bench: Benchmark, names: list[str],
                 picked: Any) -> tuple[list[list[tuple]], list[str], list[int] | None]:
    """The regions, the title and (series) the pattern's channel of each picked input: VOC boxes of images, the
    interval of series."""
    if bench.kind == "series":
        from camkit.data.intervals import read_intervals

        intervals = read_intervals(bench.annotations)
        chosen = [intervals[int(i)] for i in picked]
        return [[(iv.start, iv.end)] for iv in chosen], [iv.label for iv in chosen], [iv.channel for iv in chosen]
    from camkit.data.boxes import load_annotations

    annotations = load_annotations(bench.annotations)
    return ([[b.as_tuple() for b in annotations[Path(names[i]).stem].boxes()] for i in picked],
            [Path(names[i]).parent.name for i in picked], None)


def run_benchmark(bench: Benchmark, args: argparse.Namespace) -> str:
    model = ensure_model(bench.config, args.root)
    root = args.root / "bench_methods" / bench.key
    bench = image_subset(bench, args.per_class, root / "inputs")
    rows: list[tuple[str, dict]] = []
    stores: dict[str, Path] = {}
    metrics: list = []
    n = 0
    for method in args.methods.split(",") if args.methods else methods_for(bench.kind):
        start = time.perf_counter()
        loc = localize(bench, method, model, root)
        faith = faithfulness(bench, method, loc["maps"], root)
        seconds = seconds_per_map(method, loc["maps"], args.n_timed, args.rounds)
        rows += rows_of(method, loc, faith, seconds)
        stores[method] = loc["maps"]
        metrics = [*loc["metrics"], *faith["metrics"]]
        n = next(iter(loc["summary"].values()))["n_images"]
        print(f"{bench.key} {method}: {time.perf_counter() - start:.0f} s", flush=True)
    figure_dir = REPO / "docs" if args.readme else args.root / "plots" / "bench_methods"
    figure = grid_figure(bench, stores, args.n_examples, figure_dir / f"bench_methods_{bench.key}.png")
    print(f"figure: {figure}")
    text = table(bench, rows, metrics, n)
    return text + (f"\n\n![every method on {bench.title}](docs/{figure.name})" if args.readme else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmarks", nargs="+", choices=[b.key for b in BENCHMARKS],
                        default=[b.key for b in BENCHMARKS])
    parser.add_argument("--methods", help="comma list (default: every method that applies)")
    parser.add_argument("--per-class", type=int, default=20, help="images of each class (0: all)")
    parser.add_argument("--n-timed", type=int, default=32, help="samples timed per method")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-examples", type=int, default=6, help="inputs in each figure grid")
    parser.add_argument("--root", type=Path, default=REPO)
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    args = parser.parse_args()
    from camkit.io import replace_marked_block

    for bench in BENCHMARKS:
        if bench.key in args.benchmarks:
            text = run_benchmark(bench, args)
            print(text, flush=True)
            if args.readme:
                replace_marked_block(REPO / "README.md", f"bench_methods_{bench.key}", text)


if __name__ == "__main__":
    main()
