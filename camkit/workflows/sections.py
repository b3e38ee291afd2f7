"""The ``explain`` and ``eval_localization`` sections of a config, as the plans their workflows run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from camkit.config import ExperimentConfig
from camkit.errors import CamkitError
from camkit.workflows.localization import EvalRun, MapsSource, TruthFiles
from camkit.workflows.plan import ExplainPlan
from camkit.workflows.sources import SourceSpec

RENAMED = {"format": "fmt"}  # config keys spelled as the command's options
PATHS = ("save_dir", "images", "labels", "maps", "annotations", "synsets", "clsloc", "skip", "out")
OUTPUTS = ("save_dir", "out", "maps")  # relative to camkit run's --root, as the default outputs are


def runs(section: Any, key: str) -> list[dict[str, Any]]:
    """A section as a list of runs: a mapping is one run; None is none."""
    if section is None:
        return []
    items = [section] if isinstance(section, Mapping) else section
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise CamkitError(f"config: {key} must be a mapping of options or a list of them, got {section!r}")
    return [{RENAMED.get(str(k), str(k)): v for k, v in item.items()} for item in items]


def as_path(key: str, value: Any, root: Path) -> Any:
    if key not in PATHS or value is None:
        return value
    return Path(root) / value if key in OUTPUTS and not Path(value).is_absolute() else Path(value)


def split_keys(run: dict[str, Any], key: str, targets: Sequence[type], root: Path) -> list[dict[str, Any]]:
    """The run's keys divided among the dataclasses ``targets``; an unknown key is an error naming it."""
    names = [{f.name for f in fields(cls)} for cls in targets]
    unknown = sorted(k for k in run if not any(k in n for n in names))
    if unknown:
        known = sorted({n for group in names for n in group} - {"source", "model", "config", "experiment", "root"})
        raise CamkitError(f"config: {key}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [{k: as_path(k, v, root) for k, v in run.items() if k in n} for n in names]


FIXED = ("model", "config", "experiment", "root", "source", "progress", "shard")  # what camkit run decides


def refuse_fixed(run: Mapping[str, Any], key: str) -> None:
    """A section may not choose the model, the experiment or the shard: ``camkit run`` explains its own."""
    fixed = [k for k in FIXED if k in run]
    if fixed:
        raise CamkitError(f"config: {key}: {fixed[0]} is set by camkit run (the experiment's own model)")


def replaces_own_maps(config: ExperimentConfig) -> bool:
    """The default ``overwrite`` of a run's map steps: a run that trains replaces what they wrote from the earlier
    model; one that does not train resumes them, or refuses a change, as the commands do."""
    return "train" in config.steps


def explain_plans(config: ExperimentConfig, root: Path, progress: bool) -> list[ExplainPlan]:
    """One :class:`ExplainPlan` per run of the ``explain`` section, on the experiment's model and data."""
    plans = []
    for run in runs(config.explain, "explain"):
        refuse_fixed(run, "explain")
        source, plan = split_keys(run, "explain", (SourceSpec, ExplainPlan), root)
        if "layer_backcount" in plan:  # one count or a list, as --layer-backcount takes
            counts = plan["layer_backcount"]
            plan["layer_backcount"] = tuple(counts if isinstance(counts, list) else [counts])
        spec = SourceSpec(experiment=config.name, root=root, data_root=config.data.root, **source)
        plan.setdefault("overwrite", replaces_own_maps(config))  # a section's own overwrite wins
        plans.append(ExplainPlan(spec, **{"progress": None if progress else False, **plan}))
    return plans


def localization_plans(config: ExperimentConfig, root: Path,
                       progress: bool) -> list[tuple[MapsSource, TruthFiles, EvalRun]]:
    """The runs of the ``eval_localization`` section, on the experiment's model and data."""
    plans = []
    for run in runs(config.eval_localization, "eval_localization"):
        refuse_fixed(run, "eval_localization")
        source, files, settings = split_keys(run, "eval_localization", (MapsSource, TruthFiles, EvalRun), root)
        maps = MapsSource(experiment=None if source.get("maps") else config.name,
                          data_root=config.data.root, **source)
        settings.setdefault("overwrite", replaces_own_maps(config))
        plans.append((maps, TruthFiles(**files), EvalRun(root=root, progress=None if progress else False,
                                                          **settings)))
    return plans
