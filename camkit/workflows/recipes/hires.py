"""High-Resolution CAM's two training stages and the half/full parity check.

Tagaris, Sdraka, Stafylopatis, "High-Resolution Class Activation Mapping for Discriminative Feature
Localization", ICIP 2019. Stage 1 trains ``densenet-half`` as an ordinary classifier (``camkit train
--model densenet-half``, the classify recipe). Stage 2 (:class:`HiresRecipe`, ``camkit train --model
densenet-full --half-weights HALF.keras``) builds ``densenet-full``, copies every layer it shares with the half model
(:func:`copy_and_freeze`), freezes them (``trainable = False``; a frozen BatchNormalization runs in inference
mode in Keras 3, so its moving statistics stay those of the half model) and trains the high-resolution branch
(``tr_up_1..``, ``dense_6..``, ``highres_features``, ``reconstruction``) to reconstruct the input image (MSE).

The classifier loss is **not** used in stage 2: the class scores depend only on frozen layers, so that loss has
a zero gradient for every trainable weight (the original adds it with the same effect). Its accuracy is still
logged (``classifier_accuracy``) as a sanity check. Inputs are rescaled to [0, 1] (``data.preprocess: rescale``),
which the original's README asks for but its code never did.

Parity: the full model must classify exactly as the half model. :func:`check_parity` compares argmax
predictions (a mismatch counts unless the half model's two best probabilities are within ``atol``: a tie) and
probabilities (``max |Δp| <= atol``) and raises a CamkitError otherwise. It runs on the test split at the end
of stage 2 (on up to :data:`TRAIN_END_PARITY_IMAGES` images, after an exact comparison of every shared weight)
and in ``camkit evaluate`` of a full model (the whole test split).

One config can run both stages: with a ``half:`` section and no ``train.half_weights``, :meth:`HiresRecipe.stages`
trains stage 1 first as the experiment ``<name>_half`` (``models/<name>_half/best.keras``; the section's keys
override ``train``), then stage 2 from it. With ``train.weights`` (resuming stage 2) that half model is reused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from camkit.config import ExperimentConfig, ModelConfig
from camkit.data.splits import Splits
from camkit.errors import CamkitError
from camkit.models import check_inputs
from camkit.models.densenet_fcn import shared_layer_names
from camkit.models.saving import check_model_file, load_model
from camkit.workflows.fit import FitResult, unknown_length_ok
from camkit.workflows.recipes.base import (
    EvalRun,
    TrainRun,
    build_configured,
    check_input_shape,
    register_recipe,
    resolve_batch_size,
)
from camkit.workflows.recipes.classify import ClassifyRecipe
from camkit.workflows.results import RunDirs, read_manifest

FULL = "densenet-full"
HALF = "densenet-half"
PARITY_ATOL = 1e-5
TRAIN_END_PARITY_IMAGES = 512


def is_full_model(model: keras.Model) -> bool:
    """True for a densenet-full model (it has the ``highres_features`` and ``classifier`` layers)."""
    names = {layer.name for layer in model.layers}
    return {"highres_features", "classifier", "conv_aux"} <= names


def half_weights_path(config: ExperimentConfig, root: Path = Path("."),
                      current: Callable[[Path], Path] = Path) -> Path:
    """The half model of a densenet-full experiment: ``train.half_weights``, else the one its training used
    (``current``: where a model file is now, for one still staged by this training's first stage)."""
    path = config.train.half_weights
    if path is None:
        path = read_manifest(RunDirs(config.name, root)).get("config", {}).get("train", {}).get("half_weights")
    if path is None:
        raise CamkitError("--half-weights: a densenet-full model starts from (and is checked against) a trained "
                          "densenet-half model; give its .keras file (train.half_weights)")
    check_model_file(current(Path(path)), f"--half-weights: {path}")
    return Path(path)


def load_half(path: Path, input_shape: tuple[int, ...], n_classes: int, name: Path | None = None) -> keras.Model:
    """Load the half model and check that it fits the data (input shape, classes) and is a densenet-half
    (``name``: the path the messages give, if ``path`` is where it is staged)."""
    half = load_model(path, compile=False, option="--half-weights")
    path = name or path
    names = {layer.name for layer in half.layers}
    if not {"conv_aux", "gap", "classifier"} <= names or "highres_features" in names:
        raise CamkitError(f"--half-weights: {path} is not a densenet-half model (conv_aux -> gap -> classifier)")
    if tuple(half.input_shape[1:]) != tuple(input_shape) or half.output_shape[-1] != n_classes:
        raise CamkitError(f"--half-weights: {path} takes {tuple(half.input_shape[1:])} inputs and has "
                          f"{half.output_shape[-1]} classes; the data give {tuple(input_shape)} and {n_classes}")
    return half


def copy_and_freeze(half: keras.Model, full: keras.Model) -> list[str]:
    """Copy every weighted layer of ``half`` into the same-named layer of ``full`` and freeze it there."""
    shared = shared_layer_names(half, full)
    missing = [layer.name for layer in half.layers if layer.weights and layer.name not in shared]
    if missing:
        raise CamkitError(f"--half-weights: layers {', '.join(missing[:5])} of the half model are not in the full "
                          "model; build both with the same model.options")
    for name in shared:
        try:
            full.get_layer(name).set_weights(half.get_layer(name).get_weights())
        except ValueError:
            raise CamkitError(f"--half-weights: layer {name} has other weight shapes in the half and the full model; "
                              "build both with the same model.options") from None
        full.get_layer(name).trainable = False
    return shared


def shared_weights_equal(half: keras.Model, full: keras.Model) -> list[str]:
    """Names of shared layers whose weights differ (exactly) between the two models; empty when all agree."""
    differ = []
    for name in shared_layer_names(half, full):
        pairs = zip(half.get_layer(name).get_weights(), full.get_layer(name).get_weights(), strict=True)
        if not all(np.array_equal(a, b) for a, b in pairs):
            differ.append(name)
    return differ


def class_probabilities(model: keras.Model, inputs: Any) -> np.ndarray:
    """Class probabilities of a half or full model (only the classifier output of a full model is computed)."""
    if len(model.outputs) > 1:
        model = keras.Model(model.inputs, model.get_layer("classifier").output)
    with unknown_length_ok():
        return np.asarray(model.predict(inputs, verbose=0), dtype=np.float32)


def check_parity(half_probs: np.ndarray, full_probs: np.ndarray, half_path: Path | str,
                 atol: float = PARITY_ATOL) -> dict[str, Any]:
    """Compare the two models' predictions; CamkitError (telling the user to retrain) when they differ."""
    if half_probs.shape != full_probs.shape:
        raise CamkitError(f"parity check: the half model gave {half_probs.shape} probabilities, the full model "
                          f"{full_probs.shape}")
    top2 = np.sort(half_probs, axis=1)[:, -2:] if half_probs.shape[1] > 1 else np.zeros((len(half_probs), 2))
    tie = (top2[:, 1] - top2[:, 0]) <= atol
    mismatched = int(np.sum((half_probs.argmax(1) != full_probs.argmax(1)) & ~tie))
    max_diff = float(np.abs(half_probs - full_probs).max()) if half_probs.size else 0.0
    if mismatched or max_diff > atol:
        raise CamkitError(
            f"parity check failed: the full model predicts {mismatched} of {len(half_probs)} images differently "
            f"from the half model {half_path} (max |p_full - p_half| = {max_diff:.3g} > {atol:g}); its shared "
            f"layers are not the half model's: retrain it with camkit train --model densenet-full --half-weights "
            f"{half_path}")
    return {"images": len(half_probs), "mismatched": mismatched, "max_abs_prob_diff": max_diff, "atol": atol,
            "half_weights": str(half_path)}


def parity_on_test(config: ExperimentConfig, data: Splits, full_probs: np.ndarray, batch_size: int,
                   root: Path = Path(".")) -> dict[str, Any]:
    """``camkit evaluate`` of a full model: the half model on the same test inputs, compared (see module doc)."""
    path = half_weights_path(config, root)
    half = load_half(path, data.input_shape, data.n_classes)
    return check_parity(class_probabilities(half, data.test_inputs(batch_size)), full_probs, path)


def parity_text(parity: dict) -> str:
    """One line on the densenet-full / densenet-half parity check (it raised if the models disagree)."""
    return (f"parity with {parity['half_weights']}: {parity['images']} test images, identical predictions, "
            f"max |p_full - p_half| = {parity['max_abs_prob_diff']:.2g}")


def _with_reconstruction_target(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
    return x, (y, x)


class HiresRecipe(ClassifyRecipe):
    """``model: densenet-full``: stage 2 from a trained half model (and stage 1 first with a ``half:`` section)."""

    name = "densenet-two-stage"
    loss: ClassVar[Any] = [None, "mse"]  # the classifier output is frozen: only the reconstruction is trained
    metrics: ClassVar[Any] = [["accuracy"], []]

    def matches(self, config: ExperimentConfig) -> bool:
        return config.model.name == FULL

    def stages(self, config: ExperimentConfig, root: Path) -> list[ExperimentConfig]:
        check_inputs(FULL, config.data.kind, Path(config.data.dataset).name)
        if config.train.half_weights is not None or config.half is None:
            return [config]
        half = dataclasses.replace(config, name=f"{config.name}_half", half=None, train=config.half.apply(config.train),
                                   model=ModelConfig(HALF, dict(config.model.options)))
        path = RunDirs(half.name, root).best_model
        full = dataclasses.replace(config, train=dataclasses.replace(config.train, half_weights=str(path)))
        return [full] if config.train.weights is not None else [half, full]

    def check(self, run: TrainRun) -> None:
        path = half_weights_path(run.config, run.root, run.current)
        run.state["half_path"] = path
        run.state["half"] = load_half(run.current(path), run.data.input_shape, run.data.n_classes, path)
        run.state["shared"] = []

    def check_model(self, run: TrainRun, model: keras.Model, culprit: str) -> None:
        check_input_shape(model, run.data.input_shape, run.data.name, culprit)
        if not is_full_model(model):
            raise CamkitError(f"{culprit}: not a densenet-full model (no highres_features, classifier and conv_aux "
                              "layers)")

    def build(self, run: TrainRun) -> keras.Model:
        full = build_configured(run.config, run.data)
        run.state["shared"].extend(copy_and_freeze(run.state["half"], full))
        return full

    def pairs(self, run: TrainRun, train_data: Any) -> Any:
        return train_data.map(_with_reconstruction_target)

    def after_fit(self, run: TrainRun, result: FitResult) -> dict[str, Any]:
        half, half_path, full = run.state["half"], run.state["half_path"], result.model
        differ = shared_weights_equal(half, full)
        if differ:
            raise CamkitError(f"parity check failed: shared layers {', '.join(differ[:5])} changed during training; "
                              f"retrain with --half-weights {half_path}")
        sample = run.data.test_inputs(run.batch_size).unbatch().take(TRAIN_END_PARITY_IMAGES).batch(run.batch_size)
        parity = check_parity(class_probabilities(half, sample), class_probabilities(full, sample), half_path)
        return {"trainable_parameters": int(sum(np.prod(w.shape) for w in full.trainable_weights)),
                "frozen_layers": len(run.state["shared"]) or None, "half_weights": str(half_path), "parity": parity}

    def classifier(self, model: keras.Model) -> keras.Model:
        if is_full_model(model):  # [classifier, reconstruction]: only the class scores are needed
            return keras.Model(model.inputs, model.get_layer("classifier").output)
        return super().classifier(model)

    def report_extras(self, run: EvalRun, model: keras.Model, probabilities: np.ndarray) -> dict[str, Any]:
        if not is_full_model(model):
            return {}
        batch_size = resolve_batch_size(run.config, run.data)
        return {"parity": parity_on_test(run.config, run.data, probabilities, batch_size, run.root)}


register_recipe(HiresRecipe())
