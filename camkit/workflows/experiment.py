"""Experiments end to end: train, evaluate, and ``run`` a config's steps in order."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from camkit.config import ExperimentConfig
from camkit.data.splits import Splits, load_data
from camkit.data.timeseries import default_batch_size
from camkit.errors import CamkitError
from camkit.io import atomic_write_json
from camkit.metrics.classification import classification_report, format_report
from camkit.models import build_model, model_builder
from camkit.models.saving import load_model
from camkit.plots import confusion_matrix_figure, save_figure
from camkit.workflows.fit import fit_classifier, make_strategy, num_replicas, unknown_length_ok
from camkit.workflows.results import RunDirs, write_manifest


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


def _weights_path(config: ExperimentConfig, dirs: RunDirs) -> Path | None:
    weights = config.train.weights
    if weights is None:
        return None
    path = dirs.best_model if weights == "auto" else Path(weights)
    if not path.is_file():
        raise CamkitError(f"--weights: {path} does not exist")
    return path


def train_experiment(config: ExperimentConfig, root: Path = Path("."), progress: bool = True) -> dict:
    """Train the configured model; write the best model, CSV log, metrics JSON and manifest."""
    if config.task == "cluster":
        from camkit.workflows.clustering import train_clusters

        return train_clusters(config, root, progress)
    if config.model.name == "densenet-full":  # High-res CAM stage 2: from a trained densenet-half
        from camkit.workflows.hires import train_full_experiment

        return train_full_experiment(config, root, progress)
    dirs = RunDirs(config.name, root)
    data = load_data(config.data)
    resume = _weights_path(config, dirs)
    model_builder(config.model.name)  # an unknown name fails here, before any folder is made
    if config.train.epochs == 0 and resume is None:
        raise CamkitError("--epochs 0 needs --weights: there is nothing to reuse")
    validates = config.train.validation_split > 0 and config.data.kind == "timeseries"
    if config.train.monitor.startswith("val_") and not validates:
        raise CamkitError(f"train.monitor: {config.train.monitor!r} needs a validation split "
                          "(train.validation_split > 0, time series only)")
    batch_size = resolve_batch_size(config, data, num_replicas(config.train.strategy))
    dirs.ensure()  # only once the options are known to be usable
    keras.utils.set_random_seed(config.train.seed)
    write_manifest(dirs, config.to_dict(), status="training", batch_size=batch_size)

    def build() -> keras.Model:
        name = config.model.name
        try:
            model = build_model(name, data.input_shape, data.n_classes, **config.model.options)
        except TypeError as exc:  # a model option the builder does not take
            if "unexpected keyword argument" not in str(exc):
                raise
            raise CamkitError(f"model.options: {name} does not take {str(exc).split('argument')[-1].strip()}") from None
        if len(model.outputs) != 1 or tuple(model.output_shape[1:]) != (data.n_classes,):
            raise CamkitError(f"--model {name}: its output {model.output_shape} is not one probability per class "
                              f"of {data.name} ({data.n_classes}); it cannot be trained as a classifier")
        return model

    train = config.train
    result = fit_classifier(
        build, data.train_data(batch_size, train.seed), epochs=train.epochs, best_path=dirs.best_model,
        log_path=dirs.results / "train_log.csv", learning_rate=train.learning_rate, monitor=train.monitor,
        reduce_lr=(train.reduce_lr_factor, train.reduce_lr_patience, train.min_lr), strategy=train.strategy,
        validation_split=train.validation_split, batch_size=batch_size, resume_from=resume, progress=progress,
        optimizer=train.optimizer,
    )
    trained = result.epochs_run > 0  # epochs 0 reuses --weights: no best epoch (and NaN is not JSON)
    summary = {
        "experiment": config.name,
        "dataset": data.name,
        "model": config.model.name,
        "parameters": int(result.model.count_params()),
        "epochs": result.epochs_run,
        "batch_size": batch_size,
        "best_epoch": result.best_epoch + 1 if trained else None,
        f"best_{train.monitor}": result.best_value if trained else None,
        "final": {k: v[-1] for k, v in result.history.items()},
        "train_wall_time_s": round(result.wall_time_s, 2),
        "resumed_from": str(resume) if resume else None,
        "model_path": str(dirs.best_model),
    }
    atomic_write_json(dirs.results / "train_metrics.json", summary)
    write_manifest(dirs, config.to_dict(), status="trained", batch_size=batch_size,
                   train_wall_time_s=summary["train_wall_time_s"])
    return summary


def evaluate_experiment(config: ExperimentConfig, root: Path = Path("."), model_path: Path | None = None,
                        model: keras.Model | None = None) -> dict:
    """Classification report of the experiment's best model (or ``model_path``) on the test split."""
    if config.task == "cluster":
        from camkit.workflows.clustering import evaluate_clusters

        return evaluate_clusters(config, root)
    dirs = RunDirs(config.name, root)
    data = load_data(config.data)
    if model is None:
        model = load_model(model_path or dirs.best_model, compile=False)
    expected = tuple(model.input_shape[1:])
    if len(expected) != len(data.input_shape) or any(
            e is not None and e != d for e, d in zip(expected, data.input_shape, strict=True)):
        raise CamkitError(f"--model-path: the model expects inputs {expected} but {data.name} gives {data.input_shape}")
    start = time.perf_counter()
    full = len(model.outputs) > 1 and "highres_features" in {layer.name for layer in model.layers}
    if full:  # densenet-full: [classifier, reconstruction]; only the class scores are needed
        model = keras.Model(model.inputs, model.get_layer("classifier").output)
    with unknown_length_ok():
        probabilities = model.predict(data.test_inputs(resolve_batch_size(config, data)), verbose=0)
    predict_s = time.perf_counter() - start
    if probabilities.shape[-1] != data.n_classes:
        raise CamkitError(
            f"--model-path: the model has {probabilities.shape[-1]} outputs "
            f"but {data.name} has {data.n_classes} classes"
        )
    parity = None
    if full:  # it must classify exactly as the half model it was built from (raises otherwise)
        from camkit.workflows.hires import parity_on_test

        parity = parity_on_test(config, data, probabilities, resolve_batch_size(config, data), root)
    dirs.ensure()
    y_pred = np.argmax(probabilities, axis=-1)
    report = classification_report(data.y_test, y_pred, data.n_classes)
    report.update(experiment=config.name, dataset=data.name, labels=data.labels, predict_wall_time_s=predict_s,
                  model_path=str(model_path or dirs.best_model))
    if parity is not None:
        report["parity"] = parity
    atomic_write_json(dirs.results / "metrics.json", report)
    figure = confusion_matrix_figure(report["confusion_matrix"], data.labels,
                                     title=f"{data.name} — accuracy {report['accuracy']:.3f}")
    report["confusion_matrix_png"] = str(save_figure(figure, dirs.plots / "confusion_matrix.png"))
    report["text"] = format_report(report)
    return report


def run_experiment(config: ExperimentConfig, root: Path = Path("."), progress: bool = True) -> dict:
    """Run the config's ``steps`` in order; returns each step's summary."""
    make_strategy(config.train.strategy)  # fail early on a bad strategy, before any step runs
    outputs: dict = {}
    for step in config.steps:
        if step == "train":
            outputs["train"] = train_experiment(config, root, progress)
        elif step == "evaluate":
            outputs["evaluate"] = evaluate_experiment(config, root)
    return outputs
