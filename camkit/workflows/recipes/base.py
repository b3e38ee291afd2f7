"""What a training recipe is, and the registry that picks one for a config.

The skeleton (:mod:`camkit.workflows.train`) resolves the data, the weights to resume, the batch size and the
seed, writes the manifest, fits and writes the summary; a :class:`Recipe` supplies what differs between kinds
of experiment: which stages to train, the model, the training pairs, the loss, what follows the fit and how
the trained experiment is evaluated. :func:`recipe_for` returns the first registered recipe whose
:meth:`Recipe.matches` accepts the config, else the fallback recipe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import keras

from camkit.config import ExperimentConfig
from camkit.data.splits import Splits
from camkit.data.timeseries import default_batch_size
from camkit.errors import CamkitError
from camkit.models import build_model, model_builder
from camkit.workflows.fit import FitResult, num_replicas
from camkit.workflows.results import RunDirs, Staging


@dataclass
class TrainRun:
    """One experiment being trained: its config, folders, data, the model it resumes from, its batch size.

    ``dirs`` are the staging folders it writes once training starts; ``state`` holds what a recipe keeps
    between its steps (e.g. the half model of a High-res CAM stage 2).
    """

    config: ExperimentConfig
    root: Path
    dirs: RunDirs
    data: Splits
    resume: Path | None = None
    batch_size: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    staging: Staging | None = None

    def current(self, path: Path) -> Path:
        """Where a model file is now: an earlier stage of this training may have written it (still staged)."""
        return self.staging.current(path) if self.staging is not None else path


@dataclass
class EvalRun:
    """One experiment being evaluated: its config, folders and data, and where its model comes from."""

    config: ExperimentConfig
    root: Path
    dirs: RunDirs
    data: Splits
    model_path: Path | None = None
    model: keras.Model | None = None


class Recipe(ABC):
    """One kind of experiment: a subclass says which configs it is for, builds the model and evaluates it, and
    overrides the other steps where they differ (the defaults train a classifier on the data as they come)."""

    name = "recipe"
    loss: ClassVar[Any] = "sparse_categorical_crossentropy"
    metrics: ClassVar[Any] = None  # None: accuracy for the default loss

    @abstractmethod
    def matches(self, config: ExperimentConfig) -> bool:
        """Whether this recipe trains and evaluates ``config``."""

    def stages(self, config: ExperimentConfig, root: Path) -> list[ExperimentConfig]:
        """The experiments to train, in order; the last is ``config`` itself (possibly completed)."""
        return [config]

    def check(self, run: TrainRun) -> None:
        """User errors found before any folder is made (default: an unknown model name)."""
        model_builder(run.config.model.name)

    def check_model(self, run: TrainRun, model: keras.Model, culprit: str) -> None:
        """CamkitError (starting with ``culprit``) unless ``model`` (built, or resumed from a file) fits the data."""
        check_input_shape(model, run.data.input_shape, run.data.name, culprit)

    def validates(self, config: ExperimentConfig) -> bool:
        """Whether fitting holds out ``train.validation_split`` (so ``val_*`` monitors exist)."""
        return False

    def batch_size(self, run: TrainRun) -> int:
        """The training batch size (see :func:`resolve_batch_size`)."""
        return resolve_batch_size(run.config, run.data, num_replicas(run.config.train.strategy))

    @abstractmethod
    def build(self, run: TrainRun) -> keras.Model:
        """A new, untrained model."""

    def pairs(self, run: TrainRun, train_data: Any) -> Any:
        """What the model fits: ``train_data`` (``(x, y)`` arrays or a dataset of them) as the loss needs it."""
        return train_data

    def after_fit(self, run: TrainRun, result: FitResult) -> dict[str, Any]:
        """Work after fitting; returns the keys it adds to ``train_metrics.json``."""
        return {}

    @abstractmethod
    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        """The evaluation report of a trained experiment (written under ``results/<exp>/``)."""


def resolve_batch_size(config: ExperimentConfig, data: Splits, replicas: int = 1) -> int:
    """The configured batch size, or ``min(N/10, 16)`` as the FCN papers use.

    Training on several ``replicas`` (mirrored strategy) needs a global batch that splits evenly (Keras 3
    builds the model from the mean of the first batch's per-replica parts and fails on unequal ones): the
    default is rounded up to a multiple of ``replicas``, an explicit ``--batch-size`` that is not one is an error.
    """
    if config.train.batch_size:
        if config.train.batch_size % replicas:
            raise CamkitError(f"--batch-size {config.train.batch_size}: the mirrored strategy has {replicas} "
                              f"replicas; use a multiple of {replicas}")
        return config.train.batch_size
    size = default_batch_size(len(data.y_train))
    return -(-size // replicas) * replicas


def build_configured(config: ExperimentConfig, data: Splits, name: str | None = None) -> keras.Model:
    """``build_model`` of the configured model (or ``name``) for the data, with ``model.options``."""
    name = name or config.model.name
    try:
        return build_model(name, data.input_shape, data.n_classes, **config.model.options)
    except TypeError as exc:  # a model option the builder does not take
        if "unexpected keyword argument" not in str(exc):
            raise
        raise CamkitError(f"model.options: {name} does not take {str(exc).split('argument')[-1].strip()}") from None


def check_input_shape(model: keras.Model, shape: tuple[int, ...], dataset: str, culprit: str = "--model-path") -> None:
    """CamkitError unless the model takes inputs of ``shape`` (``None`` dimensions take any size)."""
    expected = tuple(model.input_shape[1:])
    if len(expected) != len(shape) or any(e is not None and e != d for e, d in zip(expected, shape, strict=True)):
        raise CamkitError(f"{culprit}: the model expects inputs {expected} but {dataset} gives {shape}")


_RECIPES: list[Recipe] = []
_FALLBACK: list[Recipe] = []


def register_recipe(recipe: Recipe, *, fallback: bool = False) -> Recipe:
    """Add a recipe; ``fallback``: the one used when no other matches (one at most)."""
    if any(r.name == recipe.name for r in _RECIPES + _FALLBACK):
        raise ValueError(f"a recipe named {recipe.name!r} is already registered")
    if fallback:
        if _FALLBACK:
            raise ValueError(f"the fallback recipe is already {_FALLBACK[0].name!r}")
        _FALLBACK.append(recipe)
    else:
        _RECIPES.append(recipe)
    return recipe


def recipe_for(config: ExperimentConfig) -> Recipe:
    """The first registered recipe that matches ``config``, else the fallback."""
    for recipe in _RECIPES:
        if recipe.matches(config):
            return recipe
    if not _FALLBACK:
        raise CamkitError(f"no training recipe for task {config.task!r} and model {config.model.name!r}")
    return _FALLBACK[0]


def recipe_names() -> list[str]:
    """Registered recipes, the fallback last."""
    return [r.name for r in _RECIPES + _FALLBACK]
