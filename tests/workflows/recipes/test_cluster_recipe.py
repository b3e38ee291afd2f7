"""Clustering experiments: metrics on known labelings; `camkit train/evaluate/explain --task cluster` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import invoke, ok
from sklearn.cluster import KMeans

from camkit.config import load_config
from camkit.errors import CamkitError
from camkit.metrics.clustering import cluster_accuracy, clustering_report
from camkit.models import build_model
from camkit.workflows.clusters import choose_instances


def test_permuted_labels_are_a_perfect_clustering():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    permuted = np.array([2, 0, 1])[y]
    assert clustering_report(y, permuted) == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0})


def test_partial_and_unbalanced_cases_by_hand():
    # clusters {0,1} hold class 0 (2 of 3) and class 1 (3 of 3): best matching 1->0, 0->1 gives 5/6
    assert cluster_accuracy([0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0]) == pytest.approx(5 / 6)
    # three clusters for two classes: one cluster stays unmatched and counts as wrong
    assert cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 2]) == pytest.approx(3 / 4)
    # independent labelings: NMI 0, ARI = (0 - 2/3) / (2 - 2/3) = -0.5
    report = clustering_report([0, 0, 1, 1], [0, 1, 0, 1])
    assert report["acc"] == pytest.approx(0.5)
    assert report["nmi"] == pytest.approx(0.0, abs=1e-12)
    assert report["ari"] == pytest.approx(-0.5)
    with pytest.raises(CamkitError, match="same length"):
        cluster_accuracy([0, 1], [0])


def test_best_and_worst_members_handle_small_clusters():
    distances = np.array([[0.5, 9], [0.1, 9], [9, 0.2], [0.3, 9], [9, 0.4]])
    assigned = distances.argmin(axis=1)
    best, worst = choose_instances(distances, assigned, 0, count=5)
    assert best.tolist() == [1, 3, 0] and worst.tolist() == [0, 3, 1]
    best, worst = choose_instances(distances, assigned, 1, count=1)
    assert best.tolist() == [2] and worst.tolist() == [4]
    assert choose_instances(distances, np.zeros(5, int), 1)[0].size == 0  # an empty cluster shows nothing


def test_cluster_config_defaults_and_validation(tmp_path):
    config = load_config(None, {"task": "cluster"})
    assert (config.model.name, config.train.epochs, config.train.batch_size) == ("resnet1d-ae", 50, 10)
    assert load_config(None, {"task": "cluster", "train.weights": "auto"}).train.epochs == 0
    assert load_config(None, {"task": "cluster", "data.kind": "images"}).model.name == "conv-ae"
    assert load_config(None, {}).model.name == "fcn"  # classification keeps its defaults
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: cluster\ncluster: {n_init: 0}\n")
    result = invoke("train", "-c", bad)
    assert result.exit_code == 2 and "bad.yaml: cluster.n_init: must be >= 1" in result.output
    result = invoke("train", "--dataset", "GunPoint", "--task", "clusters")
    assert result.exit_code == 2


def test_conv_autoencoder_shapes_and_parameters():
    model = build_model("conv-ae", (32, 32, 3), 10)
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    assert tuple(encoder.get_layer("features").output.shape) == (None, 8, 8, 64)
    assert tuple(encoder.output_shape) == (None, 10) and tuple(model.output_shape) == (None, 32, 32, 3)
    expected_encoder = (3 * 3 * 3 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (8 * 8 * 64 * 10 + 10)
    expected_decoder = (10 * 4096 + 4096) + (5 * 5 * 64 * 32 + 32) + (3 * 3 * 32 * 3 + 3)
    assert encoder.count_params() == expected_encoder and decoder.count_params() == expected_decoder
    with pytest.raises(CamkitError, match="divisible by 4"):
        build_model("conv-ae", (30, 32, 3), 10)


def read(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def gunpoint(tmp_path_factory, data_root):
    """GunPoint autoencoder trained 1 epoch as experiment ``gpc``, then explained with gradceam."""
    root = tmp_path_factory.mktemp("gpc")
    common = ["--dataset", "GunPoint", "--data-root", data_root, "--root", root, "--name", "gpc"]
    trained = ok("train", *common, "--task", "cluster", "--epochs", 1, "--no-progress")
    explained = ok("explain", "--method", "gradceam", "--experiment", "gpc", "--data-root", data_root,
                   "--root", root, "--no-progress")
    return root, common, trained.output, explained.output


def test_train_saves_the_clustering_and_reports_metrics(gunpoint, data_root):
    root, _, output, _ = gunpoint
    models, results = root / "models" / "gpc", root / "results" / "gpc"
    assert {"best.keras", "encoder.keras", "decoder.keras", "centroids.npy", "kmeans.json"} <= {
        p.name for p in models.iterdir()}
    centroids = np.load(models / "centroids.npy", allow_pickle=False)
    settings = read(models / "kmeans.json")
    assert centroids.shape == (2, 10) and settings["n_clusters"] == 2 and settings["n_init"] == 20
    encoder = keras.saving.load_model(models / "encoder.keras", compile=False)
    x_train = np.load(data_root / "GunPoint" / "x_train.npy")
    codes = encoder.predict(x_train, verbose=0).astype(np.float64)
    refit = KMeans(2, n_init=20, random_state=0).fit(codes)
    np.testing.assert_allclose(centroids, refit.cluster_centers_, rtol=1e-5, atol=1e-6)
    assert settings["inertia"] == pytest.approx(refit.inertia_, rel=1e-5)
    metrics = read(results / "cluster_metrics.json")
    y_train = np.load(data_root / "GunPoint" / "y_train.npy")
    expected = clustering_report(y_train, ((codes[:, None] - centroids[None]) ** 2).sum(-1).argmin(1))
    assert metrics["train"] == pytest.approx(expected, abs=1e-6)
    assert f"train   {expected['acc']:.4f}" in output and "test " in output


def test_reuse_with_weights_gives_the_same_clusters(gunpoint):
    root, common, _, _ = gunpoint
    models = root / "models" / "gpc"
    before = np.load(models / "centroids.npy")
    metrics = read(root / "results" / "gpc" / "cluster_metrics.json")
    result = ok("train", *common, "--task", "cluster", "--weights", "--no-progress")
    assert "reused" in result.output
    np.testing.assert_array_equal(np.load(models / "centroids.npy"), before)
    assert read(root / "results" / "gpc" / "cluster_metrics.json") == metrics
    evaluated = ok("evaluate", *common, "--task", "cluster")
    assert f"test    {metrics['test']['acc']:.4f}  {metrics['test']['nmi']:.4f}" in evaluated.output


def test_explain_writes_best_worst_and_centre_folders(gunpoint):
    root, _, _, output = gunpoint
    plots = root / "plots" / "gpc"
    saved = np.load(plots / "gradceam.npz")
    sizes = np.bincount(saved["assigned"], minlength=2)
    for k in range(2):
        shown = min(5, sizes[k])
        for kind, count in (("best", shown * 2), ("worst", shown * 2), ("centers", 2)):
            files = sorted(p.name for p in (plots / f"grad_test_{kind}{k}").iterdir())
            assert len(files) == count and all(f.endswith(".png") for f in files)
        nearest = saved[f"best_{k}"]
        distances = saved["distances"][:, k]
        members = np.flatnonzero(saved["assigned"] == k)
        np.testing.assert_array_equal(nearest, members[np.argsort(distances[members], kind="stable")][:5])
        assert (plots / f"grad_test_best{k}" / f"best0_test{nearest[0]}_centroid1.png").is_file()
    assert saved["maps"].shape == (len(saved["indices"]), 2, 150) and saved["guided"].shape[-1] == 1
    assert saved["maps"].min() >= 0 and saved["maps"].max() <= 1
    report = read(root / "results" / "gpc" / "faithfulness.json")
    np.testing.assert_allclose(np.sum(report["after"], axis=0), 1.0)
    np.testing.assert_allclose(report["before"], sizes / sizes.sum())
    assert "faithfulness at enc3_out" in output


def test_gradceam_needs_a_clustering_experiment(tmp_path, data_root):
    result = invoke("explain", "--method", "gradceam", "--dataset", "GunPoint", "--data-root", data_root)
    assert result.exit_code == 2 and "-c CONFIG or --experiment NAME" in result.output
    result = invoke("explain", "--method", "gradceam", "--experiment", "nothing", "--dataset", "GunPoint",
                    "--data-root", data_root, "--root", tmp_path)
    assert result.exit_code == 2 and "--experiment: no experiment named 'nothing'" in result.output
    (tmp_path / "models" / "classifier").mkdir(parents=True)  # a classifier experiment: no clustering
    build_model("fcn", (150, 1), 2).save(tmp_path / "models" / "classifier" / "best.keras")
    result = invoke("explain", "--method", "gradceam", "--experiment", "classifier", "--dataset", "GunPoint",
                    "--data-root", data_root, "--root", tmp_path)
    assert result.exit_code == 2 and "encoder.keras: not found; train the experiment with --task cluster" in \
        result.output


def test_image_clustering_with_the_conv_autoencoder(tmp_path, data_root):
    """A few cluttered digits of 2 classes at 32x32: train, k-means with 2 clusters, SVG figures."""
    for split in ("train", "test"):
        for digit in ("0", "1"):
            target = tmp_path / "digits" / split / digit
            target.mkdir(parents=True)
            for path in sorted((data_root / "cluttered_digits" / split / digit).iterdir())[:4]:
                shutil.copy(path, target)
    common = ["--dataset", tmp_path / "digits", "--root", tmp_path, "--name", "dig"]
    out = ok("train", *common, "--kind", "images", "--image-size", 32, "--task", "cluster", "--epochs", 1,
             "--no-progress").output
    assert "k-means, 2 clusters" in out
    assert np.load(tmp_path / "models" / "dig" / "centroids.npy").shape == (2, 10)
    ok("explain", "--method", "gradceam", "--experiment", "dig", "--root", tmp_path, "--format", "svg",
       "--no-progress")
    saved = np.load(tmp_path / "plots" / "dig" / "gradceam.npz")
    assert saved["maps"].shape[1:] == (2, 32, 32) and saved["guided"].shape[1:] == (2, 32, 32, 3)
    centers = sorted(p.name for p in (tmp_path / "plots" / "dig" / "grad_test_centers1").iterdir())
    assert centers == [f"center1_centroid{j}.svg" for j in range(2)]
    sizes = np.bincount(saved["assigned"], minlength=2)
    # per cluster: (best + worst members) x 2 centroids + its centre x 2 centroids
    assert len(list((tmp_path / "plots" / "dig").rglob("*.svg"))) == 2 * 2 * np.minimum(sizes, 5).sum() + 2 * 2
