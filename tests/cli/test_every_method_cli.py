"""Every registered classifier method runs from the CLI: ``camkit explain`` on series and images, and a whole-folder
run scored by ``eval-localization``. The cases come from ``camkit.methods()`` and each method's metadata (its
``input_kinds`` and ``quick_options``), never from a list of names; the maps must equal ``camkit.explain``'s.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from helpers import digit_folder, ok

import camkit
from camkit.data.images import load_images
from camkit.methods import method_class

L = keras.layers


def plain(kind: str) -> list[str]:
    """Methods that explain any classifier with ``kind`` inputs (no required builder, no clustering)."""
    return [m for m in camkit.methods() if method_class(m).task == "classify"
            and method_class(m).requires_model is None and kind in method_class(m).input_kinds]


def option_args(method: str) -> list[str]:
    """``-o KEY=VALUE`` for the method's quick options and every variant (values as YAML, as the CLI reads them)."""
    pairs = {**method_class(method).quick_options, **method_class(method).all_variants}.items()
    return [a for key, value in pairs for a in ("-o", f"{key}={yaml.safe_dump(value, default_flow_style=True)}"
                                                .strip().removesuffix("...").strip())]


def small_model(shape: tuple[int, ...], n_classes: int) -> keras.Model:
    """conv (ReLU) -> conv (ReLU) -> GAP -> softmax Dense, 1-D or 2-D, seeded."""
    keras.utils.set_random_seed(3)
    conv, gap = (L.Conv1D, L.GlobalAveragePooling1D) if len(shape) == 2 else (L.Conv2D, L.GlobalAveragePooling2D)
    inputs = keras.Input(shape)
    x = conv(6, 5, strides=2, padding="same", activation="relu", name="conv1")(inputs)
    x = gap(name="gap")(conv(8, 3, padding="same", activation="relu", name="conv2")(x))
    return keras.Model(inputs, L.Dense(n_classes, activation="softmax", name="predictions")(x))


@pytest.fixture(scope="module")
def files(tmp_path_factory, data_root) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("every")
    small_model((150, 1), 2).save(base / "series.keras")
    small_model((64, 64, 3), 3).save(base / "images.keras")
    digit_folder(data_root, base / "digits", ("0", "1", "2"), 2)
    return {"base": base, "digits": base / "digits", "xml": Path(data_root) / "cluttered_digits" / "annotations" /
            "test"}


def check_maps(maps: np.ndarray, direct: np.ndarray, atol: float = 1e-4) -> None:
    assert maps.dtype == np.float32 and maps.min() >= 0 and maps.max() <= 1 and maps.max() > 0
    np.testing.assert_allclose(maps, direct, atol=atol)


@pytest.mark.parametrize("method", plain("series"))
def test_explain_series(method, files, data_root) -> None:
    out = files["base"] / f"series_{method}"
    ok("explain", "--model-path", files["base"] / "series.keras", "--dataset", "GunPoint", "--data-root", data_root,
       "--method", method, "--n-images", 3, "--save-dir", out, "--no-progress", *option_args(method))
    with np.load(out / "explanation.npz") as npz:
        npz = dict(npz)
    x = camkit.load_timeseries("GunPoint", data_root).x_test[:3]
    direct = camkit.explain(keras.models.load_model(files["base"] / "series.keras"), x, method=method,
                            **method_class(method).quick_options, **method_class(method).all_variants)
    assert str(npz["method"]) == method and npz["maps"].shape == (3, 150)
    check_maps(npz["maps"], direct.maps)
    assert (out / "series_grid.png").stat().st_size > 0


@pytest.mark.parametrize("method", plain("images"))
def test_folder_run_and_localization(method, files) -> None:
    out = files["base"] / f"loc_{method}"
    ok("eval-localization", "--model-path", files["base"] / "images.keras", "--images", files["digits"],
       "--annotations", files["xml"], "--method", method, "--batch-size", 4, "--out", out, "--root", files["base"],
       "--target", "top1,true", "--n-figures", 0, "--no-progress", *option_args(method))
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    names = list(method_class(method).variants) or [method]
    assert sorted(summary["variants"]) == sorted(names)
    assert len(rows) == 6 * len(names) and all(0 <= float(r["iou"]) <= 1 for r in rows if r.get("iou"))
    x = np.concatenate([b[0] for b in load_images(files["digits"]).dataset((64, 64), batch_size=6)])
    direct = camkit.explain(keras.models.load_model(files["base"] / "images.keras"), x, method=method,
                            **method_class(method).quick_options, **method_class(method).all_variants)
    stored = {name: [] for name in names}
    for path in sorted((files["base"] / "plots" / "images" / f"explain_{method}" / "batches").glob("batch_*.npz")):
        with np.load(path) as batch:
            assert list(batch["columns"]) == ["top1", "true"]
            for name in names:
                stored[name].append(batch[f"maps_{name}"][:, 0].astype(np.float32))
    for name in names:  # the stored top-1 maps (float16) are camkit.explain's
        check_maps(np.concatenate(stored[name]), direct.variants.get(name, direct.maps), atol=1e-3)
