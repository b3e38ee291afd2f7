"""A small CNN with the conv -> GAP -> Dense head that CAM needs, for small images (cluttered-digits).

Blocks of ``convs[i]`` × (Conv2D 3×3 'same' -> BatchNorm -> ReLU), with 2×2 max pooling between blocks
(not after the last), then GlobalAveragePooling2D and a softmax Dense layer, with nothing in between.
With the defaults (filters 32-64-128-128, one conv per block and two in the last) a 64×64 input gives
8×8 feature maps at the last conv (receptive field 54 px, a whole digit); with filters 32-64-128 and convs
1-1-3 (the cluttered-digits benchmark model, ``configs/cluttered_digits_cnn16.yaml``) 16×16 (receptive field
34 px). That conv's activation is named ``features``: the layer CAM and Grad-CAM look at. The other layers
are ``block{i}_conv{j}``, ``block{i}_bn{j}``, ``block{i}_relu{j}``, ``block{i}_pool``, then ``gap`` and
``predictions``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from camkit.errors import CamkitError
from camkit.models.registry import register_model

FILTERS = (32, 64, 128, 128)
BN_MOMENTUM = 0.9  # short trainings: Keras' 0.99 leaves the moving statistics far behind the weights


def _positive_ints(values: int | Sequence[int], n: int, option: str) -> list[int]:
    values = [values] * n if isinstance(values, int) else list(values)
    if len(values) != n or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise CamkitError(f"model.options.{option}: expected {n} positive integers, got {values}")
    return values


@register_model("small-gap-cnn", inputs="images")
def build_small_gap_cnn(input_shape: tuple[int, ...], n_classes: int, filters: Sequence[int] = FILTERS,
                        convs: int | Sequence[int] | None = None) -> keras.Model:
    """Small GAP CNN for ``(H, W, C)`` images.

    ``filters``: one entry per block; ``convs``: convolutions per block (an int for all blocks; default
    one each and two in the last block).
    """
    if len(input_shape) != 3:
        raise CamkitError(f"small-gap-cnn: expects (height, width, channels) images, got input shape {input_shape}")
    if isinstance(filters, int) or not len(filters):
        raise CamkitError(f"model.options.filters: expected a list of positive integers, got {filters!r}")
    filters = _positive_ints(filters, len(filters), "filters")
    if convs is None:
        convs = [1] * (len(filters) - 1) + [2]
    convs = _positive_ints(convs, len(filters), "convs")
    if min(input_shape[:2]) < 2 ** (len(filters) - 1):
        raise CamkitError(f"small-gap-cnn: a {input_shape[0]}x{input_shape[1]} input is too small for "
                          f"{len(filters) - 1} poolings")
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, (f, n) in enumerate(zip(filters, convs, strict=True), start=1):
        last = i == len(filters)
        for j in range(1, n + 1):
            x = keras.layers.Conv2D(f, 3, padding="same", name=f"block{i}_conv{j}")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn{j}")(x)
            x = keras.layers.Activation("relu", name="features" if last and j == n else f"block{i}_relu{j}")(x)
        if not last:
            x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="small_gap_cnn")
