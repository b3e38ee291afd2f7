"""The ``camkit`` command: each subcommand parses its options and calls the library."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

from pathlib import Path
from typing import Any

import click

from camkit.cli_options import GreedyIntsCommand, experiment_options, method_options, parse_ints
from camkit.errors import CamkitError


class UserError(click.ClickException):
    """A CamkitError shown as ``Error: <one line>`` with exit code 2."""

    exit_code = 2


class CamkitGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CamkitError as exc:
            raise UserError(str(exc)) from None


@click.group(cls=CamkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="camkit")
def main() -> None:
    """camkit: train CNNs, explain them with class activation maps, measure and plot the maps."""


@main.command("convert-sktime")
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--sktime-dataset", help="A classification dataset that sktime ships, e.g. GunPoint.")
@click.option("--out", "out_root", default="data", show_default=True, type=click.Path(path_type=Path),
              help="Folder that receives NAME/.")
@click.option("--name", help="Dataset name (default: from the .ts file names).")
def convert_sktime(source: Path | None, sktime_dataset: str | None, out_root: Path, name: str | None) -> None:
    """Convert NAME_TRAIN.ts/NAME_TEST.ts (SOURCE: a folder or either file) to data/NAME/*.npy.

    \b
    Example:
      camkit convert-sktime --sktime-dataset GunPoint
      camkit convert-sktime downloads/JapaneseVowels/ --out data
    """
    from camkit.data.timeseries import convert_ts, load_timeseries

    folder = convert_ts(source, out_root, sktime_dataset=sktime_dataset, name=name)
    ds = load_timeseries(folder)
    padded = ", zero-padded at the end" if ds.info.get("padding") else ""
    click.echo(f"wrote {folder}: train {ds.x_train.shape}, test {ds.x_test.shape}, "
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


config_option = click.option("--config", "-c", "config_path", type=click.Path(path_type=Path),
                             help="Experiment YAML (configs/*.yaml); options override its keys.")


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
    from camkit.experiment import train_experiment

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
    from camkit.experiment import evaluate_experiment

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
    from camkit.experiment import run_experiment

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


@main.command(cls=GreedyIntsCommand)
@click.option("--model-path", type=click.Path(path_type=Path), help="A .keras/.h5 model file.")
@config_option
@click.option("--experiment", help="Experiment NAME: its model ROOT/models/NAME/best.keras (and dataset).")
@click.option("--dataset", help="Time-series dataset name under --data-root, or a folder.")
@click.option("--images", type=click.Path(path_type=Path), help="An image file, a flat folder or class folders.")
@click.option("--data-root", help="Where datasets live (default data/).")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="Which split of --dataset.")
@click.option("--method", default="gradcam", show_default=True, help="Attribution method (see camkit.methods()).")
@click.option("--layer", help="Layer name, 'outer/inner' path, or -N (N-th conv from the end).")
@click.option("--layer-backcount", "layer_backcount", metavar="N [N ...]",
              help="Conv layer(s) counted from the end, 1 = last; several: the first image at each layer.")
@click.option("--n-images", help="How many images or series to explain (default 8), or all: a whole image folder "
                                  "batch by batch into SAVE_DIR/batches/ (the default for augmented-gradcam).")
@click.option("--target", help="predicted (default), lowest, topK (e.g. top3) or a class index; whole-folder runs "
                               "also take true (the class folder) and comma lists (top5,true).")
@click.option("--option", "-o", "option", multiple=True, metavar="KEY=VALUE",
              help="A method option, repeatable (e.g. -o n_augment=100 -o aggregate=all).")
@click.option("--shard", metavar="I/N", help="Whole-folder runs: compute only batches b with b mod N = I (0 <= I < N).")
@click.option("--n-figures", type=int, default=8, show_default=True, help="Whole-folder runs: figures for the first "
                                                                          "this many images.")
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
    from camkit.explaining import explain_to_dir

    backcounts = parse_ints(layer_backcount, "--layer-backcount")
    result = explain_to_dir(model_path, config=config_path, layer_backcount=backcounts,
                            progress=False if no_progress else None, options=method_options(option), **kw)
    what = "image(s)" if result.kind == "images" else "series"
    layers = ", ".join(result.layers) or "the input"
    click.echo(f"explained {result.n} {what} of {result.source} with {', '.join(result.methods)} at {layers}")
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"maps: {result.npz}")
    click.echo(f"figures: {result.save_dir} ({len(result.figures)} file{'s' if len(result.figures) != 1 else ''})")


@main.command("eval-localization")
@click.option("--maps", type=click.Path(path_type=Path), help="The folder of a `camkit explain --n-images all` run.")
@click.option("--method", help="Compute the maps with this method instead (into plots/<exp>/explain_<method>/).")
@click.option("--model-path", type=click.Path(path_type=Path), help="With --method: a .keras model file.")
@config_option
@click.option("--experiment", help="With --method: experiment NAME (its model and image dataset).")
@click.option("--images", type=click.Path(path_type=Path), help="With --method: the images (default: the "
                                                                 "experiment's test split).")
@click.option("--annotations", type=click.Path(path_type=Path), help="Ground truth: a folder of VOC XML files or a "
                                                                     "CSV (default: DATASET/annotations/test).")
@click.option("--data-root", help="Where datasets live (default data/).")
@click.option("--imagenet", is_flag=True, help="ImageNet classes: Keras order, WNID labels, CLS-LOC submission ids.")
@click.option("--synsets", type=click.Path(path_type=Path), help="The model's classes as WNIDs, one a line.")
@click.option("--clsloc", type=click.Path(path_type=Path), help="WNID -> submission id table (map_clsloc.txt).")
@click.option("--skip", type=click.Path(path_type=Path), help="Images to leave out: 1-based indices or ids.")
@click.option("--threshold", type=float, help="Box threshold, a fraction of the map max (0.20 CAM, else 0.15).")
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
                                                                          "the ground truth) for this many images.")
@click.option("--root", default=".", show_default=True, type=click.Path(path_type=Path),
              help="Where results/, models/ and plots/ are.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def eval_localization(model_path: Path | None, config_path: Path | None, option: tuple[str, ...], no_progress: bool,
                      **kw: Any) -> None:
    """Weak localization: top-1/top-5 localization error, GT-known accuracy, MaxBoxAcc, pointing game.

    \b
    Example:
      camkit eval-localization -c configs/cluttered_digits_cnn.yaml --method gradcam
      camkit eval-localization --maps plots/vgg/explain_augmented-gradcam --annotations val_xml/ --imagenet \\
          --skip blacklist.txt
    """
    from camkit.eval_localization import eval_localization as run

    result = run(model=model_path, config=config_path, options=method_options(option),
                 progress=False if no_progress else None, **kw)
    click.echo(f"evaluated {len(result['computed'])} of {len(result['batches'])} batch(es) of {result['maps']}")
    if not result["complete"]:
        click.echo(f"not every batch is evaluated yet ({result['n_batches']} in all): merge the shards' "
                   "batches/ and eval/ folders, then run again without --shard for the summary")
        return
    click.echo(f"{'variant':<10} {'top-1 loc err':>13} {'top-5 loc err':>13} {'GT-known':>9} {'MaxBoxAcc':>9} "
               f"{'pointing':>9}  images")
    for variant, s in result["summary"].items():
        click.echo(f"{variant:<10} {s['top1_loc_error']:>13.3f} {s['top5_loc_error']:>13.3f} "
                   f"{s['gt_known_loc_accuracy']:>9.3f} {s['max_box_acc']:>9.3f} {s['pointing_game']:>9.3f}  "
                   f"{s['n_images']}")
    click.echo(f"results: {result['out']} (summary.json, per_image.csv, submissions/, "
               f"{len(result['figures'])} figures)")


@main.command()
def models() -> None:
    """List the model builders."""
    from camkit.models import model_names

    click.echo("\n".join(model_names()))
