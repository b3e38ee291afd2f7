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
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default data/<name with _>, with _mv "
                                                              "for --channels > 1); replaced atomically.")
@click.option("--n-train", type=int, help="Training images or series (cluttered-digits: 3000, planted-patterns: "
                                          "1000).")
@click.option("--n-test", type=int, help="Test images or series (cluttered-digits: 500, planted-patterns: 300).")
@click.option("--n-pairs", type=int, help="cluttered-digits: images of two digits of different classes, each stored "
                                          "under both class folders of pairs/ (250; 0: no pairs split).")
@click.option("--size", type=int, help="Image side in pixels (cluttered-digits: 64).")
@click.option("--length", type=int, help="Series length (planted-patterns: 256).")
@click.option("--channels", type=int, help="Series channels (planted-patterns: 1; more: the pattern sits in one).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def make_benchmark(name: str, seed: int, out: Path | None, no_progress: bool, **options: int | None) -> None:
    """Build benchmark NAME: cluttered-digits (images, VOC boxes) or planted-patterns (series, intervals).

    \b
    Example:
      camkit make-benchmark cluttered-digits --seed 0 --out data/cluttered_digits
      camkit make-benchmark cluttered-digits --seed 1 --out /tmp/cd --n-train 5000 --n-test 1000 --size 96
      camkit make-benchmark planted-patterns --seed 0                                # data/planted_patterns
      camkit make-benchmark planted-patterns --seed 0 --channels 3 --n-train 2000    # data/planted_patterns_mv
    """
    from camkit.data.benchmark import describe
    from camkit.data.benchmark import make_benchmark as build

    out = out or Path("data") / (name.replace("-", "_") + ("_mv" if (options["channels"] or 1) > 1 else ""))
    given = {key: value for key, value in options.items() if value is not None}
    info = build(name, out, seed=seed, progress=not no_progress, **given)
    click.echo(describe(name, info, out))


@main.command()
def models() -> None:
    """List the model builders."""
    from camkit.models import model_names

    click.echo("\n".join(model_names()))
