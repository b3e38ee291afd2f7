"""Clustering experiments (``task: cluster``): an autoencoder trained on reconstruction, k-means on its codes.

As Grad-CeAM (Lafabregue et al., ICTAI 2021), not DEC/IDEC: the autoencoder (``resnet1d-ae`` for series,
``conv-ae`` for images; nested ``encoder`` and ``decoder`` models) is trained on MSE reconstruction only,
then scikit-learn's k-means (``cluster.n_init`` restarts, seeded by ``train.seed``, k = ``cluster.n_clusters``
or the number of classes) clusters the latent codes of the training split. Samples are assigned to their
nearest centroid. ``models/<exp>/`` receives ``best.keras`` (the autoencoder), ``encoder.keras``,
``decoder.keras``, ``centroids.npy`` (K, d) and ``kmeans.json`` (settings, inertia); no pickle.
``results/<exp>/cluster_metrics.json`` holds ACC / NMI / ARI on train and test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from sklearn.cluster import KMeans

from camkit.config import ExperimentConfig
from camkit.data.splits import PREPROCESSORS, Splits
from camkit.errors import CamkitError
from camkit.io import atomic_path, atomic_write_json
from camkit.metrics.clustering import clustering_report, format_clustering
from camkit.models.saving import load_model, save_model
from camkit.workflows.fit import FitResult, unknown_length_ok
from camkit.workflows.recipes.base import EvalRun, Recipe, TrainRun, build_configured, register_recipe
from camkit.workflows.results import RunDirs


@dataclass
class ClusterModel:
    """A trained clustering: encoder, decoder and the k-means centroids of the latent codes."""

    encoder: keras.Model
    decoder: keras.Model
    centroids: np.ndarray  # (K, d) float32
    kmeans: dict[str, Any]

    def assign(self, codes: np.ndarray) -> np.ndarray:
        """Index of the nearest centroid (Euclidean) of every code (N, d)."""
        return squared_distances(codes, self.centroids).argmin(axis=1)


def squared_distances(codes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N, K) squared Euclidean distances, in float64."""
    diff = np.asarray(codes, np.float64)[:, None, :] - np.asarray(centroids, np.float64)[None, :, :]
    return np.square(diff).sum(axis=-1)


def split_inputs(data: Splits, split: str, batch_size: int) -> Any:
    """The inputs of ``split`` in index/file order: an (N, ...) array, or a batched image dataset."""
    if isinstance(data.source, dict):
        preprocess = PREPROCESSORS.get(data.config.preprocess, data.config.preprocess)
        return data.source[split].dataset(tuple(data.config.image_size), batch_size=batch_size,
                                          preprocess=preprocess, shuffle=False).map(lambda x, y: x)
    return data.source.x_train if split == "train" else data.source.x_test


def encode(encoder: keras.Model, inputs: Any, batch_size: int) -> np.ndarray:
    """Latent codes (N, d) of an array or a dataset."""
    with unknown_length_ok():
        return np.asarray(encoder.predict(inputs, batch_size=batch_size if isinstance(inputs, np.ndarray) else None,
                                          verbose=0), np.float32)


def nested_parts(model: keras.Model, culprit: str) -> tuple[keras.Model, keras.Model]:
    """The nested ``encoder`` and ``decoder`` models of an autoencoder (``culprit`` starts the error)."""
    try:
        return model.get_layer("encoder"), model.get_layer("decoder")
    except ValueError:
        raise CamkitError(f"{culprit}: task cluster needs an autoencoder with nested 'encoder' and 'decoder' "
                          "models (resnet1d-ae, conv-ae)") from None


def fit_kmeans(codes: np.ndarray, n_clusters: int, n_init: int, seed: int) -> KMeans:
    """scikit-learn k-means on the codes, seeded: the same codes give the same centroids."""
    if n_clusters > len(codes):
        raise CamkitError(f"cluster.n_clusters: {n_clusters} clusters for {len(codes)} training samples")
    return KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(np.asarray(codes, np.float64))


class ClusterRecipe(Recipe):
    """``task: cluster``: the autoencoder on MSE reconstruction, then k-means on the training codes."""

    name = "cluster"
    loss = "mse"

    def matches(self, config: ExperimentConfig) -> bool:
        return config.task == "cluster"

    def batch_size(self, run: TrainRun) -> int:
        return run.config.train.batch_size or 10

    def build(self, run: TrainRun) -> keras.Model:
        model = build_configured(run.config, run.data)
        self.check_model(run, model, f"--model {run.config.model.name}")
        return model

    def check_model(self, run: TrainRun, model: keras.Model, culprit: str) -> None:
        super().check_model(run, model, culprit)
        nested_parts(model, culprit)
        if tuple(model.output_shape[1:]) != tuple(run.data.input_shape):
            raise CamkitError(f"{culprit}: its output {model.output_shape} does not reconstruct the inputs "
                              f"{tuple(run.data.input_shape)} of {run.data.name}")

    def pairs(self, run: TrainRun, train_data: Any) -> Any:
        if isinstance(train_data, tuple):
            return train_data[0], train_data[0]
        return train_data.map(lambda x, y: (x, x))

    def after_fit(self, run: TrainRun, result: FitResult) -> dict[str, Any]:
        config, data, batch_size = run.config, run.data, run.batch_size
        encoder, decoder = nested_parts(result.model, f"--model {config.model.name}")
        codes = encode(encoder, split_inputs(data, "train", batch_size), batch_size)
        n_clusters = config.cluster.n_clusters or data.n_classes
        kmeans = fit_kmeans(codes, n_clusters, config.cluster.n_init, config.train.seed)
        settings = {"n_clusters": n_clusters, "n_init": config.cluster.n_init, "seed": config.train.seed,
                    "inertia": float(kmeans.inertia_), "n_iter": int(kmeans.n_iter_),
                    "latent_dim": int(codes.shape[1]),
                    "algorithm": "sklearn.cluster.KMeans (lloyd, k-means++ init) on the training codes"}
        clusters = ClusterModel(encoder, decoder, kmeans.cluster_centers_.astype(np.float32), settings)
        save_clusters(clusters, run.dirs)
        report = cluster_metrics(config, clusters, data, run.dirs, batch_size, train_codes=codes)
        return {"task": "cluster", "kmeans": settings, "clustering": report}

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        """Reload the experiment's clustering and report ACC / NMI / ARI on train and test."""
        return cluster_metrics(run.config, load_clusters(run.dirs), run.data, run.dirs,
                               run.config.train.batch_size or 10)


def save_clusters(clusters: ClusterModel, dirs: RunDirs) -> None:
    """``encoder.keras``, ``decoder.keras``, ``centroids.npy`` and ``kmeans.json`` under ``models/<exp>/``."""
    save_model(clusters.encoder, dirs.models / "encoder.keras")
    save_model(clusters.decoder, dirs.models / "decoder.keras")
    with atomic_path(dirs.models / "centroids.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, clusters.centroids, allow_pickle=False)
    atomic_write_json(dirs.models / "kmeans.json", clusters.kmeans)


def load_clusters(dirs: RunDirs) -> ClusterModel:
    """The clustering saved by training a ``task: cluster`` experiment."""
    paths = {name: dirs.models / name for name in ("encoder.keras", "decoder.keras", "centroids.npy", "kmeans.json")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise CamkitError(f"{missing[0]}: not found; train the experiment with --task cluster first")
    try:
        centroids = np.load(paths["centroids.npy"], allow_pickle=False).astype(np.float32)
        settings = json.loads(paths["kmeans.json"].read_text())
    except (OSError, ValueError) as exc:
        raise CamkitError(f"{dirs.models}: unreadable centroids.npy or kmeans.json ({exc})") from None
    encoder = load_model(paths["encoder.keras"], compile=False)
    if centroids.ndim != 2 or centroids.shape[1] != encoder.output_shape[-1]:
        raise CamkitError(f"{paths['centroids.npy']}: shape {centroids.shape} does not fit the encoder's latent "
                          f"{encoder.output_shape}")
    return ClusterModel(encoder, load_model(paths["decoder.keras"], compile=False), centroids, settings)


def cluster_metrics(config: ExperimentConfig, clusters: ClusterModel, data: Splits, dirs: RunDirs, batch_size: int,
                    train_codes: np.ndarray | None = None) -> dict:
    """ACC / NMI / ARI on train and test, written to ``results/<exp>/cluster_metrics.json``; adds ``text``."""
    reports: dict[str, Any] = {}
    sizes: dict[str, list[int]] = {}
    for split, labels in (("train", data.y_train), ("test", data.y_test)):
        codes = train_codes if split == "train" and train_codes is not None else encode(
            clusters.encoder, split_inputs(data, split, batch_size), batch_size)
        if len(codes) != len(labels):
            raise CamkitError(f"{data.name}: {len(codes)} {split} samples were read but {len(labels)} are labelled")
        assigned = clusters.assign(codes)
        reports[split] = clustering_report(labels, assigned)
        sizes[split] = np.bincount(assigned, minlength=len(clusters.centroids)).tolist()
    report = {"experiment": config.name, "dataset": data.name, "n_clusters": len(clusters.centroids),
              **reports, "cluster_sizes": sizes}
    atomic_write_json(dirs.results / "cluster_metrics.json", report)
    report["metrics_path"] = str(dirs.final.results / "cluster_metrics.json")  # where it is once training ends
    report["text"] = format_clustering(reports)
    return report


register_recipe(ClusterRecipe())
