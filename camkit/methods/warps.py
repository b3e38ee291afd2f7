"""Random rotation + translation warps of images and maps, and their exact inverse (Augmented Grad-CAM).

Augmented Grad-CAM (Morbidelli, Carrera, Rossi, Fragneto, Boracchi, "Augmented Grad-CAM: Heat-Maps Super
Resolution Through Augmentation", ICASSP 2020) explains ``L`` augmented copies of an image: copy 0 is the image
itself, copy ``l`` is the image rotated by ``θ_l`` about its centre, then translated by ``(dy_l, dx_l)`` pixels,
with bilinear interpolation and zero fill. :func:`sample_warps` draws the warps, :func:`warp` applies them to
images, :func:`unwarp` undoes them on (upsampled) maps: undo the shift, then the rotation. The super-resolution
aggregation that uses them is in ``superres.py``.

Conventions (those of ``tf.raw_ops.ImageProjectiveTransformV3``, ``tf.contrib.image.rotate`` / ``translate``
that the original code used, and Keras' ``RandomRotation``):

- Pixel ``(row, col)`` has its centre at the point ``(x, y) = (col, row)``; the image centre, the pivot of the
  rotation, is ``c = ((W − 1) / 2, (H − 1) / 2)``. ``y`` points down.
- A positive angle rotates the content counter-clockwise as the image is displayed (``θ = π/2`` on a square
  image is ``np.rot90(image, 1)``). A positive ``dx`` moves the content right, a positive ``dy`` moves it down.
- The content at input point ``p`` lands at output point ``q = R(θ)(p − c) + c + t`` with
  ``R(θ) = [[cos θ, sin θ], [−sin θ, cos θ]]`` acting on ``(x, y)`` and ``t = (dx, dy)``. TF's op wants the
  opposite map, output to input: ``p = R(θ)ᵀ(q − c − t) + c`` (:func:`warp_matrices`); :func:`unwarp` uses
  the inverse matrix, the forward map itself, so it is the exact geometric inverse.
- Values are interpolated bilinearly; points that fall outside the input read 0 (``fill_mode="CONSTANT"``),
  so a warp loses the content pushed outside the frame and ``unwarp(warp(x))`` equals ``x`` only up to the
  bilinear blur (twice) and away from the zero-filled border.

Everything is float32 and runs on TF ops (CPU or GPU): one ``ImageProjectiveTransformV3`` call warps all
images × all copies at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = [
    "Warps", "identity_warps", "sample_warps", "unwarp", "unwarp_matrices", "warp", "warp_each", "warp_matrices",
]

#: The original's shift range, ±30 px at 224 px, as a fraction of the image size (per axis).
SHIFT_RANGE = 30.0 / 224.0
#: The original's angle range, ±0.5 rad.
ANGLE_RANGE = 0.5


@dataclass(frozen=True, eq=False)
class Warps:
    """``n`` warps: rotate by ``angles[i]`` (radians) about the centre, then shift by ``shifts[i] = (dy, dx)`` px.

    ``image_size`` (H, W) is the size the shifts are in pixels of (the warps apply to images or maps of that
    size); None leaves it unchecked.
    """

    angles: np.ndarray  # (n,) float32, radians, positive = counter-clockwise as displayed
    shifts: np.ndarray  # (n, 2) float32, pixels, (dy, dx): positive = down, right
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        angles = np.asarray(self.angles, np.float32).reshape(-1)
        shifts = np.asarray(self.shifts, np.float32).reshape(-1, 2)
        if len(angles) != len(shifts):
            raise ValueError(f"{len(angles)} angles but {len(shifts)} shifts")
        object.__setattr__(self, "angles", angles)
        object.__setattr__(self, "shifts", shifts)
        if self.image_size is not None:
            object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))

    def __len__(self) -> int:
        return len(self.angles)

    def __getitem__(self, index) -> Warps:
        """A subset of the warps (an int keeps a length-1 axis)."""
        index = [index] if isinstance(index, (int, np.integer)) else index
        return Warps(self.angles[index], self.shifts[index], self.image_size)

    def check_size(self, size: tuple[int, int]) -> None:
        if self.image_size is not None and tuple(size) != self.image_size:
            raise ValueError(
                f"warps were drawn for {self.image_size} images but are applied at {tuple(size)}: their shifts "
                "are in pixels; draw them for that size (sample_warps(..., image_size=size))"
            )


def identity_warps(n: int = 1, image_size: tuple[int, int] | None = None) -> Warps:
    return Warps(np.zeros(n, np.float32), np.zeros((n, 2), np.float32), image_size)


def sample_warps(
    n: int,
    image_size: tuple[int, int],
    angle_range: float = ANGLE_RANGE,
    shift_range: float = SHIFT_RANGE,
    seed: int | np.random.Generator | None = None,
) -> Warps:
    """``n`` random warps for ``image_size`` (H, W) images; copy 0 is the identity.

    Angles ``~ U(−angle_range, angle_range)`` radians; shifts ``dy ~ U(−shift_range·H, shift_range·H)`` and
    ``dx ~ U(−shift_range·W, shift_range·W)`` pixels: ``shift_range`` is a FRACTION of the image size, default
    30/224 (the original's ±30 px at 224 px), so the warps scale with the image. ``seed``: an int (reproducible),
    a NumPy ``Generator``, or None.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    height, width = int(image_size[0]), int(image_size[1])
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    angles = rng.uniform(-angle_range, angle_range, size=n)
    shifts = rng.uniform(-shift_range, shift_range, size=(n, 2)) * np.array([height, width], np.float64)
    angles[0] = 0.0
    shifts[0] = 0.0
    return Warps(angles.astype(np.float32), shifts.astype(np.float32), (height, width))


def unwarp_matrices(warps: Warps, size: tuple[int, int]) -> np.ndarray:
    """(n, 3, 3) float64 homogeneous maps ``p ↦ q`` (input point to output point, ``(x, y, 1)``) of the warps.

    As matrices for ``ImageProjectiveTransformV3`` (which maps output points to input points) they undo the
    warps: :func:`unwarp` uses them.
    """
    height, width = size
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    cos, sin = np.cos(warps.angles.astype(np.float64)), np.sin(warps.angles.astype(np.float64))
    rot = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # (n, 2, 2), acts on (x, y)
    shift_xy = warps.shifts.astype(np.float64)[:, ::-1]  # (dy, dx) -> (dx, dy)
    out = np.zeros((len(warps), 3, 3))
    out[:, :2, :2] = rot
    out[:, :2, 2] = centre + shift_xy - rot @ centre  # (n, 2)
    out[:, 2, 2] = 1.0
    return out


def warp_matrices(warps: Warps, size: tuple[int, int]) -> np.ndarray:
    """(n, 3, 3) float64 maps ``q ↦ p`` (output point to input point): what ``ImageProjectiveTransformV3`` wants.

    ``p = R(θ)ᵀ(q − c − t) + c``: the inverse of :func:`unwarp_matrices`, written in closed form.
    """
    height, width = size
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    cos, sin = np.cos(warps.angles.astype(np.float64)), np.sin(warps.angles.astype(np.float64))
    rot_t = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shift_xy = warps.shifts.astype(np.float64)[:, ::-1]
    out = np.zeros((len(warps), 3, 3))
    out[:, :2, :2] = rot_t
    out[:, :2, 2] = centre - np.einsum("nij,nj->ni", rot_t, centre + shift_xy)
    out[:, 2, 2] = 1.0
    return out


def flat_matrices(matrices: np.ndarray) -> np.ndarray:
    """(n, 3, 3) affine matrices -> (n, 8) float32 rows ``[a0 a1 a2 b0 b1 b2 0 0]`` for the TF op."""
    return np.concatenate([matrices[:, 0, :], matrices[:, 1, :], np.zeros((len(matrices), 2))], -1).astype(np.float32)


def _transform(images: tf.Tensor, transforms: np.ndarray) -> tf.Tensor:
    """(N, H, W, C) images, (N, 8) or (1, 8) transforms -> (N, H, W, C), bilinear, zero fill."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.constant(transforms, tf.float32),
        output_shape=tf.shape(images)[1:3],
        fill_value=tf.constant(0.0, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def _apply(x: tf.Tensor, matrices: np.ndarray) -> tf.Tensor:
    """x (B, n, H, W, C): copy i of every image transformed by ``matrices[i]``."""
    batch, n, height, width, channels = (int(d) for d in x.shape)
    flat = np.tile(flat_matrices(matrices), (batch, 1))  # (B·n, 8), image-major like the reshape below
    out = _transform(tf.reshape(x, (batch * n, height, width, channels)), flat)
    return tf.reshape(out, (batch, n, height, width, channels))


def warp(images, warps: Warps) -> tf.Tensor:
    """Every image warped by every warp: (H, W, C) -> (n, H, W, C); (B, H, W, C) -> (B, n, H, W, C).

    Rotate about the centre, then translate (see the module docstring for the conventions); bilinear, zero fill;
    float32. One TF op call for all B·n copies.
    """
    x = tf.convert_to_tensor(images, tf.float32)
    if x.shape.rank not in (3, 4):
        raise ValueError(f"images must be (H, W, C) or (B, H, W, C), got shape {tuple(x.shape)}")
    single = x.shape.rank == 3
    if single:
        x = x[None]
    warps.check_size(tuple(x.shape[1:3]))
    n = len(warps)
    tiled = tf.broadcast_to(x[:, None], (x.shape[0], n, *x.shape[1:]))
    out = _apply(tiled, warp_matrices(warps, tuple(x.shape[1:3])))
    return out[0] if single else out


def warp_each(images, warps: Warps) -> tf.Tensor:
    """Image ``i`` warped by warp ``i`` only: (N, H, W, C) and N warps -> (N, H, W, C), one TF op call."""
    x = tf.convert_to_tensor(images, tf.float32)
    if x.shape.rank != 4 or x.shape[0] != len(warps):
        raise ValueError(f"need (N, H, W, C) images and N warps, got shape {tuple(x.shape)} and {len(warps)} warps")
    warps.check_size(tuple(x.shape[1:3]))
    return _transform(x, flat_matrices(warp_matrices(warps, tuple(x.shape[1:3]))))


def unwarp(maps, warps: Warps) -> tf.Tensor:
    """Copy ``i`` of ``maps`` brought back to the original frame: undo the shift, then the rotation of warp ``i``.

    maps: (n, H, W), (n, H, W, C) or (B, n, H, W, C) (for B images' 2-D maps add a trailing axis); same shape
    back, float32, bilinear, zero fill. It applies the exact inverse transform, so ``unwarp(warp(x))`` is ``x``
    up to interpolation blur and the content the warp pushed out of the frame.
    """
    x = tf.convert_to_tensor(maps, tf.float32)
    rank = x.shape.rank
    if rank not in (3, 4, 5):
        raise ValueError(f"maps must be (n, H, W), (n, H, W, C) or (B, n, H, W, C), got shape {tuple(x.shape)}")
    if rank == 3:
        x = x[..., None]
    if rank in (3, 4):
        x = x[None]
    if x.shape[1] != len(warps):
        raise ValueError(f"{x.shape[1]} maps per image but {len(warps)} warps")
    warps.check_size(tuple(x.shape[2:4]))
    out = _apply(x, unwarp_matrices(warps, tuple(x.shape[2:4])))
    if rank in (3, 4):
        out = out[0]
    return out[..., 0] if rank == 3 else out
