"""Helpers of ``bench_explain.py``: workers and what else ran on the machine, peak memory, method options, floors.

The floor of a method is the time its :class:`camkit.methods.Passes` would take at the speed of plain compiled
passes (see :func:`floor_seconds`); :func:`floor_runners` builds those passes for a model and a layer,
:func:`sample_count` picks how many inputs a method gets from its floor and a time budget. Nothing here imports
TensorFlow at module level: the parent process of the benchmark stays free of it.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NOISY = 0.25  # CPU cores used by other processes during a measurement above which the table says so
RESULT = "BENCH_RESULT "  # a worker's result line: this prefix, then JSON


# --------------------------------------------------------------------------- the machine


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def busy_cpu_s() -> float | None:
    """CPU seconds all processes have used since boot (Linux ``/proc/stat``), None elsewhere."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def wait_quiet(limit_s: float) -> None:
    """Wait (at most ``limit_s``) until other processes use less than ``NOISY`` cores over 5 s."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = busy_cpu_s()
        if before is None:
            return
        time.sleep(5)
        if (busy_cpu_s() - before) / 5 < NOISY:
            return


def load_note(results: list[dict]) -> str:
    """What else ran on the machine: CPU cores other processes used while each measurement ran."""
    others = [r["other_cpu_cores"] for r in results if r.get("other_cpu_cores") is not None]
    if not others:
        loads = [v for r in results for v in r["load_avg_1min"]]
        return f"1-min load average {min(loads):.1f}–{max(loads):.1f} during the run (this benchmark included)"
    cores = results[0].get("cpu_cores", os.cpu_count())
    note = (f"other processes used {statistics.mean(others):.2f} of {cores} cores on average "
            f"(at most {max(others):.2f} during one measurement)")
    return note + ("; timings are noisy" if max(others) > NOISY else "")


class WorkerFailed(Exception):
    """A worker exited with an error (or printed no result); its message is the last line of its stderr."""


def worker_result(script: Path, args: list[str]) -> dict:
    """Run ``script args`` in a subprocess (in the repository root) and read the JSON of its last ``RESULT`` line;
    its stderr is shown when it fails."""
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          cwd=script.resolve().parent.parent)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise WorkerFailed((proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:200])
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if not lines:
        raise WorkerFailed("the worker printed no result")
    return json.loads(lines[-1][len(RESULT) :])


def measured(script: Path, args: list[str]) -> dict:
    """:func:`worker_result`, with its wall time and the CPU cores that other processes used meanwhile."""
    load_before, busy_before, own_before = os.getloadavg()[0], busy_cpu_s(), own_cpu_s()
    start = time.perf_counter()
    result = worker_result(script, args)
    wall, busy_after = time.perf_counter() - start, busy_cpu_s()
    result.update(load_avg_1min=[load_before, os.getloadavg()[0]], wall_s=wall, cpu_cores=os.cpu_count())
    result["other_cpu_cores"] = (None if busy_before is None or busy_after is None
                                 else max(0.0, (busy_after - busy_before) - (own_cpu_s() - own_before)) / wall)
    return result


def quietest(measure: Callable[[], dict], retries: int, wait_s: float) -> dict:
    """``measure()`` (waiting up to ``wait_s`` for a quiet machine first), again up to ``retries`` times while other
    processes were busy; the quietest result."""
    runs: list[dict] = []
    for attempt in range(retries + 1):
        if wait_s:
            wait_quiet(wait_s)
        runs.append(measure())
        if (runs[-1]["other_cpu_cores"] or 0) <= NOISY:
            break
        if attempt < retries:
            print("  (noisy: measuring again)", flush=True)
    return min(runs, key=lambda r: r["other_cpu_cores"] or 0)


class PeakMemory:
    """Peak memory of one call above the memory in use when it starts, in MiB.

    GPU: the allocator's peak (``tf.config.experimental``), reset before the call. CPU: the peak RSS (Linux
    ``VmHWM``), reset before the call through ``/proc/self/clear_refs``; where that cannot be reset, the peak RSS
    of the whole process (``getrusage``) above its value before the call.
    """

    def __init__(self, gpu: bool) -> None:
        self.gpu = gpu
        self.kind = "gpu" if gpu else "rss"

    def start(self) -> None:
        if self.gpu:
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats("GPU:0")
            self.base = tf.config.experimental.get_memory_info("GPU:0")["current"] / 2**20
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.base = _status_mib("VmRSS")
        except OSError:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    def peak(self) -> float:
        if self.gpu:
            import tensorflow as tf

            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20 - self.base
        try:
            return _status_mib("VmHWM") - self.base
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - self.base


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise OSError(f"/proc/self/status has no {field}")


# --------------------------------------------------------------------------- method options


def split_pairs(text: str) -> list[str]:
    """``"a=1,b=[x, y]"`` -> ``["a=1", "b=[x, y]"]``: commas inside brackets or braces stay in their value."""
    pairs, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            pairs.append(text[start:i])
            start = i + 1
    pairs.append(text[start:])
    return [p.strip() for p in pairs if p.strip()]


def option_key(pair: str) -> str:
    """The key of a ``KEY=VALUE`` method option (its value is read as YAML by the worker, as ``camkit explain -o``)."""
    key, sep, _ = pair.partition("=")
    if not sep or not key.strip().isidentifier():
        raise ValueError(f"expected KEY=VALUE (e.g. smooth=aug), got {pair!r}")
    return key.strip()


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"METHOD:KEY=VALUE,KEY=VALUE"`` -> (method, ``KEY=VALUE`` pairs)."""
    method, _, pairs = text.partition(":")
    options = split_pairs(pairs)
    if not method.strip() or not options:
        raise ValueError(f"--variants: expected METHOD:KEY=VALUE[,KEY=VALUE...], got {text!r}")
    for pair in options:
        option_key(pair)
    return method.strip(), options


def label(method: str, options: list[str]) -> str:
    """The table's name of a (method, options) row: ``gradcam smooth=aug``."""
    return " ".join([method, *options])


# --------------------------------------------------------------------------- floors


def floor_name(key: str, layer: str | None) -> str:
    """The name (and JSON key) of a floor pass: ``forward``, ``forward + backward to block5_pool``, ..."""
    return {"forward": "forward", "input": "forward + backward to the input",
            "layer": f"forward + backward to {layer}", "upper": f"layers above {layer}"}[key]


def floor_keys(passes: dict[str, Any]) -> list[str]:
    """The reference passes a method's floor needs: ``forward``, and ``layer``/``input`` and ``upper`` if used."""
    keys = ["forward"]
    if passes["backward"]:
        keys.append(passes["backward_to"])
    if passes["upper"]:
        keys.append("upper")
    return keys


def floor_seconds(passes: dict[str, Any], per_sample: dict[str, float], samples: int) -> float:
    """``samples × (forward·t_f + backward·(t_fb − t_f) + upper·t_u)`` with per-sample reference times.

    ``t_f``: a plain compiled forward pass; ``t_fb``: a compiled forward and backward pass to the layer (or to the
    input, ``backward_to="input"``); ``t_u``: a run of only the layers above the layer. A backward pass is never
    counted below zero (``t_fb − t_f`` can dip under it in noisy timings when the backward pass is tiny).
    """
    forward = per_sample["forward"]
    backward = max(0.0, per_sample[passes["backward_to"]] - forward) if passes["backward"] else 0.0
    upper = per_sample["upper"] if passes["upper"] else 0.0
    return samples * (passes["forward"] * forward + passes["backward"] * backward + passes["upper"] * upper)


def sample_count(per_map_s: float, budget_s: float, available: int) -> int:
    """How many inputs a method gets: as many as its floor fits in ``budget_s`` (at least 1, at most all).

    ``budget_s <= 0``: all of them.
    """
    if budget_s <= 0 or per_map_s <= 0:
        return available
    return max(1, min(available, int(budget_s / per_map_s)))


def passes_text(passes: dict[str, Any]) -> str:
    """``513 F``, ``1 F + 1 B``, ``6 F + 6 B (input)``, ``1 F + 512 U``: forward, backward, upper runs per map."""
    text = f"{passes['forward']} F"
    if passes["backward"]:
        text += f" + {passes['backward']} B" + (" (input)" if passes["backward_to"] == "input" else "")
    if passes["upper"]:
        text += f" + {passes['upper']} U"
    return text


def floor_runners(model: Any, ref: Any, keys: list[str], batch: Any) -> dict[str, Callable[[], float]]:
    """``key -> run()``: each reference pass of ``keys`` over ``batch`` (one step-sized batch), compiled.

    ``ref``: the explained layer's :class:`camkit.methods.layers.LayerRef` (None for methods without one). The
    backward passes take ``d Σ_i max_c y_ic`` (each sample's top output) with respect to the layer's output ``A``
    (only that tensor is watched, as camkit's step does; through Functional sub-models below and above the layer)
    or to the input. The upper layers run on ``A`` through ``camkit.methods.forward.upper_scores``, the runner of
    the layers above a layer that Ablation-CAM uses, reading class 0 of every copy. Each ``run()`` returns a sum
    of what it computed (a test checks them against closed forms).
    """
    import keras
    import tensorflow as tf

    from camkit.methods.forward import upper_scores
    from camkit.methods.layers import pre_softmax

    x = tf.constant(batch)

    def top(y: Any) -> tf.Tensor:
        return tf.reduce_sum(tf.reduce_max(keras.tree.flatten(y)[0], axis=-1))

    def to_input(v: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(v)
            score = top(model(v, training=False))
        return tf.reduce_sum(tape.gradient(score, v))

    fns: dict[str, Any] = {"forward": lambda v: tf.reduce_sum(keras.tree.flatten(model(v, training=False))[0]),
                           "input": to_input}
    if ref is not None and {"layer", "upper"} & set(keys):
        lower = keras.Model(model.input, ref.layer.output)
        upper = keras.Model(ref.layer.output, model.outputs)
        acts, rows = lower(x, training=False), tf.zeros(len(batch), tf.int32)

        def to_layer(v: tf.Tensor) -> tf.Tensor:
            a = lower(v, training=False)
            with tf.GradientTape() as tape:
                tape.watch(a)
                score = top(upper(a, training=False))
            return tf.reduce_sum(tape.gradient(score, a))

        fns["layer"] = to_layer
    compiled = {key: tf.function(fns[key], autograph=False) for key in keys if key != "upper"}
    runs = {key: (lambda f=f: float(f(x))) for key, f in compiled.items()}

    def scores(outputs: Any) -> tf.Tensor:
        return pre_softmax(keras.tree.flatten(outputs)[0])

    if "upper" in keys:
        runs["upper"] = lambda: float(tf.reduce_sum(upper_scores(
            model, ref.path, scores, "bench floor", x, acts, tf.range(len(batch)), rows, rows, len(batch))[0]))
    return runs
