"""Fully convolutional network for time series (Wang, Yan & Oates, IJCNN 2017).

Conv1D 128 k8 -> 256 k5 -> 128 k3, each followed by BatchNorm and ReLU, then global average
pooling and a softmax Dense layer: the conv -> GAP -> Dense head that CAM needs.
"""

from __future__ import annotations

import keras

from camkit.models.registry import register_model

FILTERS = (128, 256, 128)
KERNELS = (8, 5, 3)


def conv_bn_relu(x: keras.KerasTensor, filters: int, kernel: int, name: str) -> keras.KerasTensor:
    """Conv1D ('same') -> BatchNorm -> ReLU, layers named ``{name}_conv/_bn/_relu``."""
    x = keras.layers.Conv1D(filters, kernel, padding="same", name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


@register_model("fcn", inputs="timeseries")
def build_fcn(input_shape: tuple[int, ...], n_classes: int) -> keras.Model:
    """FCN classifier for ``(T, C)`` series."""
    inputs = keras.Input(shape=input_shape, name="series")
    x = inputs
    for i, (filters, kernel) in enumerate(zip(FILTERS, KERNELS, strict=True), start=1):
        x = conv_bn_relu(x, filters, kernel, f"block{i}")
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="fcn")
