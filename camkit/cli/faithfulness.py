"""``camkit eval-faithfulness``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from camkit.cli.app import main
from camkit.cli.options import config_option, method_options, metric_options


@main.command("eval-faithfulness")
@click.option("--maps", type=click.Path(path_type=Path), help="The folder of a `camkit explain --n-images all` run.")
@click.option("--method", help="Compute the maps with this method instead (into plots/<exp>/explain_<method>/).")
@click.option("--model-path", type=click.Path(path_type=Path), help="A .keras model file (default: the maps' own).")
@config_option
@click.option("--experiment", help="With --method: experiment NAME (its model and data).")
@click.option("--images", type=click.Path(path_type=Path), help="With --method: the images (default: the "
                                                                 "experiment's test split).")
@click.option("--data-root", help="Where datasets live (default data/).")
@click.option("--metric", help="Metrics, a comma list (default all): deletion, insertion, average-drop, ...")
@click.option("--steps", type=click.IntRange(min=1),
              help="Deletion / insertion steps (default 100 for images, T for series).")
@click.option("--baseline", type=click.Choice(["zero", "mean", "blur"]),
              help="What removed positions become (default: deletion zero, insertion blur).")
@click.option("--metric-option", "metric_option", multiple=True, metavar="METRIC.KEY=VALUE",
              help="One metric's option, repeatable: road.percentiles=[10,50,90], randomization.layers=2, ...")
@click.option("--n-images", type=click.IntRange(min=1), help="With --method: only the first N samples (default all).")
@click.option("--column", default="top1", show_default=True, help="The map column scored (top1, true, ...).")
@click.option("--target", help="With --method: map columns to compute (default top1 and --column).")
@click.option("--option", "-o", "option", multiple=True, metavar="KEY=VALUE", help="A method option, repeatable.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Samples per batch file.")
@click.option("--image-size", type=int, help="Square input size (default: the model's).")
@click.option("--preprocess", type=click.Choice(["rescale", "vgg16", "none"]), help="Image preprocessing.")
@click.option("--shard", metavar="I/N", help="Only batches b with b mod N = I; the summary once all are there.")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default results/<exp>/"
                                                             "faithfulness_<method>/ or MAPS/faithfulness/).")
@click.option("--overwrite", is_flag=True, help="Replace earlier maps / evaluations made with other settings "
                                                "(default: refuse; same settings resume).")
@click.option("--n-figures", type=int, default=8, show_default=True,
              help="With --method: the maps folder's figures; 0: no figures at all.")
@click.option("--root", default=".", show_default=True, type=click.Path(path_type=Path),
              help="Where results/, models/ and plots/ are.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def eval_faithfulness(model_path: Path | None, config_path: Path | None, option: tuple[str, ...],
                      metric_option: tuple[str, ...], no_progress: bool, steps: int | None, baseline: str | None,
                      **kw: Any) -> None:
    """Faithfulness: deletion, insertion, Average Drop / Increase / Gain, ROAD, MuFidelity, randomisation.

    \b
    Example:
      camkit eval-faithfulness -c configs/gunpoint_fcn.yaml --method gradcam
      camkit eval-faithfulness --maps plots/cluttered_digits_cnn/explain_gradcam --metric deletion,insertion
    """
    from camkit.workflows import faithfulness as workflow
    from camkit.workflows.localization import MapsSource

    source = MapsSource(model=model_path, config=config_path, options=method_options(option),
                        **{k: kw.pop(k) for k in ("maps", "method", "experiment", "images", "data_root", "target",
                                                  "batch_size", "image_size", "preprocess")})
    options = {"steps": steps, "baseline": baseline, **metric_options(metric_option)}
    run = workflow.FaithRun(options=options, progress=False if no_progress else None, **kw)
    result = workflow.eval_faithfulness(source, run)
    for line in workflow.result_lines(result):
        click.echo(line)
