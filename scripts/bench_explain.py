"""Attribution speed for the README: maps per second per method, its cost relative to a prediction and to its floor.

Models: FCN on GunPoint (the 150 test series, random weights unless ``--fcn-model``) and VGG16 at 224×224×3 with
random weights (its FC head, 1000 classes; ``--batch-size`` images). Rows: every classifier method of
``camkit.methods()`` that takes the model's kind of input, and ``--variants`` (``METHOD:KEY=VALUE,...``; default
Grad-CAM with ``smooth="aug"`` and ``smooth="eigen"``); ``-o KEY=VALUE`` gives an option to every selected method
that takes it (``-o layer=block5_conv3``). A method that does not apply to a model runs on the next architecture of
its list (``vgg16-gap`` for CAM), one with ``requires_model`` on that model; cluster methods have
``bench_cluster.py``. Each (model, row) runs in a fresh subprocess (a failed one is listed, and the run goes on):

- its inputs: as many as the method's floor (``bench_common.floor_seconds``) fits in ``--budget`` seconds, at least
  one, so that methods with hundreds of passes per map stay affordable;
- ``camkit.explain(model, x, method=m, batch_size=B, **options)``: the median of ``--repeats`` calls or more (as
  many as fill 2 s; fewer once ``--max-seconds`` are spent, at least one) after a first (tracing) call;
- timed alternately with it: ``model.predict`` and the plain compiled forward pass on the same inputs, and the
  floor's passes on one full batch (``bench_common.floor_runners``); the table's ratios use the medians pooled
  over the architecture's workers (``bench_explain_table.py``);
- the peak memory of a call above the memory in use when it starts; the CPU other processes used meanwhile.

``--wait-quiet S`` waits for a quiet machine before each measurement, ``--retries N`` measures a noisy one again.
``--json PATH`` saves every measurement, ``--readme`` replaces the ``<!-- bench_explain -->`` block of README.md,
``--from-json PATH`` renders a saved run. ``scripts/bench_perturbation.py``, when present, runs after a full run
(or with ``--perturbation``) as ``python scripts/bench_perturbation.py [--readme] [--json PATH]``.

    .venv/bin/python scripts/bench_explain.py --readme --json bench_explain.json
    .venv/bin/python scripts/bench_explain.py --models fcn --methods gradcam,cam --repeats 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import bench_common as bc
import bench_explain_table as report

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
RESULT = "BENCH_EXPLAIN_RESULT "
MODELS = {"fcn": ("series", ("fcn",)), "vgg16": ("images", ("vgg16", "vgg16-gap"))}  # kind, architectures to try
VARIANTS = ("gradcam:smooth=aug", "gradcam:smooth=eigen")
EXPLAIN_OPTIONS = ("layer",)  # options that go to explain, not to the method's constructor
MIN_SECONDS = 2.0  # time each method for at least this long (and --repeats calls), at most 50 calls
REF_SECONDS = 1.0  # time each reference (at least once) for at least this long, interleaved with the method
PERTURBATION = REPO / "scripts" / "bench_perturbation.py"


# --------------------------------------------------------------------------- worker (one subprocess)


def _inputs(model_name: str, batch_size: int):
    import numpy as np

    if model_name == "fcn":
        x = np.load(REPO / "data" / "GunPoint" / "x_test.npy").astype(np.float32)
        return x[..., None] if x.ndim == 2 else x
    return np.random.default_rng(0).uniform(0, 255, size=(batch_size, 224, 224, 3)).astype(np.float32)


def _prepare(job: dict):
    """(model, inputs, architecture, reason, method, layer ref): the first architecture the method applies to."""
    import keras

    import camkit
    from camkit.cli.options import method_options
    from camkit.methods import MethodNotApplicable
    from camkit.methods.base import make_method
    from camkit.methods.layers import resolve_layer

    x = _inputs(job["model"], job["batch_size"])
    options = method_options(tuple(job["options"]))
    meth = make_method(job["method"], **{k: v for k, v in options.items() if k not in EXPLAIN_OPTIONS})
    builder = meth.requires_model
    archs = (builder,) if builder else MODELS[job["model"]][1]
    shape = (min(job["batch_size"], len(x)), *x.shape[1:])
    for i, arch in enumerate(archs):
        keras.utils.set_random_seed(0)
        if arch == "fcn" and job["fcn_model"]:
            model, arch = camkit.load_model(job["fcn_model"]), f"fcn ({Path(job['fcn_model']).name})"
        else:
            model = camkit.build_model(arch, x.shape[1:], 2 if job["model"] == "fcn" else 1000)
        try:
            ref = resolve_layer(model, options.get("layer"), shape, meth.class_scores) if meth.uses_layer else None
            meth.setup(model, ref, shape)
        except MethodNotApplicable:
            if i == len(archs) - 1:
                raise
            continue
        reason = f"the method needs a {builder} model" if builder else (f"it does not apply to {archs[0]}" if i else "")
        return model, x, arch, reason, meth, ref, options
    raise AssertionError("unreachable")


def worker(job: dict) -> dict:
    """Every timing of one (model, method, options): floor references, then predict, forward and the method."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    import keras

    import camkit

    model, x_all, arch, reason, meth, ref, options = _prepare(job)
    size = job["batch_size"]
    passes = dataclasses.asdict(meth.passes(int(ref.layer.output.shape[-1]) if ref else 0))
    keys = bc.floor_keys(passes)
    times: dict[str, list[float]] = defaultdict(list)
    cpu_times: dict[str, list[float]] = defaultdict(list)
    first: dict[str, float] = {}
    memory = bc.PeakMemory(bool(gpus))
    peaks = [0.0]

    def timed(key: str, fn) -> None:
        if key == "method":
            memory.start()
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if key == "method":
            peaks.append(memory.peak())
        if key not in first:
            first[key] = wall
        else:
            times[key].append(wall)
            cpu_times[key].append(cpu)

    x_ref = x_all[:size]
    runners = bc.floor_runners(model, ref.layer if ref else None, keys, x_ref)
    floors = {f"floor {bc.floor_name(key, ref and ref.path)}": fn for key, fn in runners.items()}
    for key, fn in [*floors.items(), *floors.items()]:  # the first (tracing) call, then one timed call
        timed(key, fn)
    per_sample = {key: statistics.median(times[name]) / len(x_ref) for key, name in zip(runners, floors, strict=True)}
    n = bc.sample_count(bc.floor_seconds(passes, per_sample, 1), job["budget_s"], len(x_all))
    x = x_all[:n]
    forward_fn = tf.function(lambda v: model(v, training=False), autograph=False)
    calls = {
        "predict": lambda: model.predict(x, batch_size=size, verbose=0),
        "forward": lambda: [keras.ops.convert_to_numpy(forward_fn(tf.constant(x[i : i + size])))
                            for i in range(0, n, size)],
        **floors,
        "method": lambda: camkit.explain(model, x, method=job["method"], batch_size=size, progress=False,
                                         **options),
    }
    if n == len(x_ref):  # the same pass over the same batch: one measurement serves both
        del calls["forward"]
        for values in (times, cpu_times, first):
            values["forward"] = values["floor forward"]
    for key in ("predict", "forward", "method"):
        if key in calls:
            timed(key, calls[key])
    method_times = times["method"]
    # interleaved, so that all see the same load; the references pool over the workers of an architecture
    while len(method_times) < job["repeats"] or (sum(method_times) < MIN_SECONDS and len(method_times) < 50):
        if method_times and sum(method_times) >= job["max_seconds"]:
            break
        for key, fn in calls.items():
            if key == "method" or sum(times[key]) < REF_SECONDS:
                timed(key, fn)
    median = {key: statistics.median(values) for key, values in times.items()}
    return {
        "model": job["model"], "arch": arch, "arch_reason": reason, "method": job["method"],
        "options": job["options"], "label": bc.label(job["method"], job["options"]),
        "layer": ref.path if ref else None, "passes": passes, "samples": n, "available": len(x_all),
        "floor_batch": len(x_ref), "batch_size": size, "input_shape": list(x.shape[1:]),
        "times_s": times, "cpu_times_s": cpu_times, "median_s": median, "first_call_s": first,
        "maps_per_s": n / median["method"],
        "paired_x_predict": median["method"] / median["predict"],
        "paired_x_floor": median["method"] / bc.floor_seconds(passes, per_sample, n),
        "peak_memory_mib": max(peaks), "memory_kind": memory.kind,
        "tensorflow": tf.__version__, "keras": keras.__version__, "gpu": _gpu_name(tf, gpus),
    }


def _gpu_name(tf, gpus) -> str | None:
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name)


def method_info() -> dict[str, dict]:
    """name -> metadata the parent needs (task, input kinds, model builder, constructor options)."""
    import inspect

    from camkit.methods import method_class, methods

    info = {}
    for name in methods():
        cls = method_class(name)
        params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        info[name] = {"task": cls.task, "kinds": list(cls.input_kinds), "requires_model": cls.requires_model,
                      "options": params + (list(EXPLAIN_OPTIONS) if cls.uses_layer else [])}
    return info


# --------------------------------------------------------------------------- parent


class WorkerFailed(Exception):
    """A worker exited with an error; its message is the last line of the worker's stderr."""


def run_worker(args: list[str]) -> str:
    """Run this script with ``args`` in a subprocess; its stdout (stderr shown on failure)."""
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
        raise WorkerFailed(lines[-1][:200])
    return proc.stdout


def unfit(meta: dict, model: str) -> str | None:
    """Why a method is not timed on ``model`` (None: it is)."""
    if meta["task"] != "classify":
        own = REPO / "scripts" / f"bench_{meta['task']}.py"
        return f"explains a {meta['task']} task" + (f" (scripts/{own.name})" if own.exists() else "")
    if MODELS[model][0] not in meta["kinds"]:
        return f"takes {' and '.join(meta['kinds'])} only"
    return None


def plan(args: argparse.Namespace, info: dict[str, dict]) -> tuple[list[dict], list[str]]:
    """The jobs to measure, and a note per (method, model) left out."""
    variants = [bc.parse_variant(v) for v in (VARIANTS if args.variants is None else args.variants)]
    rows = [(m, []) for m in args.methods] + [(m, o) for m, o in variants if args.variants is not None or
                                              m in args.methods]
    unknown = sorted({m for m, _ in rows} - set(info))
    if unknown:
        raise SystemExit(f"--methods/--variants: unknown {', '.join(unknown)}; choose from {', '.join(info)}")
    keys = {bc.option_key(pair): pair for pair in args.option}
    taken = {key for m, _ in rows for key in keys if key in info[m]["options"]}
    if set(keys) - taken:
        raise SystemExit(f"-o: no selected method takes {', '.join(sorted(set(keys) - taken))}")
    jobs, skipped = [], []
    for model in args.models:
        for method, options in rows:
            why = unfit(info[method], model)
            if why:
                skipped.append(f"{method} on {model}: {why}")
                continue
            own = {bc.option_key(pair) for pair in options}
            mine = [pair for key, pair in keys.items() if key in info[method]["options"] and key not in own]
            jobs.append({"model": model, "method": method, "options": mine + options, "repeats": args.repeats,
                         "batch_size": args.batch_size, "budget_s": args.budget, "max_seconds": args.max_seconds,
                         "fcn_model": args.fcn_model})
    return jobs, list(dict.fromkeys(skipped))


def measure_quietest(job: dict, args: argparse.Namespace) -> dict:
    """:func:`measure`, repeated up to ``--retries`` times while other processes were busy; the quietest run.

    A worker that fails gives ``{"failed": message}``: the run goes on, and the table says so.
    """
    runs: list[dict] = []
    for attempt in range(args.retries + 1):
        if args.wait_quiet:
            bc.wait_quiet(args.wait_quiet)
        try:
            runs.append(measure(job))
        except WorkerFailed as error:
            print(f"{job['model']} {bc.label(job['method'], job['options'])}: failed: {error}", flush=True)
            return {"failed": str(error)}
        if (runs[-1]["other_cpu_cores"] or 0) <= bc.NOISY:
            break
        if attempt < args.retries:
            print("  (noisy: measuring again)", flush=True)
    return min(runs, key=lambda r: r["other_cpu_cores"] or 0)


def measure(job: dict) -> dict:
    """One job in a fresh process, with the CPU that other processes used meanwhile."""
    load_before, busy_before, own_before = os.getloadavg()[0], bc.busy_cpu_s(), bc.own_cpu_s()
    start = time.perf_counter()
    lines = [line for line in run_worker(["--worker", json.dumps(job)]).splitlines() if line.startswith(RESULT)]
    wall = time.perf_counter() - start
    busy_after = bc.busy_cpu_s()
    if not lines:
        raise WorkerFailed("the worker printed no result")
    r = json.loads(lines[-1][len(RESULT) :])
    r.update(load_avg_1min=[load_before, os.getloadavg()[0]], wall_s=wall, cpu_cores=os.cpu_count())
    r["other_cpu_cores"] = (None if busy_before is None or busy_after is None
                            else max(0.0, (busy_after - busy_before) - (bc.own_cpu_s() - own_before)) / wall)
    others = r["other_cpu_cores"]
    print(f"{r['arch']:9} {r['label']:24} {r['samples']:4} in  {r['median_s']['method']:7.3f} s  "
          f"x{r['paired_x_predict']:.2f} predict  x{r['paired_x_floor']:.2f} floor  "
          f"first {r['first_call_s']['method']:.2f} s  {r['peak_memory_mib']:.0f} MiB  ({wall:.0f} s; other "
          f"processes {'?' if others is None else f'{others:.2f}'} cores)", flush=True)
    return r


def perturbation(args: argparse.Namespace) -> None:
    """The hook for ``scripts/bench_perturbation.py`` (Score-CAM and Ablation-CAM against their floors, and
    tf-keras-vis): run as a script when present, with ``--readme`` and ``--json`` passed on."""
    run = args.perturbation if args.perturbation is not None else (not args.methods_given and "vgg16" in args.models)
    if not run or args.from_json:
        return
    if not PERTURBATION.exists():
        print(f"({PERTURBATION.name} is not there: skipped)")
        return
    cmd = [sys.executable, str(PERTURBATION), *(["--readme"] if args.readme else [])]
    if args.json:
        cmd += ["--json", str(args.json.with_name(f"{args.json.stem}_perturbation.json"))]
    if subprocess.run(cmd, cwd=REPO).returncode:
        print(f"{PERTURBATION.name} failed; the bench_explain table is written", file=sys.stderr)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    add("--methods", nargs="+", help="names, space or comma separated (default: every classifier method)")
    add("--variants", nargs="*", metavar="METHOD:KEY=VALUE,...",
        help=f"more rows with method options (default: {' '.join(VARIANTS)}, those of the selected methods)")
    add("-o", "--option", dest="option", action="append", default=[], metavar="KEY=VALUE",
        help="a method option for every selected method that takes it (YAML values, as camkit explain -o)")
    add("--repeats", type=int, default=3)
    add("--batch-size", type=int, default=32)
    add("--budget", type=float, default=4.0, metavar="S",
        help="inputs per method: as many as its floor fits in S seconds (0: all)")
    add("--max-seconds", type=float, default=20.0, metavar="S", help="stop repeating a method after S s of calls")
    add("--fcn-model", help="a trained FCN (.keras) to explain instead of random weights")
    add("--wait-quiet", type=float, default=0, metavar="S",
        help=f"before each measurement, wait up to S s for other processes to use < {bc.NOISY} cores")
    add("--retries", type=int, default=0,
        help="measure again, up to this many times, when other processes were busy; keep the quietest")
    add("--json", type=Path, help="write every measurement to this JSON file")
    add("--readme", action="store_true", help="write the table into README.md")
    add("--from-json", type=Path, metavar="PATH",
        help="measure nothing: print (and with --readme write) the table of a run saved with --json")
    add("--perturbation", action=argparse.BooleanOptionalAction, default=None,
        help="run scripts/bench_perturbation.py afterwards (default: after a full run with vgg16)")
    add("--worker", help=argparse.SUPPRESS)
    add("--list-methods", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1 or args.batch_size < 1 or args.retries < 0:
        parser.error("--repeats and --batch-size must be positive, --retries not negative")
    args.methods_given = bool(args.methods)
    args.methods = [m for item in args.methods or [] for m in item.split(",") if m]
    if args.fcn_model:
        args.fcn_model = str(Path(args.fcn_model).resolve())  # workers run in the repository root
    try:
        for pair in args.option:
            bc.option_key(pair)
        for variant in args.variants or ():
            bc.parse_variant(variant)
    except ValueError as error:
        parser.error(str(error))
    return args


def main() -> None:
    args = parse_args()
    if args.list_methods:
        print(json.dumps(method_info()))
        return
    if args.worker:
        print(RESULT + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    start = time.perf_counter()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        results, device, skipped, settings = saved["results"], saved["device"], saved["skipped"], saved["settings"]
    else:
        info = json.loads(run_worker(["--list-methods"]))  # TensorFlow stays out of this process
        args.methods = args.methods or list(info)
        jobs, skipped = plan(args, info)
        results = []
        for job in jobs:
            result = measure_quietest(job, args)
            if "failed" in result:
                skipped.append(f"{bc.label(job['method'], job['options'])} on {job['model']}: {result['failed']}")
            else:
                results.append(result)
        if not results:
            raise SystemExit("no measurement succeeded")
        settings = {key: getattr(args, key) for key in report.DEFAULTS}
        r = results[0]
        gpu = f"GPU {r['gpu']}" if r["gpu"] else "no GPU"
        device = (f"{bc.cpu_name()}, {os.cpu_count()} cores, {gpu}; TensorFlow {r['tensorflow']}, Keras "
                  f"{r['keras']}, Python {platform.python_version()}")
    refs = report.references(results)
    text = report.table(results, refs, settings, device, skipped)
    print(f"\n{text}\n({time.perf_counter() - start:.0f} s)")
    if args.json and not args.from_json:
        from camkit.io import atomic_write_json

        atomic_write_json(args.json, {"device": device, "settings": settings, "skipped": skipped,
                                      "references": refs, "results": results})
    if args.readme:
        from camkit.io import replace_marked_block

        replace_marked_block(REPO / "README.md", "bench_explain", text)
    perturbation(args)


if __name__ == "__main__":
    main()
