"""The 2-D Grad-CeAM autoencoder (Lafabregue et al., ICTAI 2021): a small convolutional autoencoder for images.

Encoder: Conv2D 32 k3 stride 2 (ReLU) -> Conv2D 64 k5 stride 2 (ReLU, the layer Grad-CeAM looks at, named
``features``) -> Flatten -> Dense(latent, linear). Decoder: Dense(H/4 · W/4 · 64, ReLU) -> reshape ->
Conv2DTranspose 32 k5 stride 2 (ReLU) -> Conv2DTranspose C k3 stride 2 (linear). Trained on
reconstruction only; the returned model nests ``encoder`` and ``decoder`` as ``resnet1d-ae`` does.
"""

from __future__ import annotations

import keras

from camkit.errors import CamkitError
from camkit.models.registry import register_model


@register_model("conv-ae", inputs="images")
def build_conv_autoencoder(input_shape: tuple[int, ...], n_classes: int = 0, latent_dim: int = 10) -> keras.Model:
    """Autoencoder ``image -> encoder -> latent -> decoder -> image`` for (H, W, C) with H, W multiples of 4."""
    if len(input_shape) != 3 or input_shape[0] % 4 or input_shape[1] % 4:
        raise CamkitError(f"conv-ae: expects (height, width, channels) images with sides divisible by 4, "
                          f"got input shape {input_shape}")
    height, width, channels = input_shape
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(64, 5, strides=2, padding="same", activation="relu", name="features")(x)
    x = layers.Flatten(name="flatten")(x)
    encoder = keras.Model(inputs, layers.Dense(latent_dim, name="latent")(x), name="encoder")

    codes = keras.Input(shape=(latent_dim,), name="codes")
    y = layers.Dense(height // 4 * width // 4 * 64, activation="relu", name="expand")(codes)
    y = layers.Reshape((height // 4, width // 4, 64), name="unflatten")(y)
    y = layers.Conv2DTranspose(32, 5, strides=2, padding="same", activation="relu", name="deconv1")(y)
    y = layers.Conv2DTranspose(channels, 3, strides=2, padding="same", name="reconstruction")(y)
    decoder = keras.Model(codes, y, name="decoder")

    image = keras.Input(shape=input_shape, name="image")
    return keras.Model(image, decoder(encoder(image)), name="conv_ae")
