"""Loading and saving model files, with clear errors and atomic writes."""

from __future__ import annotations

from pathlib import Path

import keras

from camkit.errors import CamkitError
from camkit.io import atomic_path


def load_model(path: Path | str, compile: bool = True) -> keras.Model:
    """Load a ``.keras`` (or legacy ``.h5``) model file; a clear error if it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise CamkitError(f"{path}: model file not found")
    if path.suffix not in (".keras", ".h5"):
        raise CamkitError(f"{path}: expected a .keras or .h5 model file")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:
        raise CamkitError(f"{path}: cannot load model ({str(exc).splitlines()[0][:200]})") from None


def save_model(model: keras.Model, path: Path) -> Path:
    """Save atomically: a crash mid-save never leaves a broken ``path``."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path
