"""Clustering metrics: accuracy under the best one-to-one matching of clusters to classes, NMI, ARI.

ACC (Hungarian matching, ``scipy.optimize.linear_sum_assignment``) is the share of samples whose cluster
maps to their class under the matching that maximises it; clusters left unmatched (more clusters than
classes) count as wrong. NMI (arithmetic normalisation) and ARI are scikit-learn's.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from camkit.errors import CamkitError


def _labelings(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or not len(y_true):
        raise CamkitError(f"clustering metrics: need two labelings of the same length, got {y_true.shape} "
                          f"and {y_pred.shape}")
    return y_true, y_pred


def cluster_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Best-matching accuracy: max over one-to-one cluster -> class maps of the share of samples matched."""
    y_true, y_pred = _labelings(y_true, y_pred)
    classes, true_idx = np.unique(y_true, return_inverse=True)
    clusters, pred_idx = np.unique(y_pred, return_inverse=True)
    counts = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(counts, (pred_idx, true_idx), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(y_true))


def clustering_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``{"acc", "nmi", "ari"}`` of a clustering against the true classes."""
    y_true, y_pred = _labelings(y_true, y_pred)
    return {"acc": cluster_accuracy(y_true, y_pred),
            "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
            "ari": float(adjusted_rand_score(y_true, y_pred))}


def format_clustering(reports: dict[str, dict[str, float]]) -> str:
    """A small text table: one row per split (``{"train": report, "test": report}``)."""
    lines = ["split   ACC     NMI     ARI"]
    for split, r in reports.items():
        lines.append(f"{split:<6}  {r['acc']:.4f}  {r['nmi']:.4f}  {r['ari']:.4f}")
    return "\n".join(lines)
