"""Experiment commands: train, evaluate, run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from camkit.cli.app import main
from camkit.cli.options import config_option, experiment_options

if TYPE_CHECKING:
    from camkit.config import ExperimentConfig

def _config(config_path: Path | None, kw: dict[str, Any]) -> ExperimentConfig:
    from camkit.config import load_config
    from camkit.workflows.run import step_names

    image_size = kw.pop("image_size")
    overrides = {
        "name": kw.pop("name"),
        "data.dataset": kw.pop("dataset"),
        "data.kind": kw.pop("kind"),
        "data.root": kw.pop("data_root"),
        "data.znorm": kw.pop("znorm"),
        "data.image_size": None if image_size is None else [image_size, image_size],
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
    return load_config(config_path, overrides, known_steps=step_names())


def _train_lines(summary: dict[str, Any]) -> list[str]:
    """What ``camkit train`` prints about a training summary."""
    from camkit.workflows.recipes.hires import parity_text

    lines = [f"trained {s['model']} on {s['dataset']}: {s['epochs']} epochs in {s['train_wall_time_s']:.1f} s, "
             f"best epoch {s['best_epoch']}" for s in summary.get("stages", [])]
    if summary["epochs"] == 0:
        lines.append(f"reused {summary['resumed_from']} as it is (0 epochs)")
    else:
        lines.append(f"trained {summary['model']} on {summary['dataset']}: {summary['epochs']} epochs in "
                     f"{summary['train_wall_time_s']:.1f} s, best epoch {summary['best_epoch']}")
    if "parity" in summary:
        lines.append(parity_text(summary["parity"]))
    lines.append(f"model: {summary['model_path']}")
    if "clustering" in summary:
        lines += [f"k-means, {summary['kmeans']['n_clusters']} clusters on the latent codes:",
                  summary["clustering"]["text"], f"metrics: {summary['clustering']['metrics_path']}"]
    return lines


def _evaluate_lines(report: dict[str, Any], root: Path) -> list[str]:
    """What ``camkit evaluate`` prints about an evaluation report."""
    from camkit.workflows.recipes.hires import parity_text

    lines = [report["text"]]
    if "parity" in report:
        lines.append(parity_text(report["parity"]))
    lines.append(f"metrics: {report.get('metrics_path') or root / 'results' / report['experiment'] / 'metrics.json'}")
    if "confusion_matrix_png" in report:
        lines.append(f"figure: {report['confusion_matrix_png']}")
    return lines


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
      camkit train -c configs/hires_digits.yaml     # both High-res CAM stages
    """
    from camkit.workflows.train import train_experiment

    summary = train_experiment(_config(config_path, kw), root, progress=not no_progress)
    click.echo("\n".join(_train_lines(summary)))


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
    from camkit.workflows.train import evaluate_experiment

    report = evaluate_experiment(_config(config_path, kw), root, model_path=model_path)
    click.echo("\n".join(_evaluate_lines(report, root)))


@main.command()
@click.argument("config_path", type=click.Path(path_type=Path))
@experiment_options
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(config_path: Path, root: Path, no_progress: bool, **kw: Any) -> None:
    """Run a config's whole experiment: its `steps` (train, evaluate, explain, eval-localization) in order,
    each with the options of its own section of the config.

    \b
    Example:
      camkit run configs/gunpoint_fcn.yaml
      camkit run configs/gunpoint_cluster.yaml     (Grad-CeAM: train, clusters, best/worst/centre figures)
      camkit run configs/augmented_digits.yaml     (Augmented Grad-CAM: train, whole-folder maps, localization)
    """
    from camkit.workflows.run import run_experiment

    config = _config(config_path, kw)
    for step in run_experiment(config, root, progress=not no_progress):
        for line in step.lines:
            click.echo(line)
    click.echo(f"outputs: {root / 'results' / config.name}, {root / 'models' / config.name}, "
               f"{root / 'plots' / config.name}")
