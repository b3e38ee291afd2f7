"""One registry of model builders: ``build_model("fcn", input_shape, n_classes)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from camkit.config import close_match, culprit
from camkit.errors import CamkitError

Builder = Callable[..., keras.Model]
_BUILDERS: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Register ``builder(input_shape, n_classes, **options) -> keras.Model`` under ``name``."""

    def wrap(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return wrap


def model_names() -> list[str]:
    """The names ``build_model`` accepts."""
    return sorted(_BUILDERS)


def model_builder(name: str) -> Builder:
    """The builder registered under ``name``; a CamkitError listing the names otherwise."""
    if name not in _BUILDERS:
        raise CamkitError(f"{culprit(name, '--model')}: unknown model {name!r}{close_match(name, _BUILDERS)}; "
                          f"choose one of {', '.join(model_names())}")
    return _BUILDERS[name]


def build_model(name: str, input_shape: tuple[int, ...], n_classes: int, **options: Any) -> keras.Model:
    """Build a fresh, uncompiled model by registered name."""
    return model_builder(name)(tuple(input_shape), int(n_classes), **options)
