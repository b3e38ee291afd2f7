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
(or with ``--perturbation``): its ``measure(repeats=--repeats)`` in a worker, its ``table(result)`` printed, saved
in the JSON and written to the ``<!-- bench_perturbation -->`` block.

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
import sys
import time
from collections import defaultdict
from pathlib import Path

import bench_common as bc
import bench_explain_table as report

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
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
    runners = bc.floor_runners(model, ref, keys, x_ref)
    floors = {f"floor {bc.floor_name(key, ref and ref.path)}": fn for key, fn in runners.items()}
    for key, fn in [*floors.items(), *floors.items()]:  # the first (tracing) call, then one timed call
        timed(key, fn)
    per_sample = {key: statistics.median(times[name]) / len(x_ref) for key, name in zip(runners, floors, strict=True)}
    n = bc.sample_count(bc.floor_seconds(passes, per_sample, 1), job["budget_s"], len(x_all))
    x = x_all[:n]
    forward_fn = tf.function(lambda v: model(v, training=False), autograph=False)

    def forward() -> None:  # every output comes back, as from predict
        for i in range(0, n, size):
            keras.tree.map_structure(keras.ops.convert_to_numpy, forward_fn(tf.constant(x[i : i + size])))

    calls = {
        "predict": lambda: model.predict(x, batch_size=size, verbose=0),
        "forward": forward,
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


def run_worker(args: list[str]) -> dict:
    """This script with ``args`` in a subprocess: its result."""
    return bc.worker_result(Path(__file__), args)


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
    """:func:`measure`, again up to ``--retries`` times while other processes were busy; the quietest run.

    A worker that fails gives ``{"failed": message}``: the run goes on, and the table says so.
    """
    try:
        return bc.quietest(lambda: measure(job), args.retries, args.wait_quiet)
    except bc.WorkerFailed as error:
        print(f"{job['model']} {bc.label(job['method'], job['options'])}: failed: {error}", flush=True)
        return {"failed": str(error)}


def measure(job: dict) -> dict:
    """One job in a fresh process, with the CPU that other processes used meanwhile."""
    r = bc.measured(Path(__file__), ["--worker", json.dumps(job)])
    others = r["other_cpu_cores"]
    print(f"{r['arch']:9} {r['label']:24} {r['samples']:4} in  {r['median_s']['method']:7.3f} s  "
          f"x{r['paired_x_predict']:.2f} predict  x{r['paired_x_floor']:.2f} floor  "
          f"first {r['first_call_s']['method']:.2f} s  {r['peak_memory_mib']:.0f} MiB  ({r['wall_s']:.0f} s; other "
          f"processes {'?' if others is None else f'{others:.2f}'} cores)", flush=True)
    return r


def perturbation(args: argparse.Namespace) -> dict | None:
    """The hook for ``scripts/bench_perturbation.py`` (Score-CAM and Ablation-CAM against their floors and
    tf-keras-vis): when present, its ``measure(repeats=...)`` in a worker; the result, for its ``table``."""
    run = args.perturbation if args.perturbation is not None else (not args.methods_given and "vgg16" in args.models)
    if not run:
        return None
    if not PERTURBATION.exists():
        print(f"({PERTURBATION.name} is not there: skipped)")
        return None
    try:
        return run_worker(["--perturbation-worker", str(args.repeats)])
    except bc.WorkerFailed as error:
        print(f"{PERTURBATION.name} failed: {error}", flush=True)
        return None


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
    add("--perturbation-worker", type=int, metavar="REPEATS", help=argparse.SUPPRESS)
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
        print(bc.RESULT + json.dumps(method_info()))
        return
    if args.worker:
        print(bc.RESULT + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    if args.perturbation_worker:
        import bench_perturbation

        result = bench_perturbation.measure(repeats=args.perturbation_worker, log=lambda s: print(s, file=sys.stderr))
        print(bc.RESULT + json.dumps(result), flush=True)
        return
    start = time.perf_counter()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        results, device, skipped, settings = saved["results"], saved["device"], saved["skipped"], saved["settings"]
        perturbed = saved.get("perturbation")
    else:
        info = run_worker(["--list-methods"])  # TensorFlow stays out of this process
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
        perturbed = perturbation(args)
    refs = report.references(results)
    text = report.table(results, refs, settings, device, skipped)
    blocks = {"bench_explain": text}
    if perturbed:
        import bench_perturbation

        blocks["bench_perturbation"] = bench_perturbation.table(perturbed)
    print("\n" + "\n".join(blocks.values()) + f"\n({time.perf_counter() - start:.0f} s)")
    if args.json and not args.from_json:
        from camkit.io import atomic_write_json

        atomic_write_json(args.json, {"device": device, "settings": settings, "skipped": skipped,
                                      "references": refs, "results": results, "perturbation": perturbed})
    if args.readme:
        from camkit.io import replace_marked_block

        for name, block in blocks.items():
            replace_marked_block(REPO / "README.md", name, block)


if __name__ == "__main__":
    main()
