"""``camkit explain``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from camkit.cli.app import main
from camkit.cli.options import GreedyIntsCommand, config_option, method_options, parse_ints

SOURCE_KEYS = ("experiment", "dataset", "images", "data_root", "split", "preprocess", "image_size", "labels",
               "imagenet_labels", "root")


@main.command(cls=GreedyIntsCommand)
@click.option("--model-path", type=click.Path(path_type=Path), help="A .keras/.h5 model file.")
@config_option
@click.option("--experiment", help="Experiment NAME: its model ROOT/models/NAME/best.keras (and dataset).")
@click.option("--dataset", help="Time-series dataset name under --data-root, or a folder.")
@click.option("--images", type=click.Path(path_type=Path), help="An image file, a flat folder or class folders.")
@click.option("--data-root", help="Where datasets live (default data/).")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="Which split of --dataset.")
@click.option("--method", help="Attribution method (default gradcam; see camkit.methods()).")
@click.option("--layer", help="Layer name, 'outer/inner' path, or -N (N-th conv from the end).")
@click.option("--layer-backcount", "layer_backcount", metavar="N [N ...]",
              help="Conv layer(s) counted from the end, 1 = last; several: the first image at each layer.")
@click.option("--n-images", help="How many images or series to explain (default 8), or all: a whole image folder "
                                  "or series split batch by batch into SAVE_DIR/batches/ (the default for methods "
                                  "that stream, e.g. augmented-gradcam).")
@click.option("--target", help="predicted (default), lowest, topK (e.g. top3), a class index, true (the class "
                               "folder or series label) or a comma list (top5,true).")
@click.option("--option", "-o", "option", multiple=True, metavar="KEY=VALUE",
              help="A method option, repeatable (e.g. -o n_augment=100 -o aggregate=all).")
@click.option("--shard", metavar="I/N", help="Whole-folder runs: compute only batches b with b mod N = I (0 <= I < N).")
@click.option("--n-figures", type=int, default=8, show_default=True, help="Whole-folder runs: figures for the first "
                                                                          "this many images or series.")
@click.option("--overwrite", is_flag=True, help="Whole-folder runs: replace an earlier run with other settings in "
                                                "SAVE_DIR (default: refuse; same settings resume).")
@click.option("--labels", "labels", type=click.Path(path_type=Path), help="Class names: {0: 'cat', ...}, one a line "
                                                                          "or a synset file.")
@click.option("--imagenet-labels", is_flag=True, help="Use the 1000 ImageNet class names.")
@click.option("--image-size", type=int, help="Square input size (default: the model's input size).")
@click.option("--preprocess", type=click.Choice(["rescale", "vgg16", "none"]),
              help="Image preprocessing (default: the experiment's, else rescale to [0, 1]).")
@click.option("--layout", type=click.Choice(["viewer", "notebook"]),
              help="Image figures: viewer (top-1..3 + lowest) or notebook (input | CAM | guided backprop | "
                   "guided Grad-CAM; the default for guided methods).")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Samples per gradient step.")
@click.option("--save-dir", type=click.Path(path_type=Path), help="Output folder (default "
                                                                  "ROOT/plots/<exp>/explain_<method>/).")
@click.option("--show", is_flag=True, help="Also open the figures in a window after saving them.")
@click.option("--root", default=".", show_default=True, type=click.Path(path_type=Path),
              help="Where results/, models/ and plots/ are.")
@click.option("--format", "fmt", type=click.Choice(["png", "pdf", "svg"]), default="png", show_default=True,
              help="Figure file format.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def explain(model_path: Path | None, config_path: Path | None, layer_backcount: Any, no_progress: bool,
            option: tuple[str, ...], **kw: Any) -> None:
    """Class activation maps of a model: one explanation.npz and figures.

    \b
    --layer-backcount N [N ...] counts conv layers from the end (1 = last), as the Grad-CAM viewer's
    --conv2d_backcount; several values explain the first image at each layer (layer_N.png).

    \b
    Example:
      camkit explain -c configs/gunpoint_fcn.yaml --method gradcam++
      camkit explain -c configs/gunpoint_cluster.yaml --method gradceam   (clusters: best/worst/centres)
      camkit explain --model-path vgg.keras --images photos/ --imagenet-labels --n-images 3
      camkit explain --model-path vgg.keras --images photos/ --layer-backcount 1 3 4 --labels labels.txt
      camkit explain --model-path vgg.keras --images val/ --method augmented-gradcam -o aggregate=all --shard 0/4
    """
    from camkit.workflows.explain import explain_to_dir
    from camkit.workflows.plan import ExplainPlan
    from camkit.workflows.sources import SourceSpec

    source = SourceSpec(model=model_path, config=config_path, **{k: kw.pop(k) for k in SOURCE_KEYS})
    method = {"method": kw.pop("method")} if kw.get("method") else {}
    kw.pop("method", None)
    plan = ExplainPlan(source=source, layer_backcount=parse_ints(layer_backcount, "--layer-backcount"),
                       progress=False if no_progress else None, options=method_options(option), **method, **kw)
    for line in explain_to_dir(plan).lines():
        click.echo(line)
