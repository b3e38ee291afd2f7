"""Gradient-free methods run no backward pass.

Every registered method that declares ``needs_grads = False`` and ``uses_layer`` (from ``camkit.methods()`` and the
metadata, no names here) explains a freshly built model, so that its step and runners are traced during the call,
while every TensorFlow entry point to a backward pass raises: ``GradientTape.gradient``, ``jacobian``,
``batch_jacobian`` and ``tf.gradients``. The same harness stops a gradient method, so it is not vacuous.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import camkit
from camkit.methods import method_class

L = keras.layers
SHAPES = {"series": (12, 2), "images": (32, 32, 3)}  # 32x32: the smallest densenet-full input
SMALL = {"densenet-full": {"layers_per_block": 2, "n_down_blocks": 2}}  # quicker to build and trace, same code paths


class BackwardPass(AssertionError):
    """Raised by every patched gradient entry point."""


def fresh_model(method: str, kind: str) -> keras.Model:
    """A new model (nothing traced for it yet) of the kind the method's metadata asks for."""
    cls = method_class(method)
    keras.utils.set_random_seed(1)
    if cls.requires_model is not None:
        return camkit.build_model(cls.requires_model, SHAPES[kind], 3, **SMALL.get(cls.requires_model, {}))
    conv, gap = (L.Conv1D, L.GlobalAveragePooling1D) if kind == "series" else (L.Conv2D, L.GlobalAveragePooling2D)
    inputs = keras.Input(SHAPES[kind])
    x = gap()(conv(5, 3, padding="same", activation="relu")(conv(6, 3, padding="same", activation="relu")(inputs)))
    if cls.task == "cluster":
        return keras.Model(inputs, L.Dense(2, name="latent")(x))
    return keras.Model(inputs, L.Dense(3, activation="softmax")(x))


def options(method: str) -> dict:
    cls = method_class(method)
    extra = {"centroids": np.eye(3, 2, dtype=np.float32)} if cls.task == "cluster" else {}
    return {**cls.quick_options, **extra}


@pytest.fixture
def no_backward(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Patch every gradient entry point to record its use and raise."""
    used: list[str] = []

    def forbidden(name: str):
        def raise_(*args, **kwargs):
            used.append(name)
            raise BackwardPass(f"{name} called")

        return raise_

    for name in ("gradient", "jacobian", "batch_jacobian"):
        monkeypatch.setattr(tf.GradientTape, name, forbidden(f"GradientTape.{name}"))
    monkeypatch.setattr(tf, "gradients", forbidden("tf.gradients"))
    monkeypatch.setattr(tf.compat.v1, "gradients", forbidden("tf.compat.v1.gradients"))
    return used


GRADIENT_FREE = [m for m in camkit.methods() if not method_class(m).needs_grads and method_class(m).uses_layer]
CASES = [pytest.param(m, kind, id=f"{m}-{kind}") for m in GRADIENT_FREE for kind in method_class(m).input_kinds]


def test_the_gradient_free_methods_are_found() -> None:
    assert {"cam", "scorecam", "ablationcam"} <= set(GRADIENT_FREE)  # and eigencam, hires when registered


@pytest.mark.parametrize(("method", "kind"), CASES)
def test_no_backward_pass(method: str, kind: str, no_backward: list[str]) -> None:
    model = fresh_model(method, kind)
    x = np.random.default_rng(0).random((2, *SHAPES[kind])).astype(np.float32)
    exp = camkit.explain(model, x, method=method, targets="top2", **options(method))
    assert no_backward == [] and np.isfinite(exp.maps).all() and exp.maps.shape[:2] == (2, 2)


def test_the_harness_stops_a_gradient_method(no_backward: list[str]) -> None:
    gradient = next(m for m in camkit.methods() if method_class(m).needs_grads and method_class(m).uses_layer
                    and method_class(m).requires_model is None and method_class(m).task == "classify"
                    and "series" in method_class(m).input_kinds)
    with pytest.raises(BackwardPass):
        camkit.explain(fresh_model(gradient, "series"), np.ones((2, 12, 2), np.float32), method=gradient)
    assert no_backward == ["GradientTape.gradient"]
