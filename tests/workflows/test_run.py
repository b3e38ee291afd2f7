"""`camkit run`'s step registry: registration, order, validation against the registry, the built-in steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import camkit.workflows.run as run_module
from camkit.config import load_config
from camkit.errors import CamkitError
from camkit.workflows.run import StepResult, check_steps, register_step, run_experiment, step_names


@pytest.fixture
def registry(monkeypatch) -> list[str]:
    """A scratch copy of the registry with a ``probe`` step that records its calls."""
    monkeypatch.setattr(run_module, "_STEPS", dict(run_module._STEPS))
    calls: list[str] = []

    @register_step("probe")
    def probe(config, root, progress) -> StepResult:
        calls.append(config.name)
        return StepResult("probe", {"root": str(root)}, [f"probed {config.name}"])

    return calls


def test_builtin_steps_are_registered():
    assert step_names()[:2] == ["train", "evaluate"]


def test_a_registered_step_runs_in_config_order_and_is_a_known_step(registry, tmp_path: Path):
    config_file = tmp_path / "exp.yaml"
    config_file.write_text("name: p\nsteps: [probe, probe]\n")
    config = load_config(config_file, known_steps=step_names())  # the registry decides what is known
    results = run_experiment(config, tmp_path, progress=False)
    assert [(r.name, r.summary, r.lines) for r in results] == [("probe", {"root": str(tmp_path)}, ["probed p"])] * 2
    assert registry == ["p", "p"]
    with pytest.raises(ValueError, match="already registered"):
        register_step("probe")(lambda config, root, progress: StepResult("probe", {}))


def test_unknown_steps_fail_before_any_step_runs(registry, tmp_path: Path):
    config = load_config(None, {"steps": ["probe", "deploy", "explore"]})  # no names given: not checked here
    with pytest.raises(CamkitError) as info:
        run_experiment(config, tmp_path)
    assert str(info.value) == f"steps: unknown step(s) ['deploy', 'explore']; known: {', '.join(step_names())}"
    assert registry == []
    with pytest.raises(CamkitError, match=r"^config: steps: unknown step 'deploy'; known: "):
        load_config(None, {"steps": ["deploy"]}, known_steps=step_names())
    check_steps(load_config(None, {"steps": ["probe", "train"]}))  # registered: no error


def test_train_and_evaluate_steps_on_gunpoint(tmp_path: Path, data_root: Path):
    config = load_config(None, {"name": "g", "data.root": str(data_root), "train.epochs": 1})
    train, evaluate = run_experiment(config, tmp_path, progress=False)
    assert (train.name, evaluate.name) == ("train", "evaluate")
    seconds = train.summary["train_wall_time_s"]
    assert train.lines == [f"trained fcn on GunPoint: 1 epochs, {seconds:.1f} s"]
    assert train.summary["model_path"] == str(tmp_path / "models" / "g" / "best.keras")
    assert evaluate.lines == [evaluate.summary["text"]] and "accuracy  " in evaluate.lines[0]
    assert np.array(evaluate.summary["confusion_matrix"]).sum() == 150
