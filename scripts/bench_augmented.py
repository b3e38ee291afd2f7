"""Augmented Grad-CAM cost per image: the Grad-CAM passes over the warped copies vs the super-resolution solve.

For each model, ``--images`` cluttered-digit test images (resized bilinearly to the model's input) are explained
with ``augmented-gradcam``, ``n_augment`` copies (default 100, the paper's):

- passes: one ``camkit.explain(..., aggregate="single")`` call over the batch (every copy's Grad-CAM through the
  compiled step, batch size ``--batch-size``), after a first call that traces the step;
- solve: :func:`camkit.methods.superres.solve_superres` on those copies' maps, the whole batch at once (as a
  folder run does; the batch stops when its slowest image does) and one image at a time (median), after
  solves that trace the solver for both shapes; iterations and relative duality gap at the stop;
- share: solve / (passes + solve), batched solve; the goal is at most 1/5.

Models: ``vgg16`` (224×224, ``block5_conv3`` 14×14, random weights: nothing downloads; the iteration count depends
on the maps, so a trained network can differ) and ``digits`` (the small GAP CNN of
``configs/cluttered_digits_cnn.yaml``, 64×64, ``features`` 8×8; trained weights from ``--digits-model`` when the
file exists, else random). Prints a Markdown table; ``--readme`` replaces the ``bench_augmented`` block of
README.md; ``--json PATH`` saves the measurements.

    .venv/bin/python scripts/bench_augmented.py --readme
    .venv/bin/python scripts/bench_augmented.py --models digits --images 8 --n-augment 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
GOAL = 0.2


def load(name: str, digits_model: Path):
    """(model, input size, description)."""
    import keras

    import camkit

    if name == "vgg16":
        keras.utils.set_random_seed(0)
        return camkit.build_model("vgg16", (224, 224, 3), 1000), 224, "VGG16 224², block5_conv3 14×14, random weights"
    if digits_model.is_file():
        return camkit.load_model(digits_model, compile=False), 64, "small GAP CNN 64², features 8×8, trained"
    keras.utils.set_random_seed(0)
    return camkit.build_model("small-gap-cnn", (64, 64, 3), 10), 64, "small GAP CNN 64², features 8×8, random weights"


def images(n: int, size: int):
    import numpy as np

    from camkit.data.images import load_image, load_images

    folder = load_images(REPO / "data" / "cluttered_digits" / "test")
    step = max(1, len(folder.files) // n)
    return np.concatenate([load_image(p, size) for p in folder.files[::step][:n]])


def measure(name: str, args: argparse.Namespace) -> dict:
    import numpy as np

    import camkit
    from camkit.methods.superres import solve_superres
    from camkit.methods.warps import sample_warps

    model, size, what = load(name, args.digits_model)
    x = images(args.images, size)
    options = {"n_augment": args.n_augment, "aggregate": "single"}
    camkit.explain(model, x[:1], method="augmented-gradcam", batch_size=args.batch_size, **options)  # trace
    start = time.perf_counter()
    exp = camkit.explain(model, x, method="augmented-gradcam", batch_size=args.batch_size, **options)
    passes = (time.perf_counter() - start) / len(x)
    warps = sample_warps(args.n_augment, (size, size), seed=0)
    for traced in (exp.raw[:1], exp.raw):  # trace the solver for both batch shapes
        solve_superres(traced, warps, (size, size))
    start = time.perf_counter()
    batched = solve_superres(exp.raw, warps, (size, size))
    solve = (time.perf_counter() - start) / len(x)
    alone = []
    for i in range(len(x)):
        start = time.perf_counter()
        solve_superres(exp.raw[i : i + 1], warps, (size, size))
        alone.append(time.perf_counter() - start)
    return {
        "model": name, "what": what, "images": len(x), "n_augment": args.n_augment, "batch_size": args.batch_size,
        "passes_s": passes, "solve_batch_s": solve, "solve_alone_s": statistics.median(alone),
        "iterations": [int(i) for i in batched.iterations], "gap_max": float(np.max(batched.gap)),
        "share": solve / (passes + solve),
    }


def device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return f"GPU {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}"
    name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.processor() or "CPU")
    return f"{name}, {os.cpu_count()} cores, no GPU"


def table(results: list[dict], where: str) -> str:
    import keras
    import tensorflow as tf

    lines = [
        f"{where}; TensorFlow {tf.__version__}, Keras {keras.__version__}. `python scripts/bench_augmented.py`: "
        f"{results[0]['images']} cluttered-digit test images per model, {results[0]['n_augment']} augmentations, "
        f"batch size {results[0]['batch_size']}, solver tolerance 1e-4 (relative duality gap).",
        "",
        "| model | Grad-CAM passes s/image | solve s/image (batch) | solve s/image (alone) | iterations | "
        "solve share | ≤ 1/5 |",
        "|---|---:|---:|---:|---|---:|:---:|",
    ]
    for r in results:
        its = f"{min(r['iterations'])}–{max(r['iterations'])}"
        lines.append(f"| {r['what']} | {r['passes_s']:.3f} | {r['solve_batch_s']:.3f} | {r['solve_alone_s']:.3f} | "
                     f"{its} | {r['share']:.1%} | {'yes' if r['share'] <= GOAL else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="vgg16,digits", help="comma list of vgg16, digits")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--n-augment", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--digits-model", type=Path, default=REPO / "models" / "cluttered_digits_cnn" / "best.keras")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    results = [measure(name.strip(), args) for name in args.models.split(",")]
    text = table(results, device())
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.readme:
        from camkit.io import replace_marked_block

        replace_marked_block(REPO / "README.md", "bench_augmented", text)


if __name__ == "__main__":
    main()
