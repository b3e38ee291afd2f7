"""Faithfulness of Grad-CeAM: do the weighted activations alone still land in the explained cluster?

For target cluster ``k``: the activations ``A`` of the target layer, Grad-CeAM's channel weights ``α`` for
``k`` (``α_c = 2 Σ_t dL_k/dA_tc``), then ``A ⊙ α`` goes through the layers above the target layer (a
sub-model from that layer's output to the latent code) and every sample is assigned to its nearest
centroid. Reported: the share of samples assigned to each cluster before (the plain codes) and after,
per target cluster (``after[l][k]``: share assigned to ``l`` with the weights of target ``k``; each column
sums to 1). The original Grad-CeAM code printed the diagonal, ``before[k]`` vs ``after[k][k]``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from camkit.errors import CamkitError
from camkit.methods.gradceam import GradCeAM, cluster_scores, nearest_ranking
from camkit.methods.layers import resolve_layer


def split_encoder(encoder: keras.Model, layer: Any, sample_shape: tuple[int, ...],
                  centroids: np.ndarray) -> tuple[keras.Model, keras.Model, str]:
    """(input -> target layer output, target layer output -> latent, the layer's path)."""
    method = GradCeAM(centroids=centroids)
    ref = resolve_layer(encoder, layer, (1, *sample_shape), method.class_scores)
    try:
        below = keras.Model(encoder.inputs[0], ref.layer.output)
        above = keras.Model(ref.layer.output, encoder.outputs[0])
    except (ValueError, AttributeError) as exc:
        raise CamkitError(f"faithfulness: cannot split the encoder at {ref.path!r} into the layers below and "
                          f"above it ({str(exc).splitlines()[0][:160]})") from None
    return below, above, ref.path


def faithfulness(encoder: keras.Model, x: np.ndarray, centroids: np.ndarray, layer: Any = None,
                 batch_size: int = 32, progress: bool = False) -> dict[str, Any]:
    """Shares of ``x`` assigned to each cluster before and after feeding ``A ⊙ α`` above the target layer."""
    x = np.asarray(x, np.float32)
    mu = tf.constant(np.asarray(centroids, np.float32))
    k_count = int(mu.shape[0])
    below, above, path = split_encoder(encoder, layer, x.shape[1:], np.asarray(centroids))
    weights = GradCeAM(centroids=centroids).weights
    before = np.zeros(k_count, np.int64)
    after = np.zeros((k_count, k_count), np.int64)
    starts = range(0, len(x), batch_size)
    for start in tqdm(starts, desc="faithfulness", unit="batch", disable=not progress or len(starts) < 4, leave=False):
        acts = tf.convert_to_tensor(below(x[start:start + batch_size], training=False))
        spatial = list(range(1, acts.shape.rank - 1))
        codes = above(acts, training=False)
        before += np.bincount(np.argmax(nearest_ranking(codes, mu), axis=1), minlength=k_count)
        for k in range(k_count):
            with tf.GradientTape() as tape:
                tape.watch(acts)
                score = tf.reduce_sum(cluster_scores(above(acts, training=False), mu, weights)[:, k])
            alpha = 2.0 * tf.reduce_sum(tape.gradient(score, acts), axis=spatial, keepdims=True)
            moved = above(acts * alpha, training=False)
            after[:, k] += np.bincount(np.argmax(nearest_ranking(moved, mu), axis=1), minlength=k_count)
    n = len(x)
    return {"layer": path, "n": n, "before": (before / n).tolist(), "after": (after / n).tolist(),
            "per_cluster": [{"cluster": k, "before": before[k] / n, "after": after[k, k] / n}
                            for k in range(k_count)]}


def format_faithfulness(report: dict[str, Any]) -> str:
    """One line per cluster: its share of the samples before and after ``A ⊙ α``."""
    lines = [f"faithfulness at {report['layer']} ({report['n']} samples): share assigned to each cluster",
             "cluster  before  after (A ⊙ α of that cluster)"]
    lines += [f"{r['cluster']:<7}  {r['before']:.3f}   {r['after']:.3f}" for r in report["per_cluster"]]
    return "\n".join(lines)
