"""Experiment commands: train, evaluate, run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from camkit.cli.app import main
from camkit.cli.options import config_option, experiment_options


def _config(config_path: Path | None, kw: dict[str, Any]):
    from camkit.config import load_config

    image_size = kw.pop("image_size")
    overrides = {
        "name": kw.pop("name"),
        "data.dataset": kw.pop("dataset"),
        "data.kind": kw.pop("kind"),
        "data.root": kw.pop("data_root"),
        "data.znorm": kw.pop("znorm"),
        "data.image_size": [image_size, image_size] if image_size else None,
        "model.name": kw.pop("model"),
        "train.epochs": kw.pop("epochs"),
        "train.batch_size": kw.pop("batch_size"),
        "train.learning_rate": kw.pop("learning_rate"),
        "train.seed": kw.pop("seed"),
        "train.strategy": kw.pop("strategy"),
        "train.weights": kw.pop("weights"),
        "train.half_weights": kw.pop("half_weights"),
        "model.options.weights": kw.pop("weights_file"),
        "task": kw.pop("task"),
    }
    if config_path is None and overrides["name"] is None and overrides["data.dataset"]:
        default_model = "cluster" if overrides["task"] == "cluster" else "fcn"
        overrides["name"] = f"{Path(overrides['data.dataset']).name}_{overrides['model.name'] or default_model}"
    return load_config(config_path, overrides)


def parity_text(parity: dict) -> str:
    """One line on the densenet-full / densenet-half parity check (it raised if the models disagree)."""
    return (f"parity with {parity['half_weights']}: {parity['images']} test images, identical predictions, "
            f"max |p_full - p_half| = {parity['max_abs_prob_diff']:.2g}")


@main.command()
@config_option
@experiment_options
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train(config_path: Path | None, root: Path, no_progress: bool, **kw: Any) -> None:
    """Train a model and keep the best epoch.

    \b
    Example:
      camkit train -c configs/gunpoint_fcn.yaml --epochs 300
      camkit train --dataset ItalyPowerDemand --model fcn --epochs 200 --seed 1
      camkit train -c configs/hires_digits_full.yaml --half-weights models/hires_digits_half/best.keras
    """
    from camkit.workflows.experiment import train_experiment

    summary = train_experiment(_config(config_path, kw), root, progress=not no_progress)
    if summary["epochs"] == 0:
        click.echo(f"reused {summary['resumed_from']} as it is (0 epochs)")
    else:
        click.echo(f"trained {summary['model']} on {summary['dataset']}: {summary['epochs']} epochs in "
                   f"{summary['train_wall_time_s']:.1f} s, best epoch {summary['best_epoch']}")
    if "parity" in summary:
        click.echo(parity_text(summary["parity"]))
    click.echo(f"model: {summary['model_path']}")
    if "clustering" in summary:
        click.echo(f"k-means, {summary['kmeans']['n_clusters']} clusters on the latent codes:")
        click.echo(summary["clustering"]["text"])
        click.echo(f"metrics: {summary['clustering']['metrics_path']}")


@main.command()
@config_option
@experiment_options
@click.option("--model-path", type=click.Path(path_type=Path), help="A .keras file (default: the experiment's).")
def evaluate(config_path: Path | None, root: Path, model_path: Path | None, **kw: Any) -> None:
    """Accuracy, macro/micro precision/recall/F1 and a confusion matrix on the test split.

    \b
    Example:
      camkit evaluate -c configs/gunpoint_fcn.yaml
      camkit evaluate --dataset GunPoint --model-path models/gunpoint_fcn/best.keras
    """
    from camkit.workflows.experiment import evaluate_experiment

    report = evaluate_experiment(_config(config_path, kw), root, model_path=model_path)
    click.echo(report["text"])
    if "parity" in report:
        click.echo(parity_text(report["parity"]))
    click.echo(f"metrics: {report.get('metrics_path') or root / 'results' / report['experiment'] / 'metrics.json'}")
    if "confusion_matrix_png" in report:
        click.echo(f"figure: {report['confusion_matrix_png']}")


@main.command()
@click.argument("config_path", type=click.Path(path_type=Path))
@experiment_options
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(config_path: Path, root: Path, no_progress: bool, **kw: Any) -> None:
    """Run a config's whole experiment (its `steps`: train, evaluate, ...).

    \b
    Example:
      camkit run configs/gunpoint_fcn.yaml
    """
    from camkit.workflows.experiment import run_experiment

    config = _config(config_path, kw)
    outputs = run_experiment(config, root, progress=not no_progress)
    if "train" in outputs:
        t = outputs["train"]
        click.echo(f"trained {t['model']} on {t['dataset']}: {t['epochs']} epochs, {t['train_wall_time_s']:.1f} s")
    if "evaluate" in outputs:
        click.echo(outputs["evaluate"]["text"])
        if "parity" in outputs["evaluate"]:
            click.echo(parity_text(outputs["evaluate"]["parity"]))
    click.echo(f"outputs: {root / 'results' / config.name}, {root / 'models' / config.name}, "
               f"{root / 'plots' / config.name}")
