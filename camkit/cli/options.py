"""Click pieces the ``camkit`` commands share: experiment options, method options, greedy integer lists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from camkit.errors import CamkitError

config_option = click.option("--config", "-c", "config_path", type=click.Path(path_type=Path),
                             help="Experiment YAML (configs/*.yaml); options override its keys.")


def experiment_options(command: Callable) -> Callable:
    """Options shared by train, evaluate and run: each overrides one config key."""
    options = [
        click.option("--name", "name", help="Experiment name: results/NAME, models/NAME, plots/NAME."),
        click.option("--dataset", help="Dataset name under --data-root, or a folder."),
        click.option("--kind", type=click.Choice(["timeseries", "images"]), help="Dataset kind."),
        click.option("--data-root", help="Where datasets live (default data/)."),
        click.option("--znorm/--no-znorm", default=None, help="Z-normalise each series."),
        click.option("--image-size", type=click.IntRange(min=1), help="Square input size for image datasets."),
        click.option("--model", help="Model builder name (see `camkit models`)."),
        click.option("--epochs", type=click.IntRange(min=0), help="Training epochs (0 with --weights: reuse as is)."),
        click.option("--batch-size", type=click.IntRange(min=1), help="Batch size (default min(N/10, 16))."),
        click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True),
                     help="Learning rate (of train.optimizer, default Adam)."),
        click.option("--seed", type=click.IntRange(0, 2**32 - 1), help="Random seed."),
        click.option("--strategy", type=click.Choice(["default", "mirrored"]), help="tf.distribute strategy."),
        click.option("--weights", is_flag=False, flag_value="auto",
                     help="Resume from a .keras file; alone: the experiment's own models/NAME/best.keras."),
        click.option("--task", type=click.Choice(["classify", "cluster"]),
                     help="classify, or cluster: autoencoder + k-means on its latent codes (Grad-CeAM)."),
        click.option("--half-weights", help="densenet-full: the trained densenet-half .keras model whose layers it "
                                            "copies and freezes (and that evaluate checks it against)."),
        click.option("--weights-file", help="Pretrained weights for the model builder (model.options.weights): "
                                            "a VGG16 .h5 file, or imagenet."),
        click.option("--root", default=".", show_default=True, type=click.Path(path_type=Path),
                     help="Where results/, models/ and plots/ go."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


class GreedyIntsCommand(click.Command):
    """Lets ``--layer-backcount 1 3 4`` take several values, as the Grad-CAM viewer's option does."""

    greedy = ("--layer-backcount",)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(args):
            out.append(args[i])
            if args[i] in self.greedy:
                values = []
                while i + 1 < len(args) and args[i + 1].replace(",", "").isdigit():
                    values.append(args[i + 1])
                    i += 1
                if values:
                    out.append(",".join(values))
            i += 1
        return super().parse_args(ctx, out)


def parse_ints(text: str | None, option: str) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise CamkitError(f"{option}: expected positive integers, got {text!r}") from None


def method_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs -> a dict; values are read as YAML (100 -> int, 0.5 -> float, [max, avg] -> list)."""
    return key_values(pairs, "--option", "KEY=VALUE (e.g. n_augment=100)", str.isidentifier)


def metric_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``METRIC.KEY=VALUE`` pairs -> ``{"METRIC.KEY": value}``, values read as YAML (``road.percentiles=[10,50]``)."""
    def qualified(key: str) -> bool:
        name, dot, option = key.rpartition(".")
        return bool(dot and name) and option.isidentifier()

    return key_values(pairs, "--metric-option", "METRIC.KEY=VALUE (e.g. road.percentiles=[10,50,90])", qualified)


def key_values(pairs: tuple[str, ...], option: str, expected: str, valid_key: Callable[[str], bool]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs of ``option`` -> a dict, values read as YAML; a key must pass ``valid_key``."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not valid_key(key.strip()):
            raise CamkitError(f"{option}: expected {expected}, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise CamkitError(f"{option} {key}: cannot read the value {value!r}") from None
    return out
