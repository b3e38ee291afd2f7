"""Augmented Grad-CAM aggregation: max / avg of the unwarped maps, and the super-resolution solve.

Morbidelli, Carrera, Rossi, Fragneto, Boracchi, "Augmented Grad-CAM: Heat-Maps Super Resolution Through
Augmentation", ICASSP 2020. An image is explained ``L`` times, copy ``l`` warped by ``T_l R_l`` (rotation about
the centre, then a shift; ``warps.py``), giving low-resolution maps ``g_l`` on the CAM grid (h, w) (VGG16
``block5_conv3``: 14×14). Two aggregations:

- **max / avg** (:func:`aggregate`): upsample each ``g_l`` to the input size (``tf.image.resize``, bilinear), undo
  the shift then the rotation (:func:`~camkit.methods.warps.unwarp`), take the pixelwise max / mean.
- **super-resolution** (:func:`solve_superres`): with ``ĝ_l = g_l / max(g_l)`` (a map with no positive value
  becomes 0: no NaN) find the map ``h`` at the input size (H, W) that minimises

      F(h) = Σ_l ‖A_l h − ĝ_l‖² + λ_TV · TV(h) + λ_E · ‖h‖²,    A_l h = D(T_l R_l h),

  ``TV(h) = ‖∇_y h‖₁ + ‖∇_x h‖₁`` (anisotropic, forward differences, zero past the last row / column),
  ``λ_TV = 0.002·L``, ``λ_E = 0.0001·L`` by default, ``D`` = ``tf.image.resize(·, (h, w), "bilinear",
  antialias=False)``: Keras 3 / TF2 half-pixel centres, the same operator the engine uses to upsample maps
  (``base.py``), so forward model, upsampling and ``D`` share one convention.

The forward operator (:class:`WarpDownsample`). ``A_l`` is linear in ``h`` (bilinear warp, zero fill, then a
bilinear resize), so it is assembled once as a sparse matrix: ``D`` is separable, ``D = R_y ⊗ R_x``, and the 1-D
factors are read off ``tf.image.resize`` itself (applied to an identity); the warp rows are TF's bilinear
``ImageProjectiveTransformV3`` weights (same matrices as ``warps.warp``); ``A_l = D · W_l`` keeps ≤ 16 entries per
low-resolution pixel (D reads 2×2 pixels, each warped pixel reads 2×2 inputs). A batch of B images is one
block-diagonal ``tf.SparseTensor``; ``Aᵀ`` is its transpose, the exact adjoint of the same matrix (tests check
``⟨A x, y⟩ = ⟨x, Aᵀ y⟩`` and that ``Aᵀ y`` equals the GradientTape VJP of ``A``). Why not autodiff straight
through ``ImageProjectiveTransformV3``: TF registers the INVERSE warp as that op's gradient, which is not the
adjoint of a bilinear warp (⟨Ax, y⟩ and ⟨x, "Aᵀ"y⟩ differ by a few %), so a solver built on it would not solve
this problem. The sparse form is also fast: one SpMV of ~1.6·10⁵ entries per image for 224², L = 100, 14×14.

The solver. ``F`` is convex, non-smooth (TV), and strongly convex only through the small ``λ_E`` term. It is
solved with the primal-dual hybrid gradient method of Chambolle & Pock (2011), in its accelerated form
(their Algorithm 2, O(1/N²), which uses the 2λ_E-strong convexity of ``λ_E‖h‖²``), with
``K = [A_1; …; A_L; ∇_y; ∇_x]``:

- data duals ``y_l``: prox of the conjugate of ``‖· − ĝ‖²``: ``y ← (y + σ(A h̄ − ĝ)) / (1 + σ/2)``;
- TV duals ``p``: projection on ``[−λ_TV, λ_TV]``;
- primal: ``h ← (h − τ Kᵀy) / (1 + 2τλ_E)``; then ``θ = 1/√(1 + 4λ_E τ)``, ``τ ← θτ``, ``σ ← σ/θ``,
  ``h̄ = h + θ(h − h_prev)``.

Steps start at ``τ = σ = 1/L_K`` per image with the rigorous bound ``‖K‖² ≤ ‖A‖₁‖A‖_∞ + 8`` (Schur test for A,
8 for ∇). Accelerated PDHG was chosen over fixed-step PDHG (whose speed depends ~3× on the τ/σ ratio, with a
different best ratio for 32² and 224² problems), over Goldstein's residual balancing (same issue through its
scale parameter) — both measured — and, without trying it, over FISTA with an inner TV-prox loop (inexact inner
solves with their own tolerance); it needs no tuning and all its steps are TF ops on a whole batch
(block-diagonal ``A``, per-image step sizes), so it runs on a GPU too.

Stopping rule: every ``check_every`` iterations the duality gap ``F(h) − F_dual(y)`` is computed with
``F_dual(y) = −⟨y_data, ĝ⟩ − ‖y_data‖²/4 − ‖Kᵀy‖²/(4λ_E)``; an image stops when
``gap ≤ tol · F(h)`` (default ``tol = 1e-4``). The gap bounds the suboptimality, so this certifies
``F(h) − min F ≤ tol · F(h)``: unlike "the iterates stopped moving", which small steps can fake. Stopped images
are frozen while the rest of the batch goes on, so an image's result is the same alone or in a batch. In float32
the gap is accurate to ~1e-6 relative: a ``tol`` below that is not reachable. ``λ_E`` must be > 0 (it makes
the dual bounded and the problem strongly convex).

Difference from the original: it runs 200 Adam steps (lr 1e-3) from ``h = 0``. Adam moves each pixel by at most
~lr per step, so after 200 steps ``h`` is at most ~0.2 while the maps it should explain are normalised to max 1:
that is far from the minimiser (the tests show a higher objective and a larger error against a known ``h*``).
:func:`adam_baseline` reproduces it for comparison only. The original ran on TF1, whose resize convention
differs (corner-aligned); camkit uses the half-pixel one throughout (see above).

Typical cost (224², L = 100, 14×14, ``tol = 1e-4``, 2-core CPU shared with other jobs): 2–3·10³ iterations,
~2 s for one image, ~16 s for a batch of 4 (the iteration count is the largest of the batch). The operator is
built in NumPy/SciPy (~0.04 s per image); the iterations are TF ops, so the same code runs on a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from camkit.methods.superres_operator import WarpDownsample, resize_matrix
from camkit.methods.warps import Warps, unwarp

__all__ = [
    "SuperResult",
    "WarpDownsample",
    "adam_baseline",
    "aggregate",
    "default_lambdas",
    "normalise_maps",
    "objective",
    "resize_matrix",
    "solve_superres",
    "upsample_unwarp",
]


@dataclass(frozen=True, eq=False)
class SuperResult:
    """The solution for B images.

    maps: float32 (B, H, W), the minimiser ``h`` (in the units of the normalised maps ĝ, max ≈ 1; not clipped or
    renormalised). iterations: int32 (B,). objective: float32 (B,), ``F(h)``. gap: float32 (B,), the relative
    duality gap ``(F(h) − F_dual(y)) / F(h)`` at the stop (NaN for :func:`adam_baseline`). converged: bool (B,),
    ``gap ≤ tol``.
    """

    maps: np.ndarray
    iterations: np.ndarray
    objective: np.ndarray
    gap: np.ndarray
    converged: np.ndarray




# ------------------------------------------------------------------------------------------ objective pieces


def _grad(h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Forward differences of (B, H, W), zero on the last row / column."""
    gy = tf.concat([h[:, 1:] - h[:, :-1], tf.zeros_like(h[:, :1])], 1)
    gx = tf.concat([h[:, :, 1:] - h[:, :, :-1], tf.zeros_like(h[:, :, :1])], 2)
    return gy, gx


def _grad_adjoint(py: tf.Tensor, px: tf.Tensor) -> tf.Tensor:
    """``∇ᵀ(p_y, p_x)`` (minus the divergence), the adjoint of :func:`_grad`."""
    ty, tx = py[:, :-1], px[:, :, :-1]
    zy, zx = tf.zeros_like(py[:, :1]), tf.zeros_like(px[:, :, :1])
    return (tf.concat([zy, ty], 1) - tf.concat([ty, zy], 1)) + (tf.concat([zx, tx], 2) - tf.concat([tx, zx], 2))


def _objective(h: tf.Tensor, ah: tf.Tensor, g: tf.Tensor, lambda_tv, lambda_e) -> tf.Tensor:
    """Per image F(h), given ``A h`` (B, M) and ĝ (B, M)."""
    gy, gx = _grad(h)
    data = tf.reduce_sum(tf.square(ah - g), 1)
    tv = tf.reduce_sum(tf.abs(gy), (1, 2)) + tf.reduce_sum(tf.abs(gx), (1, 2))
    return data + lambda_tv * tv + lambda_e * tf.reduce_sum(tf.square(h), (1, 2))


def default_lambdas(n_warps: int) -> tuple[float, float]:
    """The paper's ``(λ_TV, λ_E) = (0.002·L, 0.0001·L)``."""
    return 0.002 * n_warps, 0.0001 * n_warps


def normalise_maps(low_maps) -> tf.Tensor:
    """``ĝ_l = g_l / max(g_l)`` per map (over the last two axes); a map whose max is ≤ 0 becomes all zero."""
    g = tf.convert_to_tensor(low_maps, tf.float32)
    peak = tf.reduce_max(g, axis=(-2, -1), keepdims=True)
    positive = peak > 0
    return tf.where(positive, g / tf.where(positive, peak, tf.ones_like(peak)), tf.zeros_like(g))


def _prepare(low_maps, warps, out_size, lambda_tv, lambda_e, normalise):
    g = tf.convert_to_tensor(low_maps, tf.float32)
    if g.shape.rank == 3:
        g = g[None]
    if g.shape.rank != 4:
        raise ValueError(f"low_maps must be (B, L, h, w) or (L, h, w), got shape {tuple(g.shape)}")
    batch, n_warps, low_h, low_w = (int(d) for d in g.shape)
    if normalise:
        g = normalise_maps(g)
    op = WarpDownsample(warps, out_size, (low_h, low_w), batch)
    if op.n_warps != n_warps:
        raise ValueError(f"{n_warps} maps per image but {op.n_warps} warps")
    default_tv, default_e = default_lambdas(n_warps)
    lambda_tv = default_tv if lambda_tv is None else float(lambda_tv)
    lambda_e = default_e if lambda_e is None else float(lambda_e)
    return op, tf.reshape(g, (batch, -1)), lambda_tv, lambda_e


def objective(h, low_maps, warps, lambda_tv=None, lambda_e=None, normalise: bool = True) -> tf.Tensor:
    """F(h) per image (B,), as a TF tensor. h: (B, H, W); low_maps (B, L, h, w) raw (normalised here unless
    ``normalise=False``); warps as in :func:`solve_superres`; λ defaults ``0.002·L``, ``0.0001·L``."""
    h = tf.convert_to_tensor(h, tf.float32)
    if h.shape.rank == 2:
        h = h[None]
    op, g, lambda_tv, lambda_e = _prepare(low_maps, warps, tuple(h.shape[1:3]), lambda_tv, lambda_e, normalise)
    return _objective(h, op.flat(h), g, lambda_tv, lambda_e)


# ------------------------------------------------------------------------------------------------ the solver


@tf.function(reduce_retracing=True)
def _pdhg(a, a_t, g, h0, tau0, lambda_tv, lambda_e, tol, max_iter, check_every):
    """Accelerated Chambolle–Pock on B images; see the module docstring. Returns h, iterations, F, gap, converged."""
    batch = tf.shape(h0)[0]
    gamma = 2.0 * lambda_e  # strong convexity of λ_E‖h‖²

    def apply_a(h):
        out = tf.reshape(tf.sparse.sparse_dense_matmul(a, tf.reshape(h, (-1, 1))), tf.shape(g))
        return tf.ensure_shape(out, g.shape)

    def apply_at(y):
        out = tf.reshape(tf.sparse.sparse_dense_matmul(a_t, tf.reshape(y, (-1, 1))), tf.shape(h0))
        return tf.ensure_shape(out, h0.shape)

    def chunk(state, n_steps):
        h, h_bar, y, py, px, kty, tau, sigma = state
        for _ in tf.range(n_steps):
            s1, t3 = sigma[:, None], tau[:, None, None]
            s3 = sigma[:, None, None]
            gy, gx = _grad(h_bar)
            y = (y + s1 * (apply_a(h_bar) - g)) / (1.0 + s1 / 2.0)
            py = tf.clip_by_value(py + s3 * gy, -lambda_tv, lambda_tv)
            px = tf.clip_by_value(px + s3 * gx, -lambda_tv, lambda_tv)
            kty = apply_at(y) + _grad_adjoint(py, px)
            h_new = (h - t3 * kty) / (1.0 + 2.0 * t3 * lambda_e)
            theta = 1.0 / tf.sqrt(1.0 + 2.0 * gamma * tau)
            tau, sigma = tau * theta, sigma / theta
            h_bar = h_new + theta[:, None, None] * (h_new - h)
            h = h_new
        return h, h_bar, y, py, px, kty, tau, sigma

    zeros_y = tf.zeros_like(g)
    state = (h0, h0, zeros_y, tf.zeros_like(h0), tf.zeros_like(h0), tf.zeros_like(h0), tau0, tau0)
    iterations = tf.zeros((batch,), tf.int32)
    f_final = _objective(h0, apply_a(h0), g, lambda_tv, lambda_e)
    gap_final = tf.fill((batch,), tf.constant(np.inf, tf.float32))
    converged = tf.zeros((batch,), tf.bool)
    k = tf.constant(0, tf.int32)
    while k < max_iter and not tf.reduce_all(converged):
        n_steps = tf.minimum(check_every, max_iter - k)
        new = chunk(state, n_steps)
        h, _, y, _, _, kty, _, _ = new
        f = _objective(h, apply_a(h), g, lambda_tv, lambda_e)
        f_dual = -tf.reduce_sum(y * g, 1) - tf.reduce_sum(y * y, 1) / 4.0
        f_dual -= tf.reduce_sum(tf.square(kty), (1, 2)) / (4.0 * lambda_e)
        gap = f - f_dual
        active = tf.logical_not(converged)
        state = tuple(
            tf.where(tf.reshape(active, [-1] + [1] * (s.shape.rank - 1)), n, s) for n, s in zip(new, state, strict=True)
        )
        iterations = tf.where(active, iterations + n_steps, iterations)
        f_final = tf.where(active, f, f_final)
        gap_final = tf.where(active, gap, gap_final)
        converged = tf.logical_or(converged, tf.logical_and(active, gap <= tol * f))
        k += n_steps
    return state[0], iterations, f_final, gap_final, converged


def solve_superres(
    low_maps,
    warps: Warps | Sequence[Warps],
    out_size: tuple[int, int],
    lambda_tv: float | None = None,
    lambda_e: float | None = None,
    tol: float = 1e-4,
    max_iter: int = 10000,
    check_every: int = 50,
    normalise: bool = True,
) -> SuperResult:
    """Super-resolve B images' augmented maps at once: minimise F(h) (module docstring) per image.

    low_maps: (B, L, h, w) Grad-CAMs of the L warped copies, unnormalised (or (L, h, w): B = 1); each is
    normalised to max 1 here unless ``normalise=False``. warps: the :class:`Warps` the copies were made with,
    shared by the batch, or a sequence of B of them; drawn for ``out_size`` (H, W), the size of ``h``. λ defaults
    ``0.002·L``, ``0.0001·L``. Stops an image when its relative duality gap is ≤ ``tol`` (checked every
    ``check_every`` iterations, so iterations are multiples of it) or after ``max_iter`` iterations.
    """
    if tol < 0 or max_iter < 1 or check_every < 1:
        raise ValueError("need tol >= 0, max_iter >= 1, check_every >= 1")
    op, g, lambda_tv, lambda_e = _prepare(low_maps, warps, out_size, lambda_tv, lambda_e, normalise)
    if not lambda_e > 0:
        raise ValueError(f"lambda_e must be > 0 (the solver and its stopping certificate use it), got {lambda_e}")
    tau0 = 1.0 / np.sqrt(op.norm2_bound.astype(np.float64) + 8.0)  # τ = σ = 1/L_K: τσ‖K‖² ≤ 1
    h0 = tf.zeros((op.batch, *op.image_size), tf.float32)
    h, iterations, f, gap, converged = _pdhg(
        op.matrix,
        op.matrix_t,
        g,
        h0,
        tf.constant(tau0, tf.float32),
        tf.constant(lambda_tv, tf.float32),
        tf.constant(lambda_e, tf.float32),
        tf.constant(tol, tf.float32),
        tf.constant(int(max_iter), tf.int32),
        tf.constant(int(check_every), tf.int32),
    )
    f = f.numpy()
    gap = gap.numpy()
    relative_gap = np.where(f > 0, gap / np.where(f > 0, f, 1.0), 0.0).astype(np.float32)
    return SuperResult(h.numpy(), iterations.numpy(), f, relative_gap, converged.numpy())


@tf.function(reduce_retracing=True)
def _adam(a, g, h0, lambda_tv, lambda_e, steps, lr):
    batch = tf.shape(h0)[0]
    beta1, beta2, eps = 0.9, 0.999, 1e-8  # tf.compat.v1.train.AdamOptimizer defaults
    h, m, v = h0, tf.zeros_like(h0), tf.zeros_like(h0)
    for t in tf.range(1, steps + 1):
        with tf.GradientTape() as tape:
            tape.watch(h)
            ah = tf.reshape(tf.sparse.sparse_dense_matmul(a, tf.reshape(h, (-1, 1))), (batch, -1))
            loss = tf.reduce_sum(_objective(h, ah, g, lambda_tv, lambda_e))
        grad = tape.gradient(loss, h)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * tf.square(grad)
        tf_t = tf.cast(t, tf.float32)
        lr_t = lr * tf.sqrt(1 - beta2**tf_t) / (1 - beta1**tf_t)
        h = h - lr_t * m / (tf.sqrt(v) + eps)
    return h, _objective(
        h, tf.reshape(tf.sparse.sparse_dense_matmul(a, tf.reshape(h, (-1, 1))), (batch, -1)), g, lambda_tv, lambda_e
    )


def adam_baseline(
    low_maps,
    warps: Warps | Sequence[Warps],
    out_size: tuple[int, int],
    steps: int = 200,
    lr: float = 1e-3,
    lambda_tv: float | None = None,
    lambda_e: float | None = None,
    normalise: bool = True,
) -> SuperResult:
    """The original's solver, for tests and benchmarks only: ``steps`` Adam steps (TF1 defaults) on F from 0.

    Same objective, operator and normalisation as :func:`solve_superres`; it does NOT converge (see the module
    docstring). ``gap`` is NaN and ``converged`` False.
    """
    op, g, lambda_tv, lambda_e = _prepare(low_maps, warps, out_size, lambda_tv, lambda_e, normalise)
    h0 = tf.zeros((op.batch, *op.image_size), tf.float32)
    h, f = _adam(
        op.matrix,
        g,
        h0,
        tf.constant(lambda_tv, tf.float32),
        tf.constant(lambda_e, tf.float32),
        tf.constant(int(steps), tf.int32),
        tf.constant(lr, tf.float32),
    )
    batch = op.batch
    return SuperResult(
        h.numpy(),
        np.full(batch, steps, np.int32),
        f.numpy(),
        np.full(batch, np.nan, np.float32),
        np.zeros(batch, bool),
    )


# ------------------------------------------------------------------------------------------- max / avg


def upsample_unwarp(low_maps, warps: Warps | Sequence[Warps], out_size: tuple[int, int]) -> tf.Tensor:
    """(B, L, h, w) maps -> (B, L, H, W): each upsampled with ``tf.image.resize`` (bilinear, half-pixel), then
    brought back to the original frame (:func:`~camkit.methods.warps.unwarp`: undo the shift, then the rotation).
    warps: shared :class:`Warps` or one per image."""
    g = tf.convert_to_tensor(low_maps, tf.float32)
    if g.shape.rank == 3:
        g = g[None]
    batch, n_warps, low_h, low_w = (int(d) for d in g.shape)
    up = tf.image.resize(tf.reshape(g, (batch * n_warps, low_h, low_w, 1)), out_size, method="bilinear")
    up = tf.reshape(up, (batch, n_warps, *out_size, 1))
    if isinstance(warps, Warps):
        out = unwarp(up, warps)
    else:
        warps = list(warps)
        if len(warps) != batch:
            raise ValueError(f"{len(warps)} Warps for {batch} images")
        out = tf.concat([unwarp(up[i : i + 1], w) for i, w in enumerate(warps)], 0)
    return out[..., 0]


def aggregate(low_maps, warps: Warps | Sequence[Warps], out_size: tuple[int, int], how: str = "max") -> np.ndarray:
    """Augmented Grad-CAM's max / avg aggregation: (B, L, h, w) -> (B, H, W) float32 (not normalised)."""
    maps = upsample_unwarp(low_maps, warps, out_size)
    if how == "max":
        return tf.reduce_max(maps, 1).numpy()
    if how in ("avg", "mean"):
        return tf.reduce_mean(maps, 1).numpy()
    raise ValueError(f"how must be 'max' or 'avg', got {how!r}")
