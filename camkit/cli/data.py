"""Data commands: convert-sktime, make-benchmark, models."""

from __future__ import annotations

from pathlib import Path

import click

from camkit.cli.app import main


@main.command("convert-sktime")
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--sktime-dataset", help="A classification dataset that sktime ships, e.g. GunPoint.")
@click.option("--out", "out_root", default="data", show_default=True, type=click.Path(path_type=Path),
              help="Folder that receives NAME/.")
@click.option("--name", help="Dataset name (default: from the .ts file names).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT/NAME that holds a different dataset.")
def convert_sktime(source: Path | None, sktime_dataset: str | None, out_root: Path, name: str | None,
                   overwrite: bool) -> None:
    """Convert NAME_TRAIN.ts/NAME_TEST.ts (SOURCE: a folder or either file) to data/NAME/*.npy.

    An OUT/NAME that already holds the same conversion is left as it is; a different one only with --overwrite.

    \b
    Example:
      camkit convert-sktime --sktime-dataset GunPoint
      camkit convert-sktime downloads/JapaneseVowels/ --out data
    """
    from camkit.data.timeseries import convert_ts, load_timeseries

    folder, written = convert_ts(source, out_root, sktime_dataset=sktime_dataset, name=name, overwrite=overwrite)
    ds = load_timeseries(folder)
    padded = ", zero-padded at the end" if ds.info.get("padding") else ""
    click.echo(f"{'wrote' if written else 'unchanged'} {folder}: train {ds.x_train.shape}, test {ds.x_test.shape}, "
               f"{ds.n_classes} classes {ds.labels}{padded}")


@main.command("make-benchmark")
@click.argument("name", metavar="NAME")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: the same seed, the same bytes.")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default data/<name with _>); "
                                                              "replaced atomically.")
@click.option("--n-train", type=int, default=3000, show_default=True, help="Training images.")
@click.option("--n-test", type=int, default=500, show_default=True, help="Test images.")
@click.option("--size", type=int, default=64, show_default=True, help="Image side in pixels.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def make_benchmark(name: str, seed: int, out: Path | None, n_train: int, n_test: int, size: int,
                   no_progress: bool) -> None:
    """Build benchmark NAME (cluttered-digits) from data that ships with scikit-learn.

    \b
    Example:
      camkit make-benchmark cluttered-digits --seed 0 --out data/cluttered_digits
      camkit make-benchmark cluttered-digits --seed 1 --out /tmp/cd --n-train 5000 --n-test 1000 --size 96
    """
    from camkit.data.benchmark import make_benchmark as build

    out = out or Path("data") / name.replace("-", "_")
    info = build(name, out, seed=seed, n_train=n_train, n_test=n_test, size=size, progress=not no_progress)
    click.echo(f"wrote {out}: {info['n_train']} train / {info['n_test']} test {info['size']}x{info['size']} images "
               f"of {len(info['classes'])} classes with VOC boxes (seed {info['seed']})")


@main.command()
def models() -> None:
    """List the model builders."""
    from camkit.models import model_names

    click.echo("\n".join(model_names()))
