"""Augmented Grad-CAM: Grad-CAMs of warped copies, aggregated by max, mean or super-resolution.

Morbidelli, Carrera, Rossi, Fragneto, Boracchi, "Augmented Grad-CAM: Heat-Maps Super Resolution Through
Augmentation", ICASSP 2020. Copy ``l`` of an image is warped by ``T_l R_l`` (rotation about the centre, then a
shift; copy 0 is the image itself, ``warps.py``); ``g_l`` is the Grad-CAM of copy ``l`` for the class chosen on
copy 0 (the unaugmented image: top classes come from it), at the layer's resolution, unnormalised. Aggregations:

- ``single``: ``g_0`` upsampled, i.e. plain Grad-CAM;
- ``max`` / ``avg``: each ``g_l`` upsampled, the shift then the rotation undone, pixelwise max / mean;
- ``sr``: the minimiser ``h`` of ``Σ_l ‖D(T_l R_l h) − ĝ_l‖² + λ_TV·TV(h) + λ_E·‖h‖²`` (``superres.py``: an
  accelerated primal-dual solver that stops on a relative duality gap ``tol``).

Every map is then ReLU'd and divided by its max, as Grad-CAM's maps. The warps are drawn once from ``seed`` for
the input size and shared by every image, so an image's maps do not depend on its batch, its position in a
dataset or a ``--shard``. The copies go through the same compiled gradient step as Grad-CAM, in batches of the
step's size; only their ``(h, w)`` Grad-CAMs are kept, so memory grows with the batch, not with ``n_augment``.

``explain(..., method="augmented-gradcam", aggregate="sr")``: ``maps`` is the requested aggregation (a list: the
first of them; ``"all"``: sr); ``variants`` holds every computed one (in the order single, max, avg, sr), and
``stats``, with ``sr``, the solver's ``sr_iterations``, ``sr_objective`` and ``sr_gap``; ``raw`` is
(N, n_augment, h, w), the copies' Grad-CAMs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from camkit.errors import CamkitError
from camkit.methods.base import ChunkResult, Passes, register_method, run_step
from camkit.methods.gradcam import GradCAM
from camkit.methods.mapmath import normalise, pad_batch, upsample
from camkit.methods.superres import SuperResult, solve_superres
from camkit.methods.superres import aggregate as unwarp_aggregate
from camkit.methods.warps import ANGLE_RANGE, SHIFT_RANGE, Warps, sample_warps, warp_each

AGGREGATIONS = ("single", "max", "avg", "sr")


def parse_aggregate(aggregate: str | Sequence[str]) -> tuple[str, ...]:
    """``"sr"``, ``"all"`` (sr first), ``"max,avg"`` or a list -> the aggregation names, the primary one first."""
    names = aggregate.split(",") if isinstance(aggregate, str) else list(aggregate)
    names = [n.strip().lower() for n in names if n.strip()]
    if names == ["all"]:
        return ("sr", *AGGREGATIONS[:-1])
    bad = [n for n in names if n not in AGGREGATIONS]
    if bad or not names:
        raise CamkitError(f"aggregate: choose from {', '.join(AGGREGATIONS)} or all, not {aggregate!r}")
    return tuple(dict.fromkeys(names))


@register_method("augmented-gradcam")
class AugmentedGradCAM(GradCAM):
    """Grad-CAM of ``n_augment`` warped copies, aggregated (see the module docstring)."""

    title = "Augmented Grad-CAM"
    variants: ClassVar[dict[str, str]] = {"single": "single Grad-CAM", "max": "max", "avg": "avg",
                                          "sr": "super-resolution"}
    all_variants: ClassVar[dict[str, Any]] = {"aggregate": "all"}
    input_kinds = ("images",)
    streams = True
    default_columns = "top1,true"
    quick_options: ClassVar[dict[str, Any]] = {"n_augment": 3, "tol": 1e-2}
    smooths = ()  # its copies are its own augmentation

    def __init__(
        self,
        n_augment: int = 100,
        angle_range: float = ANGLE_RANGE,
        shift_range: float = SHIFT_RANGE,
        seed: int = 0,
        aggregate: str | Sequence[str] = "sr",
        tol: float = 1e-4,
        max_iter: int = 10000,
        lambda_tv: float | None = None,
        lambda_e: float | None = None,
    ) -> None:
        if isinstance(n_augment, bool) or not isinstance(n_augment, (int, np.integer)) or n_augment < 1:
            raise CamkitError(f"n_augment: expected a positive integer, got {n_augment!r}")
        if angle_range < 0 or not 0 <= shift_range < 1:
            raise CamkitError("angle_range must be >= 0 radians and shift_range a fraction of the size in [0, 1)")
        self.n_augment = int(n_augment)
        self.angle_range = float(angle_range)
        self.shift_range = float(shift_range)
        self.seed = int(seed)
        self.aggregations = parse_aggregate(aggregate)
        self.solver = {"tol": tol, "max_iter": max_iter, "lambda_tv": lambda_tv, "lambda_e": lambda_e}

    def map_passes(self, channels: int) -> Passes:
        """One gradient pass per copy (copy 0 is the image itself)."""
        return Passes(self.n_augment, self.n_augment)

    def warps(self, size: tuple[int, int]) -> Warps:
        """The ``n_augment`` warps for ``size`` (H, W) images, copy 0 the identity; the same for every call."""
        return sample_warps(self.n_augment, size, self.angle_range, self.shift_range, self.seed)

    def copy_maps(self, step: Any, x: tf.Tensor, targets: tf.Tensor, warps: Warps) -> tf.Tensor:
        """(n, L − 1, h, w) Grad-CAMs of copies 1.. of the n images, for ``targets``, in step-sized batches."""
        n, size, n_copies = int(targets.shape[0]), int(x.shape[0]), len(warps) - 1
        image = np.repeat(np.arange(n), n_copies)  # image-major: copy j of image i at i·(L − 1) + j
        warp_index = np.tile(np.arange(1, n_copies + 1), n)
        classes = np.repeat(np.asarray(targets, np.int32), n_copies)
        maps = []
        for start in range(0, len(image), size):
            part = slice(start, start + size)
            copies = warp_each(tf.gather(x, image[part]), warps[warp_index[part]])
            m = len(image[part])
            spec = np.zeros(size, np.int32)
            spec[:m] = classes[part]
            maps.append(self.raw_maps(run_step(step, pad_batch(copies, size), spec, m)))
        low = tf.concat(maps, 0)
        return tf.reshape(low, (n, n_copies, *low.shape[1:]))

    def solve(self, low: tf.Tensor, warps: Warps, size: tuple[int, int]) -> SuperResult:
        """The super-resolution solve: the whole chunk at once on a GPU, one image at a time on a CPU.

        The results are the same (a stopped image is frozen while the batch goes on); on a CPU the batched
        sparse products cost about twice as much per image (``scripts/bench_augmented.py``).
        """
        if tf.config.list_logical_devices("GPU"):
            return solve_superres(low, warps, size, **self.solver)
        parts = [solve_superres(low[i : i + 1], warps, size, **self.solver) for i in range(int(low.shape[0]))]
        return SuperResult(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                             ("maps", "iterations", "objective", "gap", "converged")))

    def explain_chunk(self, step: Any, x: tf.Tensor, spec: np.ndarray, n: int) -> ChunkResult:
        size = tuple(int(d) for d in x.shape[1:-1])
        if len(size) != 2:
            raise CamkitError("augmented-gradcam warps images: it needs (N, H, W, C) inputs, not time series")
        warps = self.warps(size)
        first = run_step(step, x, spec, n)  # copy 0: the image itself gives the targets
        low = self.raw_maps(first)[:, None]
        if len(warps) > 1:
            low = tf.concat([low, self.copy_maps(step, x, first.targets, warps)], 1)
        maps: dict[str, tf.Tensor] = {}
        stats: dict[str, np.ndarray] = {}
        for name in self.aggregations:
            if name == "single":
                maps[name] = upsample(low[:, 0], size)
            elif name in ("max", "avg"):
                maps[name] = unwarp_aggregate(low, warps, size, how=name)
            else:
                result = self.solve(low, warps, size)
                maps[name] = result.maps
                stats.update(sr_iterations=result.iterations, sr_objective=result.objective, sr_gap=result.gap)
        variants = {name: np.asarray(normalise(tf.nn.relu(tf.cast(maps[name], tf.float32)), signed=False))
                    for name in self.variants if name in maps}
        return ChunkResult(variants[self.aggregations[0]], np.asarray(low, np.float32),
                           np.asarray(first.targets, np.int64), np.asarray(first.scores, np.float32),
                           variants=variants, stats=stats)
