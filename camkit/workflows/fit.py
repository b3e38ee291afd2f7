"""Fit a classifier: seeding, distribution strategy, best-model keeping, CSV log, progress bar."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from camkit.errors import CamkitError
from camkit.models.saving import load_model, save_model


def make_strategy(name: str) -> tf.distribute.Strategy | None:
    """``None`` for the default strategy; ``mirrored`` mirrors over all GPUs, else all logical CPUs."""
    if name == "default":
        return None
    if name != "mirrored":
        raise CamkitError(f"--strategy: unknown strategy {name!r}; choose default or mirrored")
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices=devices)


def num_replicas(name: str) -> int:
    """How many replicas ``make_strategy(name)`` trains on (1 for the default strategy)."""
    if name != "mirrored":
        return 1
    return len(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))


@contextmanager
def unknown_length_ok() -> Iterator[None]:
    """Silence Keras' "input ran out of data" warning: an image dataset has unknown cardinality (it skips
    unreadable files), so every epoch or prediction pass ends when it runs out, as expected."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        yield


def strategy_scope(strategy: tf.distribute.Strategy | None) -> Any:
    return strategy.scope() if strategy is not None else nullcontext()


class KeepBest(keras.callbacks.Callback):
    """Track the best epoch of ``monitor`` (lower is better unless it names an accuracy), keep its
    weights in memory and save them atomically at most every ``every_s`` seconds and at the end."""

    def __init__(self, path: Path, monitor: str, every_s: float = 30.0) -> None:
        super().__init__()
        self.path, self.monitor, self.every_s = path, monitor, every_s
        self.sign = -1.0 if "acc" in monitor else 1.0
        self.best = np.inf
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] | None = None
        self._saved_epoch = -1
        self._last_save = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise CamkitError(f"train.monitor: {self.monitor!r} is not logged; logged: {', '.join(logs or {})}")
        if self.sign * float(value) < self.best:
            self.best, self.best_epoch = self.sign * float(value), epoch
            self.best_weights = [w.copy() for w in self.model.get_weights()]
        if self.best_epoch != self._saved_epoch and time.monotonic() - self._last_save > self.every_s:
            self._save()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._save()

    def _save(self) -> None:
        if self.best_weights is None:
            return
        current = self.model.get_weights()
        self.model.set_weights(self.best_weights)
        save_model(self.model, self.path)
        self.model.set_weights(current)
        self._saved_epoch, self._last_save = self.best_epoch, time.monotonic()


class EpochBar(keras.callbacks.Callback):
    """One tqdm bar over epochs showing the latest logs (Keras' own bar is per step)."""

    def __init__(self, epochs: int, initial: int = 0, disable: bool = False) -> None:
        super().__init__()
        self.bar = tqdm(total=epochs, initial=initial, desc="train", unit="epoch", disable=disable,
                        leave=True, dynamic_ncols=True)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in (logs or {}).items() if k != "learning_rate"})
        self.bar.update(1)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.bar.close()


@dataclass
class FitResult:
    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int
    best_value: float
    wall_time_s: float
    epochs_run: int


@dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_classifier` compiles and fits (one field per ``model.compile`` / ``model.fit`` choice).

    ``optimizer`` (adam | adadelta), ``loss`` and ``metrics`` go to ``model.compile`` (``loss="mse"`` trains an
    autoencoder on ``(x, x)`` pairs; ``metrics=None``: accuracy for the default loss, none otherwise).
    ``reduce_lr`` is ReduceLROnPlateau's ``(factor, patience, min_lr)``; ``validation_split`` and
    ``batch_size`` apply to array inputs only (a dataset comes batched).
    """

    epochs: int
    learning_rate: float = 1e-3
    monitor: str = "loss"
    reduce_lr: tuple[float, int, float] = (0.5, 50, 1e-4)
    strategy: str = "default"
    validation_split: float = 0.0
    batch_size: int | None = None
    optimizer: str = "adam"
    loss: Any = "sparse_categorical_crossentropy"
    metrics: Any = None


def fit_classifier(build: Callable[[], keras.Model], train_data: Any, settings: FitSettings, *, best_path: Path,
                   log_path: Path, resume_from: Path | None = None, progress: bool = True,
                   check: Callable[[keras.Model], None] | None = None) -> FitResult:
    """Compile and fit; ``train_data`` is ``(x, y)`` arrays or a batched ``tf.data.Dataset``.

    ``resume_from`` continues from a saved model (its optimizer state included), which ``check`` vets (a
    CamkitError if it does not fit the data); with ``epochs=0`` the saved model is reused as it is. The best
    epoch by ``settings.monitor`` is saved to ``best_path`` and the per-epoch log to ``log_path`` (CSV, renamed
    into place at the end).
    """
    model = _compiled_model(build, settings, resume_from, check)
    if settings.epochs == 0:
        if resume_from is None:
            raise CamkitError("--epochs 0 needs --weights: there is nothing to reuse")
        save_model(model, best_path)
        return FitResult(model, {}, -1, float("nan"), 0.0, 0)

    factor, patience, min_lr = settings.reduce_lr
    keep = KeepBest(best_path, settings.monitor)
    partial_log = log_path.with_name(log_path.name + ".partial")
    callbacks = [  # KeepBest first: it names a monitor that is not logged
        keep,
        keras.callbacks.ReduceLROnPlateau(monitor=settings.monitor, factor=factor, patience=patience, min_lr=min_lr,
                                          mode="max" if keep.sign < 0 else "min"),
        keras.callbacks.CSVLogger(str(partial_log)),
        EpochBar(settings.epochs, disable=not progress),
    ]
    x, y = (train_data, None) if isinstance(train_data, tf.data.Dataset) else train_data
    start = time.perf_counter()
    with unknown_length_ok():
        history = model.fit(x, y, epochs=settings.epochs, batch_size=None if y is None else settings.batch_size,
                            validation_split=settings.validation_split if y is not None else 0.0,
                            callbacks=callbacks, verbose=0, shuffle=y is not None)  # a dataset comes shuffled
    wall = time.perf_counter() - start
    partial_log.replace(log_path)
    if keep.best_weights is not None:
        model.set_weights(keep.best_weights)
    return FitResult(model, {k: [float(v) for v in vs] for k, vs in history.history.items()},
                     keep.best_epoch, keep.sign * keep.best, wall, settings.epochs)


def _compiled_model(build: Callable[[], keras.Model], settings: FitSettings, resume_from: Path | None,
                    check: Callable[[keras.Model], None] | None) -> keras.Model:
    """A fresh model from ``build`` or the saved one (checked, its optimizer kept), compiled under the strategy."""
    with strategy_scope(make_strategy(settings.strategy)):
        if resume_from is not None:
            model = load_model(resume_from, compile=True, option="--weights")
            if check is not None:
                check(model)
            if model.optimizer is None or not model.compiled:
                _compile(model, settings)
        else:
            model = build()
            _compile(model, settings)
    return model


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam, or Adadelta (rho 0.95, epsilon 1e-7 as Keras 2's; give learning_rate 1.0 for Keras 2's default)."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adadelta":
        return keras.optimizers.Adadelta(learning_rate, rho=0.95, epsilon=1e-7)
    raise CamkitError(f"train.optimizer: unknown optimizer {name!r}; choose adam or adadelta")


def _compile(model: keras.Model, settings: FitSettings) -> None:
    metrics = settings.metrics
    if metrics is None:
        metrics = ["accuracy"] if settings.loss == "sparse_categorical_crossentropy" else []
    model.compile(optimizer=make_optimizer(settings.optimizer, settings.learning_rate), loss=settings.loss,
                  metrics=list(metrics) if isinstance(metrics, tuple) else metrics)
