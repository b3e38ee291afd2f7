"""``camkit run``: a config's ``steps`` in order, each a registered function.

A step is a function ``(config, root, progress) -> StepResult`` registered with ``@register_step(NAME)``;
adding one is that function (its options in its own section of the config) and its registration here. The steps:
``train``, ``evaluate`` (the experiment's recipe), ``explain`` (the ``explain`` section: one or more explain runs)
and ``eval-localization`` (the ``eval_localization`` section).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camkit.config import ExperimentConfig
from camkit.errors import CamkitError
from camkit.workflows.explain import explain_to_dir
from camkit.workflows.fit import make_strategy
from camkit.workflows.localization import eval_localization, result_lines
from camkit.workflows.recipes.hires import parity_text
from camkit.workflows.sections import explain_plans, localization_plans
from camkit.workflows.train import evaluate_experiment, train_experiment


@dataclass
class StepResult:
    """What a step did: its summary (as its workflow returns it) and the lines ``camkit run`` prints."""

    name: str
    summary: dict[str, Any]
    lines: list[str] = field(default_factory=list)


Step = Callable[[ExperimentConfig, Path, bool], StepResult]
_STEPS: dict[str, Step] = {}


def register_step(name: str) -> Callable[[Step], Step]:
    """Decorator: register ``step`` under ``name`` (a name is registered once)."""
    def register(step: Step) -> Step:
        if name in _STEPS:
            raise ValueError(f"step {name!r} is already registered")
        _STEPS[name] = step
        return step

    return register


def step_names() -> list[str]:
    """Registered step names, in registration order."""
    return list(_STEPS)


def check_steps(config: ExperimentConfig) -> None:
    """CamkitError naming every step of ``config.steps`` that is not registered."""
    unknown = [s for s in config.steps if s not in _STEPS]
    if unknown:
        raise CamkitError(f"steps: unknown step(s) {unknown}; known: {', '.join(_STEPS)}")


def run_experiment(config: ExperimentConfig, root: Path = Path("."), progress: bool = True) -> list[StepResult]:
    """Run the config's ``steps`` in order; each step's result."""
    check_steps(config)
    make_strategy(config.train.strategy)  # fail early on a bad strategy, before any step runs
    return [_STEPS[name](config, root, progress) for name in config.steps]


@register_step("train")
def train_step(config: ExperimentConfig, root: Path, progress: bool) -> StepResult:
    """Train the experiment; a line per trained stage."""
    summary = train_experiment(config, root, progress)
    stages = [*summary.get("stages", []), summary]
    return StepResult("train", summary, [f"trained {s['model']} on {s['dataset']}: {s['epochs']} epochs, "
                                         f"{s['train_wall_time_s']:.1f} s" for s in stages])


@register_step("evaluate")
def evaluate_step(config: ExperimentConfig, root: Path, progress: bool) -> StepResult:
    """Evaluate the trained experiment; its report's text (and the parity line of a High-res CAM model)."""
    report = evaluate_experiment(config, root)
    lines = [report["text"]]
    if "parity" in report:
        lines.append(parity_text(report["parity"]))
    return StepResult("evaluate", report, lines)


@register_step("explain")
def explain_step(config: ExperimentConfig, root: Path, progress: bool) -> StepResult:
    """Every run of the config's ``explain`` section on the experiment's model: maps and figures."""
    plans = explain_plans(config, root, progress)
    if not plans:
        raise CamkitError("steps: explain needs an explain section in the config (e.g. explain: {method: gradcam})")
    results = [explain_to_dir(plan) for plan in plans]
    return StepResult("explain", {"runs": [str(r.save_dir) for r in results]},
                      [line for r in results for line in r.lines()])


@register_step("eval-localization")
def localization_step(config: ExperimentConfig, root: Path, progress: bool) -> StepResult:
    """Every run of the config's ``eval_localization`` section: boxes, localization scores, submissions."""
    plans = localization_plans(config, root, progress)
    if not plans:
        raise CamkitError("steps: eval-localization needs an eval_localization section in the config "
                          "(e.g. eval_localization: {method: gradcam})")
    results = [eval_localization(*plan) for plan in plans]
    return StepResult("eval-localization", {"runs": [str(r["out"]) for r in results]},
                      [line for r in results for line in result_lines(r)])
