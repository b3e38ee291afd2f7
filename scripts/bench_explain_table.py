"""The README table of ``bench_explain.py``: pooled references, the ratios, the caption and the notes under it."""

from __future__ import annotations

import statistics
from typing import Any

import bench_common as bc

TARGET = 1.5  # the budget: Grad-CAM at most 1.5x a prediction
ARCHS = {"vgg16-gap": "conv → GAP → Dense, without the FC head"}  # what an architecture is, for the notes
DEFAULTS = {"repeats": 3, "batch_size": 32, "budget": 4.0, "max_seconds": 20.0}  # bench_explain's defaults


def duration(seconds: float) -> str:
    """``0.0872`` -> ``87.2 ms``, ``1.55`` -> ``1.55 s``, ``0.000341`` -> ``0.341 ms``."""
    return f"{seconds:.3g} s" if seconds >= 1 else f"{1000 * seconds:.3g} ms"


def _pooled(rows: list[dict], key: str, field: str = "times_s") -> float:
    return statistics.median(t for r in rows for t in r[field].get(key, ()))


def _counts(rows: list[dict]) -> dict[int, dict]:
    """Input count -> predict and forward medians pooled over the workers that explained that many inputs."""
    counts: dict[int, dict] = {}
    for n in sorted({r["samples"] for r in rows}):
        same = [r for r in rows if r["samples"] == n]
        counts[n] = {key: {"median_s": _pooled(same, key), "median_cpu_s": _pooled(same, key, "cpu_times_s"),
                           "first_call_s": statistics.median(r["first_call_s"][key] for r in same),
                           "calls": sum(len(r["times_s"][key]) for r in same)} for key in ("predict", "forward")}
    return counts


def _floor_names(r: dict) -> dict[str, str]:
    """The method's floor passes (``floor_seconds`` keys) -> their names (the JSON keys, shared between methods)."""
    return {key: bc.floor_name(key, r["layer"]) for key in bc.floor_keys(r["passes"])}


def references(results: list[dict]) -> dict[str, dict]:
    """Per architecture: pooled reference medians; each result gets its floor and ratios.

    Pooling the reference calls of all of an architecture's workers (interleaved with the methods' calls) keeps a
    stray slow ``predict`` from moving one method's ratio. predict and forward pool per input count; each floor
    pass (one full batch, per input) over every worker that timed it.
    """
    refs: dict[str, dict] = {}
    for arch in dict.fromkeys(r["arch"] for r in results):
        rows = [r for r in results if r["arch"] == arch]
        counts = _counts(rows)
        names = dict.fromkeys(name for r in rows for name in _floor_names(r).values())
        floors = {name: statistics.median(t / r["floor_batch"] for r in rows
                                          for t in r["times_s"].get(f"floor {name}", ())) for name in names}
        refs[arch] = {"arch": arch, "input_shape": rows[0]["input_shape"], "counts": counts, "floor_per_sample": floors}
        for r in rows:
            ref = counts[r["samples"]]
            per_sample = {key: floors[name] for key, name in _floor_names(r).items()}
            r["floor_s"] = bc.floor_seconds(r["passes"], per_sample, r["samples"])
            r["x_predict"] = r["median_s"]["method"] / ref["predict"]["median_s"]
            r["x_forward"] = r["median_s"]["method"] / ref["forward"]["median_s"]
            r["x_floor"] = r["median_s"]["method"] / r["floor_s"]
            r["x_predict_cpu"] = statistics.median(r["cpu_times_s"]["method"]) / ref["predict"]["median_cpu_s"]
    return refs


def _reference_rows(arch: str, ref: dict) -> list[str]:
    """predict and forward on the largest input count of the architecture."""
    n = max(ref["counts"])
    shape, counts = f"{n} × {'×'.join(map(str, ref['input_shape']))}", ref["counts"][n]
    predict, forward = counts["predict"], counts["forward"]
    return [f"| {arch} | {shape} | {name} | – | {n / c['median_s']:.1f} | {c['median_s']:.3f} "
            f"| {c['median_s'] / predict['median_s']:.2f} | {c['median_s'] / forward['median_s']:.2f} | – "
            f"| {c['median_cpu_s'] / predict['median_cpu_s']:.2f} | {c['first_call_s']:.2f} | – |"
            for c, name in ((predict, "`model.predict` (reference)"), (forward, "forward pass (`tf.function`)"))]


def caption(results: list[dict], settings: dict[str, Any], device: str) -> list[str]:
    memory = "GPU allocator peak" if results[0]["memory_kind"] == "gpu" else "peak RSS (Linux `VmHWM`, reset)"
    counts = sorted({len(r["times_s"]["method"]) for r in results})
    calls = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    flags = "".join(f" --{key.replace('_', '-')} {settings[key]:g}" for key, default in DEFAULTS.items()
                    if settings[key] != default)
    return [
        f"{device}. `python scripts/bench_explain.py{flags}`: median of {calls} calls per method after a first "
        f"(tracing) call, batch size {settings['batch_size']}; each method explains as many inputs as its floor fits "
        f"in {settings['budget']:g} s (at least one; *inputs*); {bc.load_note(results)}.",
        "",
        "× predict, the reference: time per `explain` call over time per `model.predict(x, batch_size)` call on the "
        "same inputs (the median of every predict call on that many inputs made for that model, interleaved with the "
        "methods' calls); × forward: the same over the plain compiled forward pass `model(x, training=False)` in a "
        "`tf.function`, batch by batch. × floor: over the method's own floor, the time its passes per map "
        "(*passes*, from `Method.passes`: F forward passes, B of them with a backward pass to the layer or, marked, "
        "to the input, U runs of only the layers above the layer) take at the speed of plain compiled passes on a "
        "full batch, timed in the same processes: inputs × (F·t(forward) + B·(t(forward + backward) − t(forward)) "
        "+ U·t(layers above)), per-input times below the table. Near 1: the method costs its passes; above: its "
        "own work (weights, upsampling, a solver, copies to the host) adds to them; below: it runs its copies in "
        "larger batches than the reference's (dense layers above the layer gain most). × predict CPU: process "
        "CPU time instead of wall time, which other processes and stalls do not inflate. First call: the first "
        f"`explain` call of a fresh process, tracing included. Memory: {memory} during a method call above the "
        "memory in use when it starts, the largest over its calls.",
        "",
        "| model | inputs | method | passes | maps/s | s per call | × predict | × forward | × floor | × predict CPU "
        "| first call s | memory MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]


def table(results: list[dict], refs: dict[str, dict], settings: dict[str, Any], device: str,
          skipped: list[str]) -> str:
    """The Markdown block: caption, one group of rows per architecture (references first), notes."""
    lines = caption(results, settings, device)
    for arch, ref in refs.items():
        lines += _reference_rows(arch, ref)
        for r in (r for r in results if r["arch"] == arch):
            noisy = " †" if (r.get("other_cpu_cores") or 0) > bc.NOISY else ""
            lines.append(
                f"| {arch} | {r['samples']} × {'×'.join(map(str, r['input_shape']))} | {r['label']}{noisy} "
                f"| {bc.passes_text(r['passes'])} | {r['maps_per_s']:.1f} | {r['median_s']['method']:.3f} "
                f"| {r['x_predict']:.2f} | {r['x_forward']:.2f} | {r['x_floor']:.2f} | {r['x_predict_cpu']:.2f} "
                f"| {r['first_call_s']['method']:.2f} | {r['peak_memory_mib']:.0f} |")
    return "\n".join([*lines, "", *notes(results, refs, skipped)]) + "\n"


def notes(results: list[dict], refs: dict[str, dict], skipped: list[str]) -> list[str]:
    """The lines under the table: floor passes per input, Grad-CAM's budget, architectures, what was left out."""
    lines = []
    for arch, ref in refs.items():
        each = ", ".join(f"{name} {duration(t)}" for name, t in ref["floor_per_sample"].items())
        lines.append(f"Floor passes on {arch}, per input: {each}.")
    gradcam = [r for r in results if r["method"] == "gradcam" and not r["options"]]
    if gradcam:
        each = ", ".join(f"{r['arch']} {r['x_predict']:.2f}×" for r in gradcam)
        verdict = "yes" if all(r["x_predict"] <= TARGET for r in gradcam) else "no"
        lines.append(f"Grad-CAM within {TARGET}× a prediction: {verdict} ({each}).")
    if any((r.get("other_cpu_cores") or 0) > bc.NOISY for r in results):
        lines.append(f"† other processes used more than {bc.NOISY} cores while this row was measured.")
    if any(r["passes"]["backward"] and r["passes"]["backward_to"] == "input" for r in results):
        lines.append("Methods with a backward pass to the input (B (input)) differentiate the whole network, about "
                     "the cost of another forward pass or more.")
    for arch in dict.fromkeys(r["arch"] for r in results if r["arch_reason"]):
        rows = [r for r in results if r["arch"] == arch]
        what = f" ({ARCHS[arch]})" if arch in ARCHS else ""
        lines.append(f"{', '.join(dict.fromkeys(r['label'] for r in rows))} run on `{arch}`{what}: "
                     f"{rows[0]['arch_reason']}; the ratios are to that model's own passes.")
    if skipped:
        lines.append(f"Not timed: {'; '.join(skipped)}.")
    return lines
