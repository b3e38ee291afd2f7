"""One registry of model builders: ``build_model("fcn", input_shape, n_classes)``.

A builder declares what it takes (``inputs="timeseries"``: (T, C) series, ``"images"``: (H, W, C) images),
so a model is refused for data of the other kind before anything is built (:func:`check_inputs`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from camkit.config import close_match, culprit
from camkit.errors import CamkitError

Builder = Callable[..., keras.Model]
INPUT_KINDS = {"timeseries": "a time-series model", "images": "an image model"}
_BUILDERS: dict[str, Builder] = {}
_INPUTS: dict[str, str | None] = {}


def register_model(name: str, inputs: str | None = None) -> Callable[[Builder], Builder]:
    """Register ``builder(input_shape, n_classes, **options) -> keras.Model`` under ``name``; ``inputs``: the
    data kind it takes (timeseries | images; None: any)."""
    if inputs is not None and inputs not in INPUT_KINDS:
        raise ValueError(f"model {name!r}: inputs must be one of {', '.join(INPUT_KINDS)}, not {inputs!r}")

    def wrap(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        _INPUTS[name] = inputs
        return builder

    return wrap


def model_names(inputs: str | None = None) -> list[str]:
    """The names ``build_model`` accepts (with ``inputs``: those for that data kind)."""
    return sorted(n for n, kind in _INPUTS.items() if inputs is None or kind in (None, inputs))


def model_builder(name: str) -> Builder:
    """The builder registered under ``name``; a CamkitError listing the names otherwise."""
    if name not in _BUILDERS:
        raise CamkitError(f"{culprit(name, '--model')}: unknown model {name!r}{close_match(name, _BUILDERS)}; "
                          f"choose one of {', '.join(model_names())}")
    return _BUILDERS[name]


def check_inputs(name: str, kind: str, dataset: str) -> None:
    """CamkitError unless model ``name`` takes data of ``kind`` (timeseries | images), e.g. ``--model fcn: a
    time-series model; cluttered_digits is an image dataset (choose one of ...)``."""
    model_builder(name)
    takes = _INPUTS[name]
    if takes is not None and takes != kind:
        what = "an image dataset" if kind == "images" else "a time-series dataset"
        raise CamkitError(f"--model {name}: {INPUT_KINDS[takes]}; {dataset} is {what} "
                          f"(choose one of {', '.join(model_names(kind))})")


def build_model(name: str, input_shape: tuple[int, ...], n_classes: int, **options: Any) -> keras.Model:
    """Build a fresh, uncompiled model by registered name."""
    return model_builder(name)(tuple(input_shape), int(n_classes), **options)
