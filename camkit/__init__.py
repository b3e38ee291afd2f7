"""camkit: class activation maps for images and time series, with Keras 3.

``import camkit`` is cheap; TensorFlow loads on first use of the API below.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["CamkitError", "build_model", "explain", "load_model", "load_timeseries", "methods"]

_LAZY = {
    "load_model": ("camkit.models.saving", "load_model"),
    "build_model": ("camkit.models", "build_model"),
    "load_timeseries": ("camkit.data.timeseries", "load_timeseries"),
    "explain": ("camkit.methods", "explain"),
    "methods": ("camkit.methods", "methods"),
}

from camkit.errors import CamkitError  # noqa: E402


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'camkit' has no attribute {name!r}")
