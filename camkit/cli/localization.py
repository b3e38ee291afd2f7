"""``camkit eval-localization``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from camkit.cli.app import main
from camkit.cli.options import config_option, method_options

if TYPE_CHECKING:
    pass


@main.command("eval-localization")
@click.option("--maps", type=click.Path(path_type=Path), help="The folder of a `camkit explain --n-images all` run.")
@click.option("--method", help="Compute the maps with this method instead (into plots/<exp>/explain_<method>/).")
@click.option("--model-path", type=click.Path(path_type=Path), help="With --method: a .keras model file.")
@config_option
@click.option("--experiment", help="With --method: experiment NAME (its model and image dataset).")
@click.option("--images", type=click.Path(path_type=Path), help="With --method: the images (default: the "
                                                                 "experiment's test split).")
@click.option("--annotations", type=click.Path(path_type=Path), help="Ground truth: a folder of VOC XML files or a "
              "CSV (default: DATASET/annotations/test); series: an interval CSV (default: DATASET/intervals_test.csv).")
@click.option("--data-root", help="Where datasets live (default data/).")
@click.option("--imagenet", is_flag=True, help="ImageNet classes: Keras order, WNID labels, CLS-LOC submission ids.")
@click.option("--synsets", type=click.Path(path_type=Path), help="The model's classes as WNIDs, one a line.")
@click.option("--clsloc", type=click.Path(path_type=Path), help="WNID -> submission id table (map_clsloc.txt).")
@click.option("--skip", type=click.Path(path_type=Path), help="Images to leave out: 1-based indices or ids.")
@click.option("--threshold", type=float, help="Box threshold, a fraction of the map max (0.20 CAM, else 0.15).")
@click.option("--tolerance", type=float, help="Pointing game: how far the map's peak may lie from the box, in "
                                             "pixels of the annotated image (default 15; series: samples, 0).")
@click.option("--target", help="With --method: map columns (default top5,true; augmented-gradcam top1,true).")
@click.option("--option", "-o", "option", multiple=True, metavar="KEY=VALUE", help="A method option, repeatable.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per batch file.")
@click.option("--image-size", type=int, help="Square input size (default: the model's).")
@click.option("--preprocess", type=click.Choice(["rescale", "vgg16", "none"]), help="Image preprocessing.")
@click.option("--shard", metavar="I/N", help="Only batches b with b mod N = I; the summary once all are there.")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default results/<exp>/"
                                                             "localization_<method>/ or MAPS/localization/).")
@click.option("--overwrite", is_flag=True, help="Replace earlier maps / evaluations made with other settings "
                                                "(default: refuse; same settings resume).")
@click.option("--n-figures", type=int, default=8, show_default=True, help="Figures with the boxes (the guess and "
              "the ground truth) for this many images; with --method also the maps folder's figures.")
@click.option("--root", default=".", show_default=True, type=click.Path(path_type=Path),
              help="Where results/, models/ and plots/ are.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def eval_localization(model_path: Path | None, config_path: Path | None, option: tuple[str, ...], no_progress: bool,
                      **kw: Any) -> None:
    """Weak localization: top-1/top-5 localization error, GT-known accuracy, MaxBoxAcc, pointing game.

    Images are scored against boxes, series against one interval per series (sample,label,start,end[,channel]).

    \b
    Example:
      camkit eval-localization -c configs/cluttered_digits_cnn.yaml --method gradcam
      camkit eval-localization -c configs/planted_fcn.yaml --method gradcam
      camkit eval-localization --maps plots/vgg/explain_augmented-gradcam --annotations val_xml/ --imagenet \\
          --skip blacklist.txt
    """
    from camkit.workflows import localization as workflow

    source = workflow.MapsSource(model=model_path, config=config_path, options=method_options(option),
                        **{k: kw.pop(k) for k in ("maps", "method", "experiment", "images", "data_root", "target",
                                                  "batch_size", "image_size", "preprocess")})
    files = workflow.TruthFiles(**{k: kw.pop(k) for k in ("annotations", "imagenet", "synsets", "clsloc", "skip")})
    result = workflow.eval_localization(source, files, workflow.EvalRun(progress=False if no_progress else None, **kw))
    for line in workflow.result_lines(result):
        click.echo(line)
