"""What ``camkit explain`` is asked to do (an :class:`ExplainPlan`) and what it did (an :class:`ExplainResult`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camkit.errors import CamkitError
from camkit.methods import DEFAULT_METHOD, method_class
from camkit.methods.layers import CONV_TYPES, listing, resolve_layer, walk
from camkit.methods.targets import TargetPlan, parse_targets
from camkit.workflows.sources import SourceSpec
from camkit.workflows.store import Shard

FORMATS = ("png", "pdf", "svg")
LAYOUTS = ("viewer", "notebook")


@dataclass(frozen=True)
class ExplainPlan:
    """One explain run: the inputs (``source``), the method and its options, the targets and the outputs.

    ``layer_backcount``: conv layers counted from the end (1 = last); several explain the first sample at each.
    ``layout``: images only, ``viewer`` (top-1..3 + lowest) or ``notebook`` (the method's notebook panels).
    ``n_images``: a count (default 8) or ``"all"`` (a whole image folder, batch by batch into the store).
    ``shard``: ``"i/n"``, whole-folder runs only. ``n_figures``: whole-folder figures for the first images.
    ``into_store``: a count of samples still goes into the map store (evaluations read stores).
    ``target_is_default``: the target is a method's default columns, whose ``topK`` means at most K (a user's
    ``--target top99`` on a 10-class model is refused instead).
    """

    source: SourceSpec = field(default_factory=SourceSpec)
    method: str = DEFAULT_METHOD
    options: dict[str, Any] = field(default_factory=dict)
    layer: str | int | None = None
    layer_backcount: tuple[int, ...] = ()
    n_images: int | str | None = None
    target: str | int | None = None
    layout: str | None = None
    batch_size: int = 32
    save_dir: Path | None = None
    fmt: str = "png"
    show: bool = False
    progress: bool | None = None
    shard: str | None = None
    n_figures: int = 8
    overwrite: bool = False
    target_is_default: bool = False
    into_store: bool = False

    @property
    def layer_ref(self) -> str | int | None:
        """``--layer`` with ``-N`` as an int (N-th conv from the end), or the single ``--layer-backcount``."""
        if len(self.layer_backcount) == 1:
            return -self.layer_backcount[0]
        layer = self.layer
        if isinstance(layer, str) and re.fullmatch(r"-\d+", layer.strip()):
            return int(layer)
        return layer

    @property
    def count(self) -> int | None:
        """How many samples to explain; None for all."""
        return None if self.n_images == "all" else 8 if self.n_images is None else int(self.n_images)


def check_plan(plan: ExplainPlan) -> None:
    """Option errors that need no file: one clear line each."""
    method_class(plan.method)  # an unknown method names the choices
    n = plan.n_images
    checks = [
        (plan.fmt in FORMATS, f"--format: choose one of {', '.join(FORMATS)}, not {plan.fmt!r}"),
        (plan.source.split in ("test", "train"), f"--split: choose test or train, not {plan.source.split!r}"),
        (plan.layout in (None, *LAYOUTS), f"--layout: choose viewer or notebook, not {plan.layout!r}"),
        (n in (None, "all") or (str(n).isdigit() and int(n) >= 1),
         f"--n-images: expected a positive count or all, not {n!r}"),
        (plan.batch_size >= 1, "--batch-size must be at least 1"),
        (all(b >= 1 for b in plan.layer_backcount), "--layer-backcount counts conv layers from 1 (the last)"),
        (plan.layer is None or not plan.layer_backcount, "give --layer or --layer-backcount, not both"),
    ]
    for ok, message in checks:
        if not ok:
            raise CamkitError(message)
    Shard.parse(plan.shard)
    checked_targets(plan.target)


def check_model_options(plan: ExplainPlan, model: Any, n_classes: int) -> None:
    """Options that need the model: ``--layer`` one of its layers, ``--layer-backcount`` within its conv layers,
    ``--target`` within its classes."""
    if plan.layer is not None:
        try:
            resolve_layer(model, plan.layer_ref, (), lambda out: out)  # a name, a path or -N: no tracing needed
        except CamkitError as exc:
            raise CamkitError(f"--layer {plan.layer}: {str(exc).removeprefix('layer: ')}") from None
    convs = [r.path for r in walk(model) if isinstance(r.layer, CONV_TYPES)]
    deeper = [b for b in plan.layer_backcount if b > len(convs)]
    if deeper:
        raise CamkitError(f"--layer-backcount {deeper[0]}: the model has {len(convs)} conv layers, so count 1 (the "
                          f"last) to {len(convs)}: {listing(convs)}")
    ranks = [-c.code for c in checked_targets(plan.target).columns  # topK uncapped: codes -1 .. -K
             if c.name.startswith("top") and c.code is not None and c.code < 0]
    if ranks and max(ranks) > n_classes and not plan.target_is_default:
        raise CamkitError(f"--target top{max(ranks)}: the model has {n_classes} classes, so top{n_classes} at most")
    checked_targets(plan.target, n_classes)


def checked_targets(target: Any, n_classes: int | None = None) -> TargetPlan:
    """``parse_targets`` with its errors naming ``--target`` and the value given."""
    try:
        return parse_targets(target, n_classes)
    except CamkitError as exc:
        what = str(exc).removeprefix("targets: ")
        raise CamkitError(f"--target {what}" if what.startswith("'") else f"--target {target}: {what}") from None


@dataclass
class ExplainResult:
    """What an explain run wrote and a summary of it."""

    save_dir: Path
    npz: Path
    figures: list[Path]
    kind: str  # "timeseries" | "images"
    n: int
    methods: list[str]  # the requested method, or the notebook layout's panels
    layers: list[str]
    source: str
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What ``camkit explain`` prints about the run."""
        what = "image(s)" if self.kind == "images" else "series"
        layers = ", ".join(self.layers) or "the input"
        plural = "s" if len(self.figures) != 1 else ""
        return [f"explained {self.n} {what} of {self.source} with {', '.join(self.methods)} at {layers}",
                *(f"note: {note}" for note in self.notes), f"maps: {self.npz}",
                f"figures: {self.save_dir} ({len(self.figures)} file{plural})"]
