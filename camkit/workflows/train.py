"""Train and evaluate an experiment: the shared steps, with what differs delegated to its recipe.

Training: the recipe's stages in order (usually one); each resolves its data, the weights it resumes from
(``train.weights``: ``auto`` is its own ``models/<exp>/best.keras``) and its batch size, checks the options
before any folder is made, seeds, writes the manifest (``status: training``), fits (best epoch to
``best.keras``, per-epoch ``train_log.csv``), lets the recipe finish, and writes ``train_metrics.json`` and
the manifest (``status: trained``). The summary of the last stage is returned; earlier ones under ``stages``.
Every stage writes into staging folders (:func:`camkit.workflows.results.staged_runs`) that replace the
experiments' own folders only once all stages have finished, so a failed or interrupted training leaves the
earlier runs as they were (and a resumed one reads the earlier model while it trains).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from camkit.config import ExperimentConfig
from camkit.data.splits import load_data
from camkit.errors import CamkitError
from camkit.io import atomic_write_json
from camkit.models import check_inputs
from camkit.models.saving import check_model_file
from camkit.workflows.fit import FitResult, FitSettings, fit_classifier
from camkit.workflows.recipes import EvalRun, Recipe, TrainRun, recipe_for
from camkit.workflows.results import RunDirs, Staging, check_run_dirs, find_experiment, staged_runs, write_manifest


def train_experiment(config: ExperimentConfig, root: Path = Path("."), progress: bool = True) -> dict[str, Any]:
    """Train the configured experiment (all its recipe's stages); the last stage's summary."""
    stages = recipe_for(config).stages(config, root)
    check_run_dirs([stage.name for stage in stages], root)
    with staged_runs(root) as staging:
        summaries = [_train_stage(stage, root, staging, progress) for stage in stages]
        summary = summaries[-1]
        if len(summaries) > 1:
            summary["stages"] = summaries[:-1]
            atomic_write_json(staging.runs[-1].results / "train_metrics.json", summary)
    return summary


def evaluate_experiment(config: ExperimentConfig, root: Path = Path("."), model_path: Path | None = None,
                        model: keras.Model | None = None) -> dict[str, Any]:
    """The recipe's report of the experiment's best model (or ``model_path``, or ``model``) on its data."""
    if model_path is None and model is None:
        find_experiment(config.name, root, option="--name")  # its own model: a trained experiment
    run = EvalRun(config, root, RunDirs(config.name, root), load_data(config.data), model_path, model)
    return recipe_for(config).evaluate(run)


def weights_path(config: ExperimentConfig, dirs: RunDirs) -> Path | None:
    """The model ``train.weights`` resumes from (``auto``: the experiment's own best model), checked to exist."""
    weights = config.train.weights
    if weights is None:
        return None
    path = dirs.final.best_model if weights == "auto" else Path(weights)
    check_model_file(path, f"--weights: {path}")
    return path


def fit_settings(config: ExperimentConfig, recipe: Recipe, batch_size: int) -> FitSettings:
    """The fit loop's settings from ``train`` and the recipe's loss."""
    train = config.train
    return FitSettings(
        epochs=train.epochs, learning_rate=train.learning_rate, monitor=train.monitor,
        reduce_lr=(train.reduce_lr_factor, train.reduce_lr_patience, train.min_lr), strategy=train.strategy,
        validation_split=train.validation_split if recipe.validates(config) else 0.0, batch_size=batch_size,
        optimizer=train.optimizer, loss=recipe.loss, metrics=recipe.metrics)


def _prepared_run(config: ExperimentConfig, root: Path, recipe: Recipe, staging: Staging) -> TrainRun:
    """Data, resume path, recipe checks and batch size; every user error is raised before a folder is made."""
    check_inputs(config.model.name, config.data.kind, Path(config.data.dataset).name)
    dirs = RunDirs(config.name, root)
    run = TrainRun(config, root, dirs, load_data(config.data), staging=staging)
    run.resume = weights_path(config, dirs)
    recipe.check(run)
    if config.train.epochs == 0 and run.resume is None:
        raise CamkitError("--epochs 0 needs --weights: there is nothing to reuse")
    if config.train.monitor.startswith("val_") and not recipe.validates(config):
        raise CamkitError(f"train.monitor: {config.train.monitor!r} needs a validation split "
                          "(train.validation_split > 0, time series only)")
    run.batch_size = recipe.batch_size(run)
    return run


def _train_stage(config: ExperimentConfig, root: Path, staging: Staging, progress: bool) -> dict[str, Any]:
    recipe = recipe_for(config)
    run = _prepared_run(config, root, recipe, staging)
    dirs = run.dirs = staging.dirs(config.name)  # only once the options are known to be usable
    keras.utils.set_random_seed(config.train.seed)
    write_manifest(dirs, config.to_dict(), status="training", batch_size=run.batch_size)
    result = fit_classifier(lambda: recipe.build(run), recipe.pairs(run, run.data.train_data(run.batch_size,
                                                                                          config.train.seed)),
                            fit_settings(config, recipe, run.batch_size), best_path=dirs.best_model,
                            log_path=dirs.results / "train_log.csv", resume_from=run.resume, progress=progress,
                            check=lambda model: recipe.check_model(run, model, f"--weights: {run.resume}"))
    summary = {**_summary(run, result), **recipe.after_fit(run, result)}
    atomic_write_json(dirs.results / "train_metrics.json", summary)
    write_manifest(dirs, config.to_dict(), status="trained", batch_size=run.batch_size,
                   train_wall_time_s=summary["train_wall_time_s"])
    return summary


def _summary(run: TrainRun, result: FitResult) -> dict[str, Any]:
    config = run.config
    trained = result.epochs_run > 0  # epochs 0 reuses --weights: no best epoch (and NaN is not JSON)
    return {
        "experiment": config.name,
        "dataset": run.data.name,
        "model": config.model.name,
        "parameters": int(result.model.count_params()),
        "epochs": result.epochs_run,
        "batch_size": run.batch_size,
        "best_epoch": result.best_epoch + 1 if trained else None,
        f"best_{config.train.monitor}": result.best_value if trained else None,
        "final": {k: v[-1] for k, v in result.history.items()},
        "train_wall_time_s": round(result.wall_time_s, 2),
        "resumed_from": str(run.resume) if run.resume else None,
        "model_path": str(run.dirs.final.best_model),
    }
