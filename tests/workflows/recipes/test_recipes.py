"""The recipe registry and the training skeleton: which recipe a config gets, and a new recipe plugging in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import camkit.workflows.recipes.base as base
from camkit.config import load_config
from camkit.workflows.fit import FitResult
from camkit.workflows.recipes import TrainRun, recipe_for, recipe_names, register_recipe
from camkit.workflows.recipes.classify import ClassifyRecipe
from camkit.workflows.train import fit_settings, train_experiment


def test_each_config_gets_its_recipe():
    assert recipe_names() == ["cluster", "densenet-two-stage", "classify"]  # the fallback last
    cases = [({}, "classify"), ({"task": "cluster"}, "cluster"),
             ({"model.name": "densenet-full"}, "densenet-two-stage"), ({"model.name": "densenet-half"}, "classify"),
             ({"task": "cluster", "data.kind": "images"}, "cluster")]
    for overrides, name in cases:
        assert recipe_for(load_config(None, overrides)).name == name, overrides


def test_fit_settings_come_from_train_and_the_recipe():
    config = load_config(None, {"train.validation_split": 0.25, "train.reduce_lr_patience": 7, "train.epochs": 3})
    settings = fit_settings(config, recipe_for(config), batch_size=5)
    assert (settings.epochs, settings.validation_split, settings.batch_size) == (3, 0.25, 5)
    assert settings.reduce_lr == (0.5, 7, 1e-4) and settings.loss == "sparse_categorical_crossentropy"
    images = load_config(None, {"train.validation_split": 0.25, "data.kind": "images"})
    assert fit_settings(images, recipe_for(images), 5).validation_split == 0.0  # a dataset is not split
    cluster = load_config(None, {"task": "cluster"})
    assert fit_settings(cluster, recipe_for(cluster), 10).loss == "mse"


class CountingRecipe(ClassifyRecipe):
    """A classifier that also reports how many weight arrays it trained (only for experiments named probe*)."""

    name = "counting"

    def matches(self, config) -> bool:
        return config.name.startswith("probe")

    def after_fit(self, run: TrainRun, result: FitResult) -> dict[str, Any]:
        return {"weight_arrays": len(result.model.get_weights())}


def test_a_new_recipe_plugs_into_the_skeleton(monkeypatch, tmp_path: Path, data_root: Path):
    monkeypatch.setattr(base, "_RECIPES", list(base._RECIPES))
    register_recipe(CountingRecipe())
    with pytest.raises(ValueError, match="already registered"):
        register_recipe(CountingRecipe())
    with pytest.raises(ValueError, match="fallback recipe is already 'classify'"):
        register_recipe(type("Other", (ClassifyRecipe,), {"name": "other"})(), fallback=True)
    config = load_config(None, {"name": "probe", "data.root": str(data_root), "train.epochs": 1})
    summary = train_experiment(config, tmp_path, progress=False)
    saved = json.loads((tmp_path / "results" / "probe" / "train_metrics.json").read_text())
    assert summary["weight_arrays"] == saved["weight_arrays"] == 3 * (2 + 4) + 2  # 3 x (conv 2 + BN 4), Dense
    assert saved["epochs"] == 1 and saved["batch_size"] == 5 and np.isfinite(saved["best_loss"])
