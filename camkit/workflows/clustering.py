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
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn.cluster import KMeans

from camkit.config import ExperimentConfig
from camkit.data.splits import PREPROCESSORS, Splits, load_data
from camkit.errors import CamkitError
from camkit.io import atomic_path, atomic_write_json
from camkit.metrics.clustering import clustering_report, format_clustering
from camkit.models import build_model, model_builder
from camkit.models.saving import load_model, save_model
from camkit.workflows.fit import fit_classifier, unknown_length_ok
from camkit.workflows.results import RunDirs, write_manifest


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


def nested_parts(model: keras.Model, name: str) -> tuple[keras.Model, keras.Model]:
    """The nested ``encoder`` and ``decoder`` models of an autoencoder."""
    try:
        return model.get_layer("encoder"), model.get_layer("decoder")
    except ValueError:
        raise CamkitError(f"--model {name}: task cluster needs an autoencoder with nested 'encoder' and 'decoder' "
                          "models (resnet1d-ae, conv-ae)") from None


def _autoencoder_pairs(train_data: Any) -> Any:
    if isinstance(train_data, tuple):
        return train_data[0], train_data[0]
    return train_data.map(lambda x, y: (x, x))


def fit_kmeans(codes: np.ndarray, n_clusters: int, n_init: int, seed: int) -> KMeans:
    """scikit-learn k-means on the codes, seeded: the same codes give the same centroids."""
    if n_clusters > len(codes):
        raise CamkitError(f"cluster.n_clusters: {n_clusters} clusters for {len(codes)} training samples")
    return KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(np.asarray(codes, np.float64))


def train_clusters(config: ExperimentConfig, root: Path = Path("."), progress: bool = True) -> dict:
    """Train the autoencoder (or reuse ``train.weights``), fit k-means, save everything, report the metrics."""
    dirs = RunDirs(config.name, root)
    data = load_data(config.data)
    model_builder(config.model.name)
    train = config.train
    resume = None
    if train.weights is not None:
        resume = dirs.best_model if train.weights == "auto" else Path(train.weights)
        if not resume.is_file():
            raise CamkitError(f"--weights: {resume} does not exist")
    if train.epochs == 0 and resume is None:
        raise CamkitError("--epochs 0 needs --weights: there is nothing to reuse")
    batch_size = train.batch_size or 10
    n_clusters = config.cluster.n_clusters or data.n_classes
    dirs.ensure()
    keras.utils.set_random_seed(train.seed)
    write_manifest(dirs, config.to_dict(), status="training", batch_size=batch_size)

    def build() -> keras.Model:
        try:
            model = build_model(config.model.name, data.input_shape, data.n_classes, **config.model.options)
        except TypeError as exc:
            raise CamkitError(f"model.options: {config.model.name} does not take "
                              f"{str(exc).split('argument')[-1].strip()}") from None
        nested_parts(model, config.model.name)
        return model

    result = fit_classifier(
        build, _autoencoder_pairs(data.train_data(batch_size, train.seed)), epochs=train.epochs,
        best_path=dirs.best_model, log_path=dirs.results / "train_log.csv", learning_rate=train.learning_rate,
        monitor=train.monitor, reduce_lr=(train.reduce_lr_factor, train.reduce_lr_patience, train.min_lr),
        strategy=train.strategy, batch_size=batch_size, resume_from=resume, progress=progress, loss="mse",
    )
    encoder, decoder = nested_parts(result.model, config.model.name)
    codes = encode(encoder, split_inputs(data, "train", batch_size), batch_size)
    kmeans = fit_kmeans(codes, n_clusters, config.cluster.n_init, train.seed)
    settings = {"n_clusters": n_clusters, "n_init": config.cluster.n_init, "seed": train.seed,
                "inertia": float(kmeans.inertia_), "n_iter": int(kmeans.n_iter_), "latent_dim": int(codes.shape[1]),
                "algorithm": "sklearn.cluster.KMeans (lloyd, k-means++ init) on the training codes"}
    clusters = ClusterModel(encoder, decoder, kmeans.cluster_centers_.astype(np.float32), settings)
    save_clusters(clusters, dirs)
    report = cluster_metrics(config, clusters, data, dirs, batch_size, train_codes=codes)
    trained = result.epochs_run > 0
    summary = {
        "experiment": config.name, "dataset": data.name, "model": config.model.name, "task": "cluster",
        "parameters": int(result.model.count_params()), "epochs": result.epochs_run, "batch_size": batch_size,
        "best_epoch": result.best_epoch + 1 if trained else None,
        f"best_{train.monitor}": result.best_value if trained else None,
        "final": {k: v[-1] for k, v in result.history.items()},
        "train_wall_time_s": round(result.wall_time_s, 2), "resumed_from": str(resume) if resume else None,
        "model_path": str(dirs.best_model), "kmeans": settings, "clustering": report,
    }
    atomic_write_json(dirs.results / "train_metrics.json", summary)
    write_manifest(dirs, config.to_dict(), status="trained", batch_size=batch_size,
                   train_wall_time_s=summary["train_wall_time_s"])
    return summary


def save_clusters(clusters: ClusterModel, dirs: RunDirs) -> None:
    """``encoder.keras``, ``decoder.keras``, ``centroids.npy`` and ``kmeans.json`` under ``models/<exp>/``."""
    save_model(clusters.encoder, dirs.models / "encoder.keras")
    save_model(clusters.decoder, dirs.models / "decoder.keras")
    with atomic_path(dirs.models / "centroids.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, clusters.centroids, allow_pickle=False)
    atomic_write_json(dirs.models / "kmeans.json", clusters.kmeans)


def load_clusters(dirs: RunDirs) -> ClusterModel:
    """The clustering saved by :func:`train_clusters` for an experiment."""
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
    report["metrics_path"] = str(atomic_write_json(dirs.results / "cluster_metrics.json", report))
    report["text"] = format_clustering(reports)
    return report


def evaluate_clusters(config: ExperimentConfig, root: Path = Path(".")) -> dict:
    """Reload the experiment's clustering and report ACC / NMI / ARI on train and test."""
    dirs = RunDirs(config.name, root)
    data = load_data(config.data)
    clusters = load_clusters(dirs)
    return cluster_metrics(config, clusters, data, dirs, config.train.batch_size or 10)
