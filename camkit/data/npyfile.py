"""``.npy`` files read safely: the header is checked before the data, so a truncated, padded, pickled or
non-NumPy file, or one of the wrong shape or dtype, is refused with its name, never half-read or unpickled."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from camkit.errors import CamkitError

MAGIC = b"\x93NUMPY"
_KINDS = {"c": "complex numbers", "U": "text", "S": "bytes", "O": "Python objects", "V": "records",
          "M": "dates", "m": "time spans", "b": "true/false values"}


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, offset of the data)`` from the header of an ``.npy`` file."""
    if not path.is_file():
        raise CamkitError(f"{path}: file not found")
    with path.open("rb") as f:
        start = f.read(len(MAGIC))
        if start != MAGIC:
            what = "a .npz archive" if start.startswith(b"PK") else "it does not start with the NumPy header"
            raise CamkitError(f"{path}: not an .npy file ({what})")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in readers:
                raise ValueError(f"unsupported .npy version {version[0]}.{version[1]}")
            shape, _, dtype = readers[version](f)
        except (ValueError, SyntaxError, EOFError) as exc:
            raise CamkitError(f"{path}: damaged .npy header ({exc})") from None
        return tuple(shape), dtype, f.tell()


def read_numbers(path: Path, ndims: Collection[int], expected: str) -> np.ndarray:
    """An ``.npy`` array of real numbers (ints or floats) with one of ``ndims`` dimensions (``expected`` says which)."""
    shape, dtype, offset = npy_header(path)
    if dtype.kind not in "iuf":
        raise CamkitError(f"{path}: holds {_KINDS.get(dtype.kind, 'values')} (dtype {dtype}), not real numbers")
    if len(shape) not in ndims:
        raise CamkitError(f"{path}: expected {expected}, got shape {shape}")
    promised = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    held = path.stat().st_size - offset
    if held != promised:
        what = "truncated" if held < promised else "altered (bytes after the data)"
        raise CamkitError(f"{path}: {what}: its header promises shape {shape} of {dtype} ({promised} bytes of data) "
                          f"but the file holds {held}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise CamkitError(f"{path}: not a readable .npy file ({exc})") from None
