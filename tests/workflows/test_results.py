"""An experiment's folders (camkit/workflows/results.py)."""

from __future__ import annotations

from pathlib import Path

from camkit.workflows.results import RunDirs


def test_run_dirs_layout(tmp_path: Path) -> None:
    dirs = RunDirs("exp", tmp_path).ensure()
    assert dirs.results == tmp_path / "results" / "exp" and dirs.results.is_dir()
    assert dirs.models.is_dir() and dirs.plots.is_dir()
    assert dirs.best_model == tmp_path / "models" / "exp" / "best.keras"
