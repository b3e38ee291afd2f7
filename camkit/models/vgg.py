"""VGG16 (Simonyan & Zisserman 2015) from ``keras.applications``, in two heads.

- ``vgg16``: the original head (flatten -> 4096 -> 4096 -> classes). With ImageNet weights it
  needs 224x224x3 and 1000 classes, as Keras requires.
- ``vgg16-gap``: the conv backbone at any input size up to ``block5_conv3`` (the last pooling is
  dropped, as in Zhou et al. 2016), then GlobalAveragePooling and a softmax Dense: the
  conv -> GAP -> Dense head that CAM needs.

``weights`` is ``None`` (random), a local weights file (``.weights.h5``/``.h5``; for
``vgg16-gap`` the backbone's ``notop`` file), or ``"imagenet"``: loaded where Keras can fetch
it or has it cached under ``$KERAS_HOME/models``; offline that is a clear error saying how to
pass the file instead. The backbone layers stay at top level (not nested), named as in Keras
(``block5_conv3`` ...).
"""

from __future__ import annotations

from pathlib import Path

import keras

from camkit.errors import CamkitError
from camkit.models.registry import register_model

WEIGHT_FILES = {
    True: "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
    False: "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
}


def _weights_arg(weights: str | Path | None, include_top: bool) -> str | None:
    if weights is None or str(weights).lower() in ("none", "random", ""):
        return None
    if str(weights) == "imagenet":
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise CamkitError(f"--weights-file: {path} does not exist (expected a VGG16 weights .h5 file)")
    return str(path)


def _backbone(inputs: keras.KerasTensor, include_top: bool, weights: str | Path | None,
              n_classes: int) -> keras.Model:
    arg = _weights_arg(weights, include_top)
    try:
        return keras.applications.VGG16(include_top=include_top, weights=arg, input_tensor=inputs,
                                        classes=n_classes)
    except Exception as exc:
        if arg == "imagenet" and "URL fetch failure" in str(exc):
            raise CamkitError(
                "--weights imagenet: Keras could not fetch the VGG16 ImageNet weights (offline?) and has "
                f"no cached copy; download {WEIGHT_FILES[include_top]} on a connected machine and pass it "
                "with --weights-file PATH (or copy it to ~/.keras/models/)"
            ) from None
        if arg not in (None, "imagenet"):
            raise CamkitError(f"--weights-file: {arg} does not fit VGG16 ({str(exc).splitlines()[0]})") from None
        raise CamkitError(f"vgg16: {str(exc).splitlines()[0]}") from None


@register_model("vgg16", inputs="images")
def build_vgg16(input_shape: tuple[int, ...], n_classes: int = 1000,
                weights: str | Path | None = None) -> keras.Model:
    """VGG16 with its original fully connected head."""
    inputs = keras.Input(shape=input_shape, name="image")
    return _backbone(inputs, True, weights, n_classes)


@register_model("vgg16-gap", inputs="images")
def build_vgg16_gap(input_shape: tuple[int, ...], n_classes: int,
                    weights: str | Path | None = None) -> keras.Model:
    """VGG16 conv backbone -> GAP -> Dense(softmax), so CAM applies at ``block5_conv3``."""
    inputs = keras.Input(shape=input_shape, name="image")
    backbone = _backbone(inputs, False, weights, n_classes)
    features = backbone.get_layer("block5_conv3").output  # drop block5_pool, as Zhou et al. do
    x = keras.layers.GlobalAveragePooling2D(name="gap")(features)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="vgg16_gap")
