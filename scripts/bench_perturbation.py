"""Score-CAM and Ablation-CAM against their floors and tf-keras-vis, on VGG16 at ``block5_conv3`` (512 channels).

VGG16 (``camkit.build_model("vgg16", (224, 224, 3), 1000)``, random weights) on ``--images`` random 224×224×3
images, every call timed in one process, interleaved round by round (``--repeats`` rounds, after one warm-up
round that traces everything), medians of wall and process CPU time:

- ``scorecam``: ``camkit.explain(..., method="scorecam", layer="block5_conv3", chunk=C)``;
- ``scorecam_floor``: 513 plain compiled forward passes per image (``model(x, training=False)`` in a
  ``tf.function``): the images once, then 512 copies per image in batches of ``C``: what Score-CAM cannot go below;
- ``tf_keras_vis``: tf-keras-vis's ``Scorecam`` on the same images (``penultimate_layer="block5_conv3"``, its
  default batch size 32, ``ReplaceToLinear`` so that its weights are the class probabilities);
- ``ablationcam``: ``camkit.explain(..., method="ablationcam", ...)``;
- ``ablationcam_floor``: one compiled forward pass to ``A`` (a sub-model) and ``forward.upper_scores`` on the 512
  ablated copies per image (the runner Ablation-CAM uses, without its weighting).

``upper_only``: ``forward.upper_scores`` alone (``A`` given); over ``scorecam_floor`` (513 full forward passes per
image) it shows that the ablated copies' runs skip the network below ``A``. ``--chunks 32 64 128`` first times plain
forward passes of 128 copies in batches of each size (the cost per copy that Score-CAM's chunk size sets),
``--ablation-chunks 64 256 512`` Ablation-CAM's upper runs at each chunk size, and ``--compare`` checks camkit's
``weights="probability"`` maps against tf-keras-vis's (their upsampling differs: scipy ``zoom(order=1)`` aligns
corners). The machine's load is not controlled: run it on a quiet machine.

    .venv/bin/python scripts/bench_perturbation.py --images 1 --repeats 3 --json bench_perturbation.json --readme

:func:`measure` is what ``scripts/bench_explain.py`` can call; :func:`table` renders its result as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LAYER = "block5_conv3"
SIZE = 224  # image side (--size: smaller for a smoke run)
TARGET = 1.15  # the budget: each method at most 1.15x its floor


def _timed(fn: Callable[[], Any], wall: list[float], cpu: list[float]) -> Any:
    start, start_cpu = time.perf_counter(), time.process_time()
    out = fn()
    wall.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
    return out


def _setup(images: int, seed: int, size: int = SIZE) -> tuple[Any, Any]:
    import keras
    import numpy as np

    import camkit

    keras.utils.set_random_seed(seed)
    model = camkit.build_model("vgg16", (size, size, 3), 1000)
    x = np.random.default_rng(seed).uniform(0, 255, size=(images, size, size, 3)).astype(np.float32)
    return model, x


Call = Callable[[], Any]


def _calls(model: Any, x: Any, chunk: int, ablation_chunk: int) -> dict[str, tuple[Call, Call]]:
    """The timed calls by name: (a cheap warm-up call that traces what the call runs, the call itself)."""
    import keras
    import numpy as np
    import tensorflow as tf
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    import camkit
    from camkit.methods import forward, method_class
    from camkit.methods.ablationcam import zero_channel

    n, channels = len(x), int(model.get_layer(LAYER).output.shape[-1])
    forward_fn = tf.function(lambda v: model(v, training=False), autograph=False)
    to_acts = tf.function(keras.Model(model.inputs, model.get_layer(LAYER).output), autograph=False)
    copies = tf.constant(np.resize(x, (chunk, *x.shape[1:])))
    full, rest = divmod(n * channels, chunk)
    x_t = tf.constant(x)
    acts = to_acts(x_t)
    targets = np.argmax(model.predict(x, verbose=0), axis=1)
    ablation = method_class("ablationcam")(chunk=ablation_chunk)
    rows = (tf.repeat(tf.range(n), channels), tf.tile(tf.range(channels), [n]),
            tf.repeat(tf.constant(targets, tf.int32), channels))
    theirs = Scorecam(model, model_modifier=ReplaceToLinear())  # a clone: the model itself is left alone

    def floor(calls: int = full, last: int = rest) -> list:
        out = [forward_fn(x_t)] + [forward_fn(copies) for _ in range(calls)] + ([forward_fn(copies[:last])]
                                                                              if last else [])
        return [o.numpy() for o in out]

    def upper(a: Any) -> Any:
        return forward.upper_scores(model, LAYER, ablation.class_scores, ablation.step_key(), x_t, a, *rows,
                                    ablation_chunk, edit=zero_channel)[0].numpy()

    def scorecam(keep: int | None = None) -> Any:
        return camkit.explain(model, x, method="scorecam", layer=LAYER, chunk=chunk, max_channels=keep,
                              progress=False)

    def tkv(keep: int | None = None) -> Any:
        return theirs(CategoricalScore(list(targets)), x, penultimate_layer=LAYER, max_N=keep)

    def ablationcam() -> Any:
        return camkit.explain(model, x, method="ablationcam", layer=LAYER, chunk=ablation_chunk, progress=False)

    return {
        "scorecam": (lambda: scorecam(keep=chunk), scorecam),  # max_channels=chunk: one chunk, the same trace
        "scorecam_floor": (lambda: floor(1, rest), floor),
        "tf_keras_vis": (lambda: tkv(keep=32), tkv),
        "ablationcam": (ablationcam, ablationcam),
        "ablationcam_floor": (lambda: upper(to_acts(x_t)), lambda: upper(to_acts(x_t))),
        "upper_only": (lambda: upper(acts), lambda: upper(acts)),
    }


def measure(images: int = 1, repeats: int = 3, chunks: tuple[int | None, int | None] = (None, None), seed: int = 0,
            skip: Sequence[str] = (), log: Callable[[str], None] = print, size: int = SIZE) -> dict:
    """Interleaved medians of every call of :func:`_calls` (``skip``: names left out), ratios to the floors.

    ``chunks``: Score-CAM's and Ablation-CAM's ``chunk`` (None: their defaults).
    """
    import tensorflow as tf

    from camkit.methods import ablationcam, scorecam

    chunk, ablation_chunk = chunks[0] or scorecam.CHUNK, chunks[1] or ablationcam.CHUNK
    model, x = _setup(images, seed, size)
    calls = {k: v for k, v in _calls(model, x, chunk, ablation_chunk).items() if k not in skip}
    wall: dict[str, list[float]] = {k: [] for k in calls}
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    warm: dict[str, list[float]] = {k: [] for k in calls}
    for name, (warm_up, _) in calls.items():
        _timed(warm_up, warm[name], [])
        log(f"warm-up {name:18} {warm[name][-1]:8.2f} s")
    load = [os.getloadavg()[0]]
    for round_ in range(repeats):
        for name, (_, fn) in calls.items():
            _timed(fn, wall[name], cpu[name])
            log(f"round {round_} {name:18} {wall[name][-1]:8.2f} s wall {cpu[name][-1]:8.2f} s cpu")
        load.append(os.getloadavg()[0])
    median = {k: statistics.median(v) for k, v in wall.items()}
    median_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    ratios = {}
    for num, den in (("scorecam", "scorecam_floor"), ("scorecam", "tf_keras_vis"),
                     ("ablationcam", "ablationcam_floor"), ("upper_only", "scorecam_floor")):
        if num in median and den in median:
            ratios[f"{num}/{den}"] = median[num] / median[den]
            ratios[f"{num}/{den} cpu"] = median_cpu[num] / median_cpu[den]
    return {"images": images, "size": size, "chunk": chunk, "ablation_chunk": ablation_chunk, "repeats": repeats,
            "layer": LAYER, "median_s": median,
            "median_cpu_s": median_cpu, "times_s": wall, "cpu_times_s": cpu, "warm_up_s": warm,
            "ratios": ratios, "load_avg_1min": load, "cpu_cores": os.cpu_count(), "tensorflow": tf.__version__}


def tune_chunks(chunks: Sequence[int], copies: int = 128, repeats: int = 2, seed: int = 0,
                log: Callable[[str], None] = print, size: int = SIZE) -> dict[int, float]:
    """Median seconds per copy of plain compiled forward passes of ``copies`` images in batches of each chunk."""
    import tensorflow as tf

    model, x = _setup(1, seed, size)
    forward_fn = tf.function(lambda v: model(v, training=False), autograph=False)
    batches = {c: tf.repeat(tf.constant(x), c, axis=0) for c in chunks}
    times: dict[int, list[float]] = {c: [] for c in chunks}
    for c in chunks:  # warm-up: the trace
        forward_fn(batches[c]).numpy()
    for round_ in range(repeats):
        for c in chunks:
            start = time.perf_counter()
            for _ in range(max(1, copies // c)):
                forward_fn(batches[c]).numpy()
            times[c].append((time.perf_counter() - start) / (max(1, copies // c) * c))
            log(f"round {round_} chunk {c:4}: {times[c][-1]:.4f} s per copy")
    return {c: statistics.median(t) for c, t in times.items()}


def tune_ablation_chunks(chunks: Sequence[int], images: int = 1, repeats: int = 3, seed: int = 0,
                         size: int = SIZE) -> dict[int, float]:
    """Median seconds of Ablation-CAM's upper runs (512 ablated copies per image) at each chunk size."""
    from camkit.methods import ablationcam

    model, x = _setup(images, seed, size)
    runs = {c: _calls(model, x, ablationcam.CHUNK, c)["upper_only"][1] for c in chunks}
    times: dict[int, list[float]] = {c: [] for c in chunks}
    for c in chunks:
        runs[c]()  # warm-up: the trace
    for _ in range(repeats):
        for c in chunks:
            _timed(runs[c], times[c], [])
    return {c: statistics.median(t) for c, t in times.items()}


def compare_tf_keras_vis(images: int = 1, chunk: int | None = None, seed: int = 0, size: int = SIZE) -> dict:
    """camkit's ``weights="probability"`` maps against tf-keras-vis's Scorecam maps on the same images."""
    import numpy as np
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    import camkit
    from camkit.methods.scorecam import CHUNK

    model, x = _setup(images, seed, size)
    ours = camkit.explain(model, x, method="scorecam", layer=LAYER, weights="probability", chunk=chunk or CHUNK)
    theirs = np.asarray(Scorecam(model, model_modifier=ReplaceToLinear())(CategoricalScore(list(ours.targets)), x,
                                                                           penultimate_layer=LAYER))
    theirs = theirs.reshape(ours.maps.shape)
    corr = [float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(ours.maps, theirs, strict=True)]
    return {"correlation": corr, "max_abs_diff": float(np.abs(ours.maps - theirs).max()),
            "mean_abs_diff": float(np.abs(ours.maps - theirs).mean())}


def table(result: dict) -> str:
    """A Markdown table of :func:`measure`'s medians and ratios."""
    m, c = result["median_s"], result["median_cpu_s"]
    side = result["size"]
    lines = [f"VGG16 at `{result['layer']}` (512 channels), {result['images']} image(s) {side}×{side}×3, chunk "
             f"{result['chunk']} (Ablation-CAM {result['ablation_chunk']}): median of {result['repeats']} interleaved "
             "rounds after a warm-up round; 1-min "
             f"load average {min(result['load_avg_1min']):.1f}–{max(result['load_avg_1min']):.1f} on "
             f"{result['cpu_cores']} cores.", "", "| call | s (wall) | s (process CPU) |", "|---|---|---|"]
    lines += [f"| {name} | {m[name]:.2f} | {c[name]:.2f} |" for name in m]
    lines += ["", "| ratio | wall | process CPU | target |", "|---|---|---|---|"]
    targets = {"scorecam/scorecam_floor": f"≤ {TARGET}", "scorecam/tf_keras_vis": "< 1",
               "ablationcam/ablationcam_floor": f"≤ {TARGET}", "upper_only/scorecam_floor": "≪ 1"}
    lines += [f"| {name} | {result['ratios'][name]:.3f} | {result['ratios'][name + ' cpu']:.3f} | {target} |"
              for name, target in targets.items() if name in result["ratios"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, help="Score-CAM's copies per forward call (default: camkit's)")
    parser.add_argument("--ablation-chunk", type=int, help="Ablation-CAM's copies per call (default: camkit's)")
    parser.add_argument("--chunks", type=int, nargs="*", default=[], help="also time plain forwards at these chunks")
    parser.add_argument("--ablation-chunks", type=int, nargs="*", default=[],
                        help="also time Ablation-CAM's upper runs at these chunks")
    parser.add_argument("--skip", nargs="*", default=[], help="calls to leave out (e.g. tf_keras_vis)")
    parser.add_argument("--compare", action="store_true", help="check the probability maps against tf-keras-vis")
    parser.add_argument("--size", type=int, default=SIZE, help="image side (a smaller one for a smoke run)")
    parser.add_argument("--json", type=Path, help="write the measurements to this JSON file")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md's bench block")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    if args.chunks:
        out["chunks_s_per_copy"] = tune_chunks(args.chunks, size=args.size)
        print(json.dumps(out["chunks_s_per_copy"]), flush=True)
    if args.ablation_chunks:
        out["ablation_chunks_s"] = tune_ablation_chunks(args.ablation_chunks, args.images, size=args.size)
        print(json.dumps(out["ablation_chunks_s"]), flush=True)
    if args.repeats:
        out["measure"] = measure(args.images, args.repeats, (args.chunk, args.ablation_chunk), skip=args.skip,
                                 size=args.size)
        print("\n" + table(out["measure"]), flush=True)
    if args.compare:
        out["compare"] = compare_tf_keras_vis(args.images, args.chunk, size=args.size)
        print(json.dumps(out["compare"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if args.readme and "measure" in out:
        from camkit.io import replace_marked_block

        replace_marked_block(Path(__file__).resolve().parents[1] / "README.md", "bench_perturbation",
                             table(out["measure"]))


if __name__ == "__main__":
    main()
