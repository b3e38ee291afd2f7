"""Loading and saving model files, with clear errors and atomic writes."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import keras

from camkit.errors import CamkitError
from camkit.io import atomic_path

H5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
KERAS_MEMBERS = ("config.json", "model.weights.h5")  # what every .keras archive holds


def load_model(path: Path | str, compile: bool = True, option: str | None = None) -> keras.Model:
    """Load a ``.keras`` (or legacy ``.h5``) model file; a CamkitError saying what is wrong with it otherwise.

    ``option`` (e.g. ``--weights``) starts the message, which names the file: ``--weights: FILE is not a Keras
    model file (truncated or not a .keras zip archive)``.
    """
    path = Path(path)
    where = f"{option}: {path}" if option else str(path)
    check_model_file(path, where)
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CamkitError(f"{where}: cannot load the model in it ({reason})") from None


def check_model_file(path: Path, where: str) -> None:
    """CamkitError unless ``path`` looks like a whole model file: an intact ``.keras`` archive or an HDF5 file."""
    if path.is_dir():
        raise CamkitError(f"{where} is a folder, not a .keras model file")
    if not path.is_file():
        raise CamkitError(f"{where} does not exist")
    if path.suffix not in (".keras", ".h5"):
        raise CamkitError(f"{where}: expected a .keras or .h5 model file")
    if path.suffix == ".h5":
        with open(path, "rb") as f:
            if f.read(len(H5_SIGNATURE)) != H5_SIGNATURE:
                raise CamkitError(f"{where} is not a Keras model file (truncated or not an HDF5 file)")
        return
    if not zipfile.is_zipfile(path):
        raise CamkitError(f"{where} is not a Keras model file (truncated or not a .keras zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            missing = [name for name in KERAS_MEMBERS if name not in archive.namelist()]
            damaged = None if missing else archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise CamkitError(f"{where} is a damaged .keras archive ({exc})") from None
    if missing:
        raise CamkitError(f"{where} is a zip archive but not a Keras model (it has no {' or '.join(missing)})")
    if damaged is not None:
        raise CamkitError(f"{where} is a damaged .keras archive ({damaged} fails its checksum)")


def save_model(model: keras.Model, path: Path) -> Path:
    """Save atomically: a crash mid-save never leaves a broken ``path``."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path
