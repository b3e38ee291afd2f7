"""Experiment configs: a YAML file plus CLI overrides -> one typed, validated object.

A config has four sections; every key is optional and has the default below::

    name: gunpoint_fcn          # experiment name: results/<name>, models/<name>, plots/<name>
    steps: [train, evaluate]    # what `camkit run` does, in order
    data:  {dataset: GunPoint, kind: timeseries, root: data, znorm: false,
            image_size: [224, 224], preprocess: rescale, classes: null}
    model: {name: fcn, options: {}}
    train: {epochs: 500, batch_size: null, learning_rate: 0.001, seed: 0, strategy: default,
            monitor: loss, reduce_lr_factor: 0.5, reduce_lr_patience: 50, min_lr: 0.0001,
            validation_split: 0.0, weights: null, optimizer: adam, half_weights: null}
    task: classify              # classify | cluster (autoencoder + k-means on the latent codes)
    cluster: {n_clusters: null, n_init: 20}   # task cluster: k (null: the number of classes), k-means restarts
    half: null                  # model densenet-full: train stage 1 (densenet-half) first, see below
    explain: null               # steps [..., explain]: {method: gradcam, target: top3, ...} or a list of such runs
    eval_localization: null     # steps [..., eval-localization]: {method: gradcam, ...} or a list

``explain`` takes the keys of ``camkit explain`` (as in :class:`camkit.workflows.plan.ExplainPlan` and
:class:`camkit.workflows.sources.SourceSpec`: method, options, layer, layer_backcount, n_images, target,
layout, batch_size, save_dir, format, n_figures, overwrite, split, images, labels, imagenet_labels,
image_size, preprocess); ``eval_localization`` those of ``camkit eval-localization`` (method, maps,
target, options, threshold, annotations, imagenet, synsets, clsloc, skip, batch_size, image_size,
preprocess, out, overwrite, n_figures). Both explain the experiment's own model and dataset.

``steps`` may name any step registered in ``camkit.workflows.run`` (``camkit run`` checks them; a
caller that knows the registry passes ``known_steps`` to :func:`load_config`).

High-resolution CAM in one config: with ``model.name: densenet-full``, no ``train.half_weights`` and a
``half:`` section (a mapping, ``{}`` allowed), training first trains the stage-1 ``densenet-half`` model as
the experiment ``<name>_half`` (``models/<name>_half/best.keras``, its own results and manifest), with the
``train`` settings overridden by the section's keys (each optional): ``epochs``, ``batch_size``,
``learning_rate``, ``seed``, ``optimizer``, ``monitor``, ``reduce_lr_factor``, ``reduce_lr_patience``,
``min_lr``; then stage 2 starts from that model (``train.half_weights`` is set to it in the manifest, so
``evaluate`` finds it). With ``train.weights`` (resuming stage 2) the existing half model is reused.

With ``task: cluster`` the defaults of keys the file and the options leave unset become Grad-CeAM's:
``model.name`` resnet1d-ae (time series) or conv-ae (images), ``train.epochs`` 50 (0 with ``train.weights``:
reuse the trained autoencoder), ``train.batch_size`` 10.

Every error about a value names where it was set: ``FILE: train.epochs`` for a key of the file, the option
(``--epochs``) for a value an option overrode. String values keep that origin (:class:`Given`), so an error
found later, such as an unknown model or a missing dataset folder, names it too (:func:`culprit`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from camkit.errors import CamkitError
from camkit.io import read_yaml

DEFAULT_STEPS = ("train", "evaluate")
TASKS = ("classify", "cluster")
CLUSTER_DEFAULTS = {"train.epochs": 50, "train.batch_size": 10}  # Grad-CeAM's autoencoder training
CLUSTER_MODELS = {"timeseries": "resnet1d-ae", "images": "conv-ae"}
STRATEGIES = ("default", "mirrored")
OPTIMIZERS = ("adam", "adadelta")
PREPROCESSING = ("rescale", "none", "vgg16")
# The option of camkit train / evaluate / run that overrides each key (what an error about its value names).
OPTIONS = {"name": "--name", "data.dataset": "--dataset", "data.kind": "--kind", "data.root": "--data-root",
           "data.znorm": "--znorm", "data.image_size": "--image-size", "model.name": "--model",
           "model.options.weights": "--weights-file", "train.epochs": "--epochs", "train.batch_size": "--batch-size",
           "train.learning_rate": "--lr", "train.seed": "--seed", "train.strategy": "--strategy",
           "train.weights": "--weights", "train.half_weights": "--half-weights", "task": "--task"}
# PyYAML (YAML 1.1) reads 1e-3 or 1.0e3 as strings: a float needs a dot and a signed exponent there.
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass
class DataConfig:
    dataset: str = "GunPoint"
    kind: str = "timeseries"  # timeseries | images
    root: str = "data"
    znorm: bool = False
    image_size: list[int] = field(default_factory=lambda: [224, 224])
    preprocess: str = "rescale"  # rescale | none | vgg16
    classes: str | None = None  # images: animal_synsets (the 398 ImageNet animals) or a file, one class a line


@dataclass
class ModelConfig:
    name: str = "fcn"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    epochs: int = 500
    batch_size: int | None = None  # None: min(N/10, 16) as the FCN papers
    learning_rate: float = 1e-3
    seed: int = 0
    strategy: str = "default"  # default | mirrored
    monitor: str = "loss"  # the quantity that picks the best model and drives reduce-on-plateau
    reduce_lr_factor: float = 0.5
    reduce_lr_patience: int = 50
    min_lr: float = 1e-4
    validation_split: float = 0.0
    weights: str | None = None  # a .keras file to resume from
    optimizer: str = "adam"  # adam | adadelta (High-res CAM: adadelta with learning_rate 1.0)
    half_weights: str | None = None  # densenet-full only: the trained densenet-half .keras model it starts from


@dataclass
class HalfConfig:
    """Stage 1 of a one-config High-res CAM run: ``train`` keys to override (None: as ``train``)."""

    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int | None = None
    optimizer: str | None = None
    monitor: str | None = None
    reduce_lr_factor: float | None = None
    reduce_lr_patience: int | None = None
    min_lr: float | None = None

    def apply(self, train: TrainConfig) -> TrainConfig:
        """``train`` with this section's keys set (and no ``weights`` / ``half_weights``)."""
        given = {k: v for k, v in asdict(self).items() if v is not None}
        return dataclasses.replace(train, **given, weights=None, half_weights=None)


@dataclass
class ClusterConfig:
    n_clusters: int | None = None  # None: the number of classes of the dataset
    n_init: int = 20  # k-means restarts (seeded by train.seed)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    steps: list[str] = field(default_factory=lambda: list(DEFAULT_STEPS))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    task: str = "classify"  # classify | cluster
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    half: HalfConfig | None = None  # densenet-full: train stage 1 first (see the module doc)
    explain: Any = None  # camkit run's explain step: one explain run (a mapping) or a list of them
    eval_localization: Any = None  # camkit run's eval-localization step: a mapping or a list of them
    origins: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The settings (not where they came from)."""
        settings = asdict(self)
        del settings["origins"]
        return settings

    def origin(self, dotted: str) -> str:
        """Where a key was set, for an error about its value: ``FILE: train.epochs``, ``--epochs`` or the key."""
        return self.origins.get(dotted) or OPTIONS.get(dotted, dotted)


class Given(str):
    """A string config value that remembers where it was set (``FILE: data.dataset``, ``--dataset``).

    It is a plain ``str`` otherwise: equal to, hashed and written to JSON as its text.
    """

    origin: str

    def __new__(cls, text: str, origin: str) -> Given:
        value = super().__new__(cls, text)
        value.origin = origin
        return value

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # copies (dataclasses.asdict) keep the origin
        return Given, (str(self), self.origin)


def culprit(value: object, default: str) -> str:
    """What an error about ``value`` names: where the config set it (a :class:`Given`), else ``default``."""
    return value.origin if isinstance(value, Given) else default


def close_match(word: str, choices: Collection[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``choices``, or an empty string."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.75)
    return f" (did you mean {match[0]}?)" if match else ""


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Coerce/validate one scalar or list value against a field annotation; strings become :class:`Given`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        if not isinstance(value, list):
            raise CamkitError(f"{where}: expected a list, got {value!r}")
        return [_check_type(v, args[0], where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise CamkitError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise CamkitError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CamkitError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CamkitError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise CamkitError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise CamkitError(f"{where}: expected a string, got {value!r}")
        return Given(str(value), where)
    return value


def _section_type(annotation: Any) -> type | None:
    """The dataclass of a section annotation (``TrainConfig`` or ``HalfConfig | None``), else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next((a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a)), None)
    return None


class _Origins:
    """Where each key was set: ``FILE: key`` for the file's keys, the option for the overridden ones.

    Remembers what it was asked (``seen``), which is every key the file and the overrides set.
    """

    def __init__(self, path: Path | None, overridden: Collection[str]) -> None:
        self.path, self.overridden, self.seen = path, set(overridden), {}

    def __call__(self, dotted: str) -> str:
        if dotted in self.overridden:
            label = OPTIONS.get(dotted, f"config: {dotted}")
        else:
            label = f"{self.path}: {dotted}" if self.path is not None else f"config: {dotted}"
        self.seen[dotted] = label
        return label


def _build(cls: type, values: Any, origins: _Origins, prefix: str = "") -> Any:
    if not isinstance(values, dict):
        raise CamkitError(f"{origins(prefix.rstrip('.'))}: must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    unknown = sorted(str(k) for k in values if k not in names)
    if unknown:
        hint = close_match(prefix + unknown[0], [prefix + n for n in names])
        also = f" (also unknown: {', '.join(prefix + k for k in unknown[1:])})" if unknown[1:] else ""
        raise CamkitError(f"{origins(prefix + unknown[0])}: unknown key{hint}{also}; known: {', '.join(names)}")
    kwargs = {}
    for key, value in values.items():
        section, where = _section_type(hints[key]), origins(prefix + key)
        if section is not None and value is None and hints[key] is not section:
            kwargs[key] = None  # an optional section left out (`half: null`)
        elif section is not None:
            kwargs[key] = _build(section, {} if value is None else value, origins, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_type(value, hints[key], where)
    return cls(**kwargs)


def _validate(config: ExperimentConfig, origin: Callable[[str], str],
              known_steps: Collection[str] | None) -> ExperimentConfig:
    bad_steps = [s for s in config.steps if known_steps is not None and s not in known_steps]
    if bad_steps:
        known = ", ".join(known_steps or ())
        hint = close_match(bad_steps[0], known_steps or ())
        raise CamkitError(f"{origin('steps')}: unknown step {bad_steps[0]!r}{hint}; known: {known}")
    for dotted, value, choices in (("data.kind", config.data.kind, ("timeseries", "images")),
                                   ("task", config.task, TASKS),
                                   ("data.preprocess", config.data.preprocess, PREPROCESSING)):
        if value not in choices:
            raise CamkitError(f"{origin(dotted)}: must be one of {', '.join(choices)}, got {value!r}"
                              f"{close_match(value, choices)}")
    for key in ("half_weights", "half"):
        given = config.train.half_weights if key == "half_weights" else config.half
        if given is not None and config.model.name != "densenet-full":
            dotted = "train.half_weights" if key == "half_weights" else "half"
            raise CamkitError(f"{origin(dotted)}: is for model densenet-full, not {config.model.name!r}")
    size = config.data.image_size
    checks = [
        ("steps", bool(config.steps), "lists no step, so there is nothing to run"),
        ("name", is_plain_name(config.name),
         f"must be a plain folder name (no / or \\, not starting with .), got {config.name!r}"),
        ("data.dataset", bool(config.data.dataset), "must name a dataset folder, got an empty string"),
        ("model.name", bool(config.model.name), "must name a model (see `camkit models`), got an empty string"),
        ("cluster.n_clusters", config.cluster.n_clusters is None or config.cluster.n_clusters >= 1, "must be >= 1"),
        ("cluster.n_init", config.cluster.n_init >= 1, "must be >= 1"),
        ("data.image_size", len(size) == 2 and min(size) > 0, f"must be two positive integers, got {size}"),
    ]
    _check(checks, origin)
    _check_train(config.train, origin, "train")
    if config.half is not None:
        _check_train(config.half.apply(config.train), origin, "half")
    return config


def is_plain_name(name: str) -> bool:
    """True for a name that is one visible folder: not empty, not starting with ., no / or \\ (nor a NUL)."""
    return bool(name) and not name.startswith(".") and not set(name) & set("/\\\0")


def _check(checks: list[tuple[str, bool, str]], origin: Callable[[str], str]) -> None:
    """CamkitError ``ORIGIN: MESSAGE`` for the first ``(dotted key, ok, message)`` that is not ok."""
    for dotted, ok, message in checks:
        if not ok:
            raise CamkitError(f"{origin(dotted)}: {message}")


def _check_train(train: TrainConfig, origin: Callable[[str], str], section: str) -> None:
    """The values of a ``train`` (or merged ``half``) section; errors name ``SECTION.key``'s origin."""
    for key, value, choices in (("strategy", train.strategy, STRATEGIES), ("optimizer", train.optimizer, OPTIMIZERS)):
        if value not in choices:
            raise CamkitError(f"{origin(f'{section}.{key}')}: must be one of {', '.join(choices)}, got {value!r}"
                              f"{close_match(value, choices)}")
    checks = [
        ("epochs", train.epochs >= 0, f"must be at least 0 (0 reuses --weights as they are), got {train.epochs}"),
        ("batch_size", train.batch_size is None or train.batch_size >= 1, f"must be >= 1, got {train.batch_size}"),
        ("learning_rate", train.learning_rate > 0, f"must be positive, got {train.learning_rate}"),
        ("validation_split", 0 <= train.validation_split < 1, f"must be in [0, 1), got {train.validation_split}"),
        ("seed", 0 <= train.seed < 2**32, f"must be in 0..2**32-1 (NumPy's seeds), got {train.seed}"),
        ("min_lr", train.min_lr >= 0, f"must be at least 0, got {train.min_lr}"),
        ("reduce_lr_factor", 0 < train.reduce_lr_factor < 1, f"must be in (0, 1), got {train.reduce_lr_factor}"),
        ("reduce_lr_patience", train.reduce_lr_patience >= 0, f"must be at least 0, got {train.reduce_lr_patience}"),
    ]
    _check([(f"{section}.{key}", ok, message) for key, ok, message in checks], origin)


def load_config(path: Path | str | None = None, overrides: dict[str, Any] | None = None,
                known_steps: Collection[str] | None = None) -> ExperimentConfig:
    """Read a YAML config (or start from defaults) and apply ``{"train.epochs": 5, ...}`` overrides.

    Overrides whose value is ``None`` are ignored, so unset CLI options keep the file's value.
    ``known_steps``: the step names ``steps`` may use (None: not checked here).
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        raw = read_yaml(path)
        raw.setdefault("name", path.stem)
    given = {dotted: value for dotted, value in (overrides or {}).items() if value is not None}
    origins = _Origins(path, given)
    for dotted, value in given.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents):
            child = node.get(key)
            if child is None:  # section absent from the file, or present but empty (`train:`)
                child = node[key] = {}
            elif not isinstance(child, dict):
                section = ".".join(parents[: depth + 1])
                raise CamkitError(f"{origins(section)}: must be a mapping (to set {dotted}), got {child!r}")
            node = child
        node[leaf] = value
    config = _build(ExperimentConfig, raw, origins)
    config.origins = {**origins.seen, **{dotted: origins(dotted) for dotted in given}}
    if config.task == "cluster":
        _cluster_defaults(config, raw)
    return _validate(config, config.origin, known_steps)


def _cluster_defaults(config: ExperimentConfig, raw: dict[str, Any]) -> None:
    """Grad-CeAM's model, epochs and batch size where the file and the overrides leave them unset."""
    def unset(dotted: str) -> bool:
        section, key = dotted.split(".")
        return not isinstance(raw.get(section), dict) or raw[section].get(key) is None

    defaults = {**CLUSTER_DEFAULTS, "model.name": CLUSTER_MODELS.get(config.data.kind)}
    if config.train.weights is not None:
        defaults["train.epochs"] = 0  # --weights alone reuses the trained autoencoder as it is
    for dotted, value in defaults.items():
        if unset(dotted) and value is not None:
            section, key = dotted.split(".")
            setattr(getattr(config, section), key, value)
