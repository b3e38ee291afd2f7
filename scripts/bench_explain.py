"""Attribution speed for the README: maps per second per method, and its cost relative to a prediction.

For FCN on GunPoint (the 150 test series, random weights unless ``--fcn-model``) and VGG16 at
224×224×3 with random weights (the ``vgg16`` model with its fully connected head, 1000 classes;
CAM needs a GAP head, so CAM is timed on ``vgg16-gap``), every method of ``camkit.methods()``:

- time per ``camkit.explain(model, x, method=m, batch_size=B)`` call, the median of ``--repeats``
  calls or more (fast models: as many as fill 2 s) after a first call (the first call, which traces
  the compiled step, is reported apart), and maps per second;
- the same for ``model.predict(x, batch_size=B)`` (the reference) and for the plain compiled forward
  pass ``model(x, training=False)`` in a ``tf.function`` over the same batches, timed alternately
  with the method's calls in the same process; the ratios use the median of every reference call
  made for that model, and are also given in process CPU time, which other processes do not inflate;
- peak memory above the baseline taken after the model is built and has predicted once: peak RSS
  (``resource.getrusage``) on CPU, the allocator's peak (``tf.config.experimental.get_memory_info``)
  on a GPU.

Every (model, method) runs in a fresh subprocess. The CPU time other processes used meanwhile is
recorded (``/proc/stat``), shown in the caption, and marks a row when above 0.25 cores;
``--wait-quiet S`` waits for a quiet machine before each measurement, ``--retries N`` measures a
noisy one again and keeps the quietest. Prints a Markdown table; ``--json PATH`` writes every
measurement, ``--readme`` replaces the block between ``<!-- bench_explain -->`` markers in
README.md, ``--from-json PATH`` renders a saved run without measuring.

    .venv/bin/python scripts/bench_explain.py --readme --json bench_explain.json
    .venv/bin/python scripts/bench_explain.py --models fcn --methods gradcam --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
RESULT = "BENCH_EXPLAIN_RESULT "
MODELS = ("fcn", "vgg16")
TARGET = 1.5  # the budget: Grad-CAM at most 1.5x a prediction
MIN_SECONDS = 2.0  # time each method for at least this long (and --repeats calls), at most 50 calls
NOISY = 0.25  # CPU cores used by other processes during a measurement above which the table says so


# --------------------------------------------------------------------------- worker (one subprocess)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _load(model_name: str, method: str, batch_size: int, fcn_model: str | None):
    """(model, x, architecture name) for one measurement."""
    import keras
    import numpy as np

    import camkit

    keras.utils.set_random_seed(0)
    if model_name == "fcn":
        x = np.load(REPO / "data" / "GunPoint" / "x_test.npy").astype(np.float32)
        x = x[..., None] if x.ndim == 2 else x
        if fcn_model:
            return camkit.load_model(fcn_model), x, f"fcn ({Path(fcn_model).name})"
        return camkit.build_model("fcn", x.shape[1:], 2), x, "fcn"
    arch = "vgg16-gap" if method == "cam" else "vgg16"  # CAM needs conv -> GAP -> Dense
    x = np.random.default_rng(0).uniform(0, 255, size=(batch_size, 224, 224, 3)).astype(np.float32)
    return camkit.build_model(arch, (224, 224, 3), 1000), x, arch


def worker(model_name: str, method: str, repeats: int, batch_size: int, fcn_model: str | None) -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)

    import keras

    import camkit

    model, x, arch = _load(model_name, method, batch_size, fcn_model)
    n = len(x)

    forward_fn = tf.function(lambda v: model(v, training=False), autograph=False)

    def predict() -> None:
        model.predict(x, batch_size=batch_size, verbose=0)

    def forward() -> None:
        for i in range(0, n, batch_size):
            keras.ops.convert_to_numpy(forward_fn(tf.constant(x[i : i + batch_size])))

    def run() -> None:
        camkit.explain(model, x, method=method, batch_size=batch_size, progress=False)

    def timed(fn, key: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        times[key].append(time.perf_counter() - wall)
        cpu_times[key].append(time.process_time() - cpu)

    times: dict[str, list[float]] = {"predict": [], "forward": [], "method": []}
    cpu_times: dict[str, list[float]] = {"predict": [], "forward": [], "method": []}
    timed(predict, "predict")
    timed(forward, "forward")
    base_rss = _peak_rss_mib()
    if gpus:
        tf.config.experimental.reset_memory_stats("GPU:0")
        base_gpu = tf.config.experimental.get_memory_info("GPU:0")["current"]
    timed(run, "method")
    first = {key: values.pop() for key, values in times.items()}
    first_cpu = {key: values.pop() for key, values in cpu_times.items()}
    # interleaved, so that all three see the same load; fast models get more rounds (MIN_SECONDS of calls)
    while len(times["method"]) < repeats or (sum(times["method"]) < MIN_SECONDS and len(times["method"]) < 50):
        for key, fn in (("predict", predict), ("forward", forward), ("method", run)):
            timed(fn, key)
    if gpus:
        memory = (tf.config.experimental.get_memory_info("GPU:0")["peak"] - base_gpu) / 2**20
    else:
        memory = _peak_rss_mib() - base_rss

    median = {key: statistics.median(values) for key, values in times.items()}
    return {
        "model": model_name,
        "arch": arch,
        "method": method,
        "samples": n,
        "batch_size": batch_size,
        "input_shape": list(x.shape[1:]),
        "times_s": times,
        "cpu_times_s": cpu_times,
        "median_s": median,
        "first_call_s": first,
        "first_call_cpu_s": first_cpu,
        "maps_per_s": n / median["method"],
        "paired_x_predict": median["method"] / median["predict"],
        "paired_x_forward": median["method"] / median["forward"],
        "peak_memory_mib": memory,
        "memory_kind": "gpu" if gpus else "rss",
        "baseline_rss_mib": base_rss,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpu": _gpu_name(tf, gpus),
    }


def _gpu_name(tf, gpus) -> str | None:
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name)


# --------------------------------------------------------------------------- parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _busy_cpu_s() -> float | None:
    """CPU seconds all processes have used since boot (Linux ``/proc/stat``), None elsewhere."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_worker(args: list[str]) -> str:
    """Run this script with ``args`` in a subprocess; its stdout (stderr shown on failure)."""
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{' '.join(args)}: worker failed (exit {proc.returncode})")
    return proc.stdout


def wait_quiet(limit_s: float) -> None:
    """Wait (at most ``limit_s``) until other processes use less than ``NOISY`` cores over 5 s."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = _busy_cpu_s()
        if before is None:
            return
        time.sleep(5)
        if (_busy_cpu_s() - before) / 5 < NOISY:
            return


def measure_quietest(model: str, method: str, args: argparse.Namespace) -> dict:
    """:func:`measure`, repeated up to ``--retries`` times while other processes were busy; the quietest run."""
    runs: list[dict] = []
    for attempt in range(args.retries + 1):
        if args.wait_quiet:
            wait_quiet(args.wait_quiet)
        runs.append(measure(model, method, args))
        if (runs[-1]["other_cpu_cores"] or 0) <= NOISY:
            break
        if attempt < args.retries:
            print("  (noisy: measuring again)", flush=True)
    return min(runs, key=lambda r: r["other_cpu_cores"] or 0)


def measure(model: str, method: str, args: argparse.Namespace) -> dict:
    """One (model, method) in a fresh process, with the CPU that other processes used meanwhile."""
    cmd = ["--worker", model, method, "--repeats", str(args.repeats), "--batch-size", str(args.batch_size)]
    if args.fcn_model:
        cmd += ["--fcn-model", args.fcn_model]
    load_before, busy_before, own_before = os.getloadavg()[0], _busy_cpu_s(), _own_cpu_s()
    start = time.perf_counter()
    lines = [line for line in run_worker(cmd).splitlines() if line.startswith(RESULT)]
    wall = time.perf_counter() - start
    busy_after = _busy_cpu_s()
    if not lines:
        raise SystemExit(f"{model} {method}: the worker printed no result")
    result = json.loads(lines[-1][len(RESULT) :])
    result["load_avg_1min"] = [load_before, os.getloadavg()[0]]
    result["wall_s"] = wall
    result["cpu_cores"] = os.cpu_count()
    result["other_cpu_cores"] = (
        None if busy_before is None or busy_after is None
        else max(0.0, (busy_after - busy_before) - (_own_cpu_s() - own_before)) / wall
    )
    others = result["other_cpu_cores"]
    print(f"{model:6} {method:17} {result['median_s']['method']:7.3f} s  x{result['paired_x_predict']:.2f} predict  "
          f"x{result['paired_x_forward']:.2f} forward  first {result['first_call_s']['method']:.2f} s  "
          f"{result['peak_memory_mib']:.0f} MiB  ({result['wall_s']:.0f} s; other processes "
          f"{'?' if others is None else f'{others:.2f}'} cores)", flush=True)
    return result


def device_line(results: list[dict]) -> str:
    r = results[0]
    gpu = f"GPU {r['gpu']}" if r["gpu"] else "no GPU"
    return (f"{cpu_name()}, {os.cpu_count()} cores, {gpu}; TensorFlow {r['tensorflow']}, Keras {r['keras']}, "
            f"Python {platform.python_version()}")


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


def references(results: list[dict]) -> dict[str, dict]:
    """Per architecture: medians over every predict and forward call its workers timed; ratios added to results.

    Pooling the reference calls of all of an architecture's workers (interleaved with the methods' calls)
    keeps a stray slow ``predict`` from moving one method's ratio.
    """
    refs: dict[str, dict] = {}
    model_of = {r["arch"]: r["model"] for r in results}
    models = list(dict.fromkeys(model_of.values()))
    # each model before its variant (vgg16, then vgg16-gap for CAM)
    for arch in sorted(model_of, key=lambda a: (models.index(model_of[a]), a != model_of[a])):
        rows = [r for r in results if r["arch"] == arch]
        ref = {"arch": arch, "samples": rows[0]["samples"], "input_shape": rows[0]["input_shape"]}
        for key in ("predict", "forward"):
            ref[key] = {
                "median_s": statistics.median(t for r in rows for t in r["times_s"][key]),
                "median_cpu_s": statistics.median(t for r in rows for t in r["cpu_times_s"][key]),
                "first_call_s": statistics.median(r["first_call_s"][key] for r in rows),
                "calls": sum(len(r["times_s"][key]) for r in rows),
            }
        refs[arch] = ref
        for r in rows:
            r["x_predict"] = r["median_s"]["method"] / ref["predict"]["median_s"]
            r["x_forward"] = r["median_s"]["method"] / ref["forward"]["median_s"]
            r["x_predict_cpu"] = statistics.median(r["cpu_times_s"]["method"]) / ref["predict"]["median_cpu_s"]
    return refs


def table(results: list[dict], refs: dict[str, dict], args: argparse.Namespace, device: str) -> str:
    memory = "GPU allocator peak" if results[0]["memory_kind"] == "gpu" else "peak RSS"
    counts = sorted({len(r["times_s"]["method"]) for r in results})
    calls = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    command = "python scripts/bench_explain.py"
    if args.repeats != 3 or args.batch_size != 32:
        command += f" --repeats {args.repeats} --batch-size {args.batch_size}"
    lines = [
        f"{device}. `{command}`: median of {calls} calls per method after a first (tracing) call, "
        f"batch size {args.batch_size}; {load_note(results)}.",
        "",
        "× predict, the reference: time per `explain` call over time per `model.predict(x, batch_size)` call on "
        "the same inputs (the median of every predict call made for that model, interleaved with the methods' "
        "calls); × forward: the same over the plain compiled forward pass `model(x, training=False)` in a "
        "`tf.function`, batch by batch; × predict CPU: process CPU time instead of wall time, which other "
        "processes and stalls do not inflate. First call: the first `explain` call of a fresh process, tracing "
        f"included. Memory: {memory} above the baseline after building the model and one prediction.",
        "",
        "| model | inputs | method | maps/s | s per call | × predict | × forward | × predict CPU | first call s "
        "| memory MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arch, ref in refs.items():
        shape = f"{ref['samples']} × {'×'.join(map(str, ref['input_shape']))}"
        for key, name in (("predict", "`model.predict` (reference)"), ("forward", "forward pass (`tf.function`)")):
            t = ref[key]["median_s"]
            ratio = t / ref["forward"]["median_s"]
            cpu = ref[key]["median_cpu_s"] / ref["predict"]["median_cpu_s"]
            lines.append(f"| {arch} | {shape} | {name} | {ref['samples'] / t:.1f} | {t:.3f} "
                         f"| {t / ref['predict']['median_s']:.2f} | {ratio:.2f} | {cpu:.2f} "
                         f"| {ref[key]['first_call_s']:.2f} | – |")
        for r in (r for r in results if r["arch"] == arch):
            noisy = " †" if (r.get("other_cpu_cores") or 0) > NOISY else ""
            lines.append(
                f"| {arch} | {shape} | {r['method']}{noisy} | {r['maps_per_s']:.1f} | {r['median_s']['method']:.3f} "
                f"| {r['x_predict']:.2f} | {r['x_forward']:.2f} | {r['x_predict_cpu']:.2f} "
                f"| {r['first_call_s']['method']:.2f} | {r['peak_memory_mib']:.0f} |"
            )
    gradcam = [r for r in results if r["method"] == "gradcam"]
    if gradcam:
        each = ", ".join(f"{r['arch']} {r['x_predict']:.2f}×" for r in gradcam)
        verdict = "yes" if all(r["x_predict"] <= TARGET for r in gradcam) else "no"
        lines += ["", f"Grad-CAM within {TARGET}× a prediction: {verdict} ({each})."]
    else:
        lines.append("")
    if any((r.get("other_cpu_cores") or 0) > NOISY for r in results):
        lines.append(f"† other processes used more than {NOISY} cores while this row was measured.")
    if any(r["method"].startswith("guided") for r in results):
        lines.append("Guided methods differentiate down to the input (a full backward pass, about the cost of "
                     "another forward pass or more), so they cost about twice a forward pass at least.")
    if any(r["arch"] == "vgg16-gap" for r in results):
        lines.append("CAM on VGG16 runs on `vgg16-gap` (conv → GAP → Dense; the FC head has no CAM), "
                     "and its ratios are to that model's own prediction.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--methods", nargs="+", help="default: every method of camkit.methods()")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--fcn-model", help="a trained FCN (.keras) to explain instead of random weights")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                        help=f"before each measurement, wait up to S s for other processes to use < {NOISY} cores")
    parser.add_argument("--retries", type=int, default=0,
                        help="measure again, up to this many times, when other processes were busy; keep the quietest")
    parser.add_argument("--json", type=Path, help="write every measurement to this JSON file")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    parser.add_argument("--from-json", type=Path, metavar="PATH",
                        help="measure nothing: print (and with --readme write) the table of a run saved with --json")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--list-methods", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1 or args.batch_size < 1 or args.retries < 0:
        parser.error("--repeats and --batch-size must be positive, --retries not negative")
    if args.fcn_model:
        args.fcn_model = str(Path(args.fcn_model).resolve())  # workers run in the repository root

    if args.list_methods:
        import camkit

        print(" ".join(camkit.methods()))
        return
    if args.worker:
        result = worker(*args.worker, args.repeats, args.batch_size, args.fcn_model)
        print(RESULT + json.dumps(result), flush=True)
        return

    start = time.perf_counter()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        results, args.repeats, args.batch_size = saved["results"], saved["repeats"], saved["batch_size"]
        device = saved["device"]
    else:
        registered = run_worker(["--list-methods"]).split()  # TensorFlow stays out of this process
        methods = args.methods or registered
        unknown = sorted(set(methods) - set(registered))
        if unknown:
            parser.error(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(registered)}")
        results = [measure_quietest(model, method, args) for model in args.models for method in methods]
        device = device_line(results)
    refs = references(results)
    text = table(results, refs, args, device)
    print(f"\n{text}\n({time.perf_counter() - start:.0f} s)")
    if args.json and not args.from_json:
        from camkit.io import atomic_write_json

        atomic_write_json(args.json, {"device": device, "repeats": args.repeats,
                                      "batch_size": args.batch_size, "references": refs, "results": results})
    if args.readme:
        from camkit.io import replace_marked_block

        replace_marked_block(REPO / "README.md", "bench_explain", text)


if __name__ == "__main__":
    main()
