"""ResNet for time series (Wang et al. 2017; Fawaz et al. 2019) and the Grad-CeAM autoencoder.

Residual block: Conv(k8) -> BN -> ReLU -> Conv(k5) -> BN -> ReLU -> Conv(k3) -> BN, plus a
shortcut Conv(k1) -> BN, added, then ReLU. The classifier stacks blocks of 64, 128, 128
filters, then GAP and a softmax Dense. The autoencoder of Grad-CeAM (Lafabregue et al., ICTAI
2021) encodes with the same blocks, GAP and a linear Dense latent (10), and decodes with
Dense(T*C) -> reshape -> blocks 128, 128, 64 -> Conv(C, k3) linear. It is trained on
reconstruction only; clustering happens on the latent codes.
"""

from __future__ import annotations

import keras

from camkit.models.registry import register_model

ENCODER_FILTERS = (64, 128, 128)
DECODER_FILTERS = (128, 128, 64)


def residual_block(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """One residual block; its output layer is ``{name}_out`` (a ReLU)."""
    layers = keras.layers
    shortcut = layers.Conv1D(filters, 1, padding="same", name=f"{name}_short_conv")(x)
    shortcut = layers.BatchNormalization(name=f"{name}_short_bn")(shortcut)
    for i, kernel in enumerate((8, 5, 3), start=1):
        x = layers.Conv1D(filters, kernel, padding="same", name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        if i < 3:
            x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(x)


@register_model("resnet1d", inputs="timeseries")
def build_resnet1d(input_shape: tuple[int, ...], n_classes: int) -> keras.Model:
    """ResNet-1D classifier for ``(T, C)`` series."""
    inputs = keras.Input(shape=input_shape, name="series")
    x = inputs
    for i, filters in enumerate(ENCODER_FILTERS, start=1):
        x = residual_block(x, filters, f"block{i}")
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="resnet1d")


@register_model("resnet1d-ae", inputs="timeseries")
def build_resnet1d_autoencoder(input_shape: tuple[int, ...], n_classes: int = 0,
                               latent_dim: int = 10) -> keras.Model:
    """Autoencoder ``series -> encoder -> latent -> decoder -> series``.

    The returned model nests two models named ``encoder`` and ``decoder``
    (``model.get_layer("encoder")``); ``n_classes`` is unused (k-means picks the clusters).
    """
    length, channels = input_shape
    inputs = keras.Input(shape=input_shape, name="series")
    x = inputs
    for i, filters in enumerate(ENCODER_FILTERS, start=1):
        x = residual_block(x, filters, f"enc{i}")
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    latent = keras.layers.Dense(latent_dim, name="latent")(x)
    encoder = keras.Model(inputs, latent, name="encoder")

    codes = keras.Input(shape=(latent_dim,), name="codes")
    y = keras.layers.Dense(length * channels, name="expand")(codes)
    y = keras.layers.Reshape((length, channels), name="unflatten")(y)
    for i, filters in enumerate(DECODER_FILTERS, start=1):
        y = residual_block(y, filters, f"dec{i}")
    y = keras.layers.Conv1D(channels, 3, padding="same", name="reconstruction")(y)
    decoder = keras.Model(codes, y, name="decoder")

    series = keras.Input(shape=input_shape, name="series")
    return keras.Model(series, decoder(encoder(series)), name="resnet1d_ae")
