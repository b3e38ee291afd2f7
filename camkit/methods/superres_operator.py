"""The linear forward operator of Augmented Grad-CAM's super-resolution: ``A_l h = D(W_l h)``.

``W_l`` is warp ``l`` (rotation about the centre, then shift; bilinear, zero fill, exactly the weights
``ImageProjectiveTransformV3`` uses) and ``D`` the half-pixel bilinear downsampling of
``tf.image.resize(method="bilinear", antialias=False)``, read off that op itself. Each ``D W_l`` is built
once as a sparse matrix, so the adjoint ``Aᵀ`` is its exact transpose (TF registers the inverse warp as the
gradient of the warp op, which is not the adjoint of a bilinear warp). A batch of images is one
block-diagonal sparse operator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from camkit.methods.warps import Warps, flat_matrices, warp_matrices


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 matrix of 1-D ``tf.image.resize(method="bilinear", antialias=False)``.

    Read off TF's own op applied to an identity, so it is that operator (half-pixel centres). A 2-D resize of an
    (n_y, n_x) image is ``R_y · X · R_xᵀ``.
    """
    eye = tf.eye(n_in, dtype=tf.float32)[None, :, None, :]  # image (n_in, 1) with n_in channels
    out = tf.image.resize(eye, (n_out, 1), method="bilinear", antialias=False)
    return out[0, :, 0, :].numpy().astype(np.float64)


def _row_nonzeros(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, k) column indices and weights of each row's nonzeros, padded with weight 0."""
    nonzero = matrix != 0
    k = max(1, int(nonzero.sum(1).max()))
    idx = np.zeros((matrix.shape[0], k), np.int64)
    weights = np.zeros((matrix.shape[0], k))
    for i, row in enumerate(nonzero):
        cols = np.flatnonzero(row)
        idx[i, : len(cols)] = cols
        weights[i, : len(cols)] = matrix[i, cols]
    return idx, weights


def _warp_downsample_matrix(warps: Warps, image_size: tuple[int, int], low_size: tuple[int, int]) -> sp.csr_matrix:
    """CSR (L·h·w, H·W) float64 matrix of ``h ↦ [D(W_l h)]_l`` for one image (row-major flattening)."""
    height, width = image_size
    low_h, low_w = low_size
    n = len(warps)
    yi, yw = _row_nonzeros(resize_matrix(height, low_h))  # (h, ky)
    xi, xw = _row_nonzeros(resize_matrix(width, low_w))  # (w, kx)
    # The warp rows D reads: output pixel (Y, X) of copy l reads input point M_l (X, Y, 1) bilinearly.
    mats = flat_matrices(warp_matrices(warps, image_size)).astype(np.float64)  # float32 entries, as TF receives them
    big_y = yi[None, :, None, :, None]
    big_x = xi[None, None, :, None, :]
    weight_d = yw[None, :, None, :, None] * xw[None, None, :, None, :]
    m = mats[:, :, None, None, None, None]
    in_x = m[:, 0] * big_x + m[:, 1] * big_y + m[:, 2]  # (L, h, w, ky, kx)
    in_y = m[:, 3] * big_x + m[:, 4] * big_y + m[:, 5]
    x0, y0 = np.floor(in_x), np.floor(in_y)
    fx, fy = in_x - x0, in_y - y0
    rows = np.arange(n * low_h * low_w).reshape(n, low_h, low_w)[..., None, None]
    rows = np.broadcast_to(rows, in_x.shape).ravel()
    all_rows, all_cols, all_vals = [], [], []
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)  # zero fill outside
        all_rows.append(rows)
        all_cols.append(np.where(inside, yy * width + xx, 0).astype(np.int64).ravel())
        all_vals.append(np.where(inside, w * weight_d, 0.0).ravel())
    matrix = sp.coo_matrix(
        (np.concatenate(all_vals), (np.concatenate(all_rows), np.concatenate(all_cols))),
        shape=(n * low_h * low_w, height * width),
    ).tocsr()
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def _sparse_tensor(matrix: sp.spmatrix) -> tf.SparseTensor:
    coo = matrix.tocsr().tocoo()  # canonical: row-major, no duplicates
    indices = np.stack([coo.row, coo.col], 1).astype(np.int64)
    return tf.SparseTensor(indices, coo.data.astype(np.float32), coo.shape)


class WarpDownsample:
    """``A h = [D(T_l R_l h)]_l`` for B images × L warps: (B, H, W) -> (B, L, h, w), and its exact adjoint.

    warps: one :class:`Warps` shared by the B images, or a sequence of B of them (one per image, same L). The
    operator is one block-diagonal sparse matrix (``matrix``, ``matrix_t`` its transpose), see the module
    docstring.
    """

    def __init__(
        self,
        warps: Warps | Sequence[Warps],
        image_size: tuple[int, int],
        low_size: tuple[int, int],
        batch: int | None = None,
    ) -> None:
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.low_size = (int(low_size[0]), int(low_size[1]))
        per_image = not isinstance(warps, Warps)
        warp_list = list(warps) if per_image else [warps]
        if batch is None:
            batch = len(warp_list)
        if per_image and len(warp_list) != batch:
            raise ValueError(f"{len(warp_list)} Warps for {batch} images")
        if len({len(w) for w in warp_list}) != 1:
            raise ValueError("every image needs the same number of warps")
        for w in warp_list:
            w.check_size(self.image_size)
        self.batch = batch
        self.n_warps = len(warp_list[0])
        blocks = [_warp_downsample_matrix(w, self.image_size, self.low_size) for w in warp_list]
        if not per_image:
            blocks = blocks * batch
        # ‖A_b‖² ≤ ‖A_b‖₁ ‖A_b‖_∞ (Schur test), per image.
        self.norm2_bound = np.array(
            [abs(b).sum(0).max() * abs(b).sum(1).max() if b.nnz else 0.0 for b in blocks], np.float32
        )
        full = sp.block_diag(blocks, format="csr")
        self.matrix = _sparse_tensor(full)
        self.matrix_t = _sparse_tensor(full.T)

    @property
    def out_rows(self) -> int:
        return self.n_warps * self.low_size[0] * self.low_size[1]

    def flat(self, h: tf.Tensor) -> tf.Tensor:
        """(B, H, W) -> (B, L·h·w)."""
        out = tf.sparse.sparse_dense_matmul(self.matrix, tf.reshape(h, (-1, 1)))
        return tf.reshape(out, (self.batch, self.out_rows))

    def flat_adjoint(self, y: tf.Tensor) -> tf.Tensor:
        """(B, L·h·w) -> (B, H, W)."""
        out = tf.sparse.sparse_dense_matmul(self.matrix_t, tf.reshape(y, (-1, 1)))
        return tf.reshape(out, (self.batch, *self.image_size))

    def __call__(self, h) -> tf.Tensor:
        """(B, H, W) -> (B, L, h, w)."""
        h = tf.convert_to_tensor(h, tf.float32)
        return tf.reshape(self.flat(h), (self.batch, self.n_warps, *self.low_size))

    def adjoint(self, y) -> tf.Tensor:
        """(B, L, h, w) -> (B, H, W): ``Aᵀ y``."""
        y = tf.convert_to_tensor(y, tf.float32)
        return self.flat_adjoint(tf.reshape(y, (self.batch, self.out_rows)))
