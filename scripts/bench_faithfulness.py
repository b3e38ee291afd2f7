"""Deletion's cost against its floor: S steps of a batch against S + 1 plain compiled forward passes of it.

For each model (``--models``: ``vgg16`` at 224×224×3 on ``--images`` random images, random weights;
``fcn`` the 1-D FCN on ``--series`` random series of length 150), every call timed in one process, interleaved
round by round (``--repeats`` rounds after a warm-up round that traces everything), medians of wall and
process CPU time:

- ``deletion``: ``Deletion(steps=S).score(...)`` on the inputs and random maps (the metric's whole cost: the
  ranks, the baseline, the copies made inside the compiled function, their forward passes);
- ``floor``: the same number of copies (``N · (S + 1)``) through a plain compiled ``model(x)`` in the same chunks,
  the copies already made: what deletion cannot go below.

The issue's budget is deletion ≤ 1.15 × its floor. The machine's load is not controlled: run it on a quiet one.

    .venv/bin/python scripts/bench_faithfulness.py --readme
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGET = 1.15
REPO = Path(__file__).resolve().parents[1]


def _setup(name: str, n: int, seed: int) -> tuple[Any, Any, Any, int]:
    """(model, inputs, maps, steps) of one benchmark case."""
    import keras
    import numpy as np

    import camkit

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    if name == "vgg16":
        model, shape, steps = camkit.build_model("vgg16", (224, 224, 3), 1000), (224, 224, 3), 100
    else:
        model, shape, steps = camkit.build_model("fcn", (150, 1), 2), (150, 1), 150
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    return model, x, rng.uniform(size=(n, *shape[:-1])).astype(np.float32), steps


def _calls(model: Any, x: Any, maps: Any, steps: int, chunk: int) -> dict[str, Callable[[], Any]]:
    import numpy as np
    import tensorflow as tf

    from camkit.metrics.faithfulness.base import Explained
    from camkit.metrics.faithfulness.deletion import Deletion

    targets = np.zeros(len(x), np.int64)
    explained = Explained(model, x, maps, targets)
    metric = Deletion(steps=steps, chunk=chunk)
    forward = tf.function(lambda v: model(v, training=False), autograph=False)
    copies = tf.constant(np.resize(x, (chunk, *x.shape[1:])))
    full, rest = divmod(len(x) * (steps + 1), chunk)

    def floor() -> list:
        out = [forward(copies) for _ in range(full)] + ([forward(copies[:rest])] if rest else [])
        return [o.numpy() for o in out]

    return {"deletion": lambda: metric.score(explained), "floor": floor}


def measure(name: str, n: int, repeats: int, chunk: int, seed: int = 0,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Interleaved medians of deletion and its floor on one model, and their ratio."""
    model, x, maps, steps = _setup(name, n, seed)
    calls = _calls(model, x, maps, steps, chunk)
    wall: dict[str, list[float]] = {k: [] for k in calls}
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    for fn in calls.values():
        fn()  # warm-up: the traces
    for round_ in range(repeats):
        for key, fn in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[key].append(time.perf_counter() - start)
            cpu[key].append(time.process_time() - start_cpu)
            log(f"{name} round {round_} {key:9} {wall[key][-1]:7.2f} s wall {cpu[key][-1]:7.2f} s cpu")
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {"model": name, "samples": n, "steps": steps, "chunk": chunk, "copies": n * (steps + 1),
            "median_s": med, "median_cpu_s": med_cpu, "ratio": med["deletion"] / med["floor"],
            "ratio_cpu": med_cpu["deletion"] / med_cpu["floor"], "load_avg_1min": os.getloadavg()[0]}


def table(results: list[dict[str, Any]]) -> str:
    """The README block: one row per model."""
    import tensorflow as tf

    lines = [f"Deletion against its floor (the same copies through a plain compiled forward pass, same chunk), "
             f"median of interleaved rounds, {os.cpu_count()} cores, TensorFlow {tf.__version__}:", "",
             "| model | samples × (steps + 1) | chunk | deletion s | floor s | ratio (wall) | ratio (CPU) | target |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['samples']} × {r['steps'] + 1} | {r['chunk']} | {r['median_s']['deletion']:.2f} | "
              f"{r['median_s']['floor']:.2f} | {r['ratio']:.3f} | {r['ratio_cpu']:.3f} | ≤ {TARGET} |"
              for r in results]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=["vgg16", "fcn"], default=["fcn", "vgg16"])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--series", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--json", type=Path, help="write the measurements to this JSON file")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    results = [measure(m, args.images if m == "vgg16" else args.series, args.repeats, args.chunk,
                       log=lambda s: print(s, file=sys.stderr, flush=True)) for m in args.models]
    text = table(results)
    print("\n" + text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.readme:
        sys.path.insert(0, str(REPO))
        from camkit.io import replace_marked_block

        replace_marked_block(REPO / "README.md", "bench_faithfulness", text)


if __name__ == "__main__":
    main()
