"""DenseNet-FCN "half" and "full" models of High-Resolution CAM.

Tagaris, Sdraka, Stafylopatis, "High-Resolution Class Activation Mapping", ICIP 2019 (code:
djib2011/high-res-mapping, ``custom_models.HalfDenseNetFCN`` / ``AuxiliaryDenseNetFCN``), rebuilt in Keras 3
from keras-contrib's ``DenseNetFCN`` (titu1994) with ``nb_dense_block=4, growth_rate=16,
nb_layers_per_block=4, init_conv_filters=48, transition_pooling='max', upsampling_type='deconv',
early_transition=True``.

Graph (defaults, 224x224xC input; "new maps" = the growth*layers feature maps a dense block adds):

- ``initial_conv2D`` 3x3/48 → ``initial_bn`` → ReLU; early transition ``tr_early`` (BN, ReLU, 1x1 conv, 2x2
  max-pool) → 112.
- down blocks ``dense_0..3`` (each conv block = BN(eps 1.1e-5), ReLU, 3x3 conv growth, concatenated onto the
  running tensor), each kept as a skip and followed by transition ``tr_0..3`` → 56, 28, 14, 7.
- bottleneck ``dense_4`` at 7x7; its new maps (64) go up.
- up block ``b``: ``tr_up_b_conv2DT`` (3x3, stride 2, relu, bias, growth*layers filters) → concatenate with
  skip → dense block ``dense_{5+b}`` (no filter growth) → its new maps feed the next up block.
- **half** (``densenet-half``): up block 0 only (14x14), then ``conv_aux`` 1x1/16, no bias, on the new maps
  of ``dense_5`` → ``gap`` → ``classifier`` Dense(n_classes, softmax). Low-res CAM = CAM on ``conv_aux``.
- **full** (``densenet-full``): the same layers (same names) plus up blocks 1..3 to 112x112, then
  ``highres_features`` = keras-contrib's ``tr_up_early`` ConvTranspose (16 filters, stride 2, relu, bias) on
  the whole last dense-block output → 224x224x16, and ``reconstruction`` 1x1 conv to C channels (linear, no
  bias). High-res CAM = ``classifier`` weights applied to ``highres_features``.
  Outputs, in order: ``[classifier, reconstruction]`` (class probabilities from the shared 14x14 head,
  identical to the half model; image reconstruction at input resolution, trained with MSE).

L2 weight decay where the originals have it: initial conv, transition convs, transposed convs (keras-contrib)
and the classifier kernel (high-res-mapping); none on the 3x3 dense-layer convs (as keras-contrib),
``conv_aux`` or ``reconstruction`` (as high-res-mapping).

Parameter counts at 224x224x3 and 398 classes (``count_params()``, BatchNorm moving stats included):
half 1,069,630 (original 1,069,630); full 1,683,902 (original 1,683,902) -- exact. The counts pin the
graph: ``conv_aux`` on the 64 new maps of the first up block (14x14) is 1,024 weights, the final
transposed conv on the 240-channel 112x112 tensor 34,576, the bias-free 3-channel output 48.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields
from typing import Any

import keras
from keras import layers

from camkit.errors import CamkitError
from camkit.models.registry import register_model

BN_EPSILON = 1.1e-5


@dataclass(frozen=True)
class _Options:
    growth_rate: int = 16
    layers_per_block: int = 4
    n_down_blocks: int = 4
    init_filters: int = 48
    weight_decay: float = 1e-4


def _parse_options(model: str, options: dict[str, Any]) -> _Options:
    """Check builder options; unknown names and bad values raise CamkitError."""
    known = {f.name for f in fields(_Options)}
    unknown = sorted(set(options) - known)
    if unknown:
        choices = ", ".join(sorted(known))
        raise CamkitError(f"{model}: unknown option(s) {', '.join(unknown)}; choose from {choices}")
    opts = _Options(**options)
    for name in ("growth_rate", "layers_per_block", "n_down_blocks", "init_filters"):
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CamkitError(f"{model}: option {name} must be a positive integer, got {value!r}")
    if not isinstance(opts.weight_decay, (int, float)) or opts.weight_decay < 0:
        raise CamkitError(f"{model}: option weight_decay must be a number >= 0, got {opts.weight_decay!r}")
    return opts


def _check_input(model: str, input_shape: tuple[int, ...], n_classes: int, opts: _Options) -> None:
    """Input must be (height, width, channels) with height and width multiples of 2**(n_down_blocks+1)."""
    factor = 2 ** (opts.n_down_blocks + 1)
    if len(input_shape) != 3 or any(not isinstance(d, int) or d < 1 for d in input_shape):
        raise CamkitError(f"{model}: input shape {tuple(input_shape)} must be (height, width, channels)")
    if input_shape[0] % factor or input_shape[1] % factor:
        raise CamkitError(
            f"{model}: input shape {tuple(input_shape)} needs height and width that are multiples of "
            f"{factor} (e.g. 224x224)"
        )
    if n_classes < 1:
        raise CamkitError(f"{model}: n_classes must be at least 1, got {n_classes}")


class _Builder:
    """Builds the DenseNet-FCN graph with deterministic layer names (so half and full share them)."""

    def __init__(self, opts: _Options) -> None:
        self.opts = opts
        self.l2 = keras.regularizers.L2(opts.weight_decay) if opts.weight_decay > 0 else None

    def conv(self, x: Any, filters: int, kernel: int, name: str, decay: bool = True) -> Any:
        """Bias-free 'same' convolution, he_normal, with L2 decay where keras-contrib has it."""
        regularizer = self.l2 if decay else None
        return layers.Conv2D(
            filters,
            kernel,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            kernel_regularizer=regularizer,
            name=name,
        )(x)

    def bn_relu(self, x: Any, prefix: str) -> Any:
        x = layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, name=f"{prefix}_bn")(x)
        return layers.Activation("relu", name=f"{prefix}_relu")(x)

    def concat(self, tensors: list[Any], name: str) -> Any:
        if len(tensors) == 1:
            return tensors[0]
        return layers.Concatenate(axis=-1, name=name)(tensors)

    def dense_block(self, x: Any, block: int) -> tuple[Any, list[Any]]:
        """keras-contrib ``__dense_block``: returns (running concatenation, new feature maps)."""
        new_maps = []
        for i in range(self.opts.layers_per_block):
            prefix = f"dense_{block}_{i}"
            y = self.bn_relu(x, prefix)
            y = self.conv(y, self.opts.growth_rate, 3, f"{prefix}_conv2D", decay=False)
            new_maps.append(y)
            x = layers.Concatenate(axis=-1, name=f"{prefix}_concat")([x, y])
        return x, new_maps

    def transition_down(self, x: Any, filters: int, prefix: str) -> Any:
        x = self.bn_relu(x, prefix)
        x = self.conv(x, filters, 1, f"{prefix}_conv2D")
        return layers.MaxPooling2D(2, strides=2, name=f"{prefix}_pool")(x)

    def transition_up(self, x: Any, filters: int, name: str) -> Any:
        """keras-contrib ``__transition_up_block`` ('deconv'): 3x3 stride-2 transposed conv, relu, bias."""
        up = layers.Conv2DTranspose(
            filters,
            3,
            strides=2,
            padding="same",
            activation="relu",
            kernel_initializer="he_normal",
            kernel_regularizer=self.l2,
            name=name,
        )
        return up(x)

    def build(self, input_shape: tuple[int, ...], n_classes: int, full: bool) -> keras.Model:
        o = self.opts
        inputs = keras.Input(shape=input_shape, name="image")
        x = self.conv(inputs, o.init_filters, 3, "initial_conv2D")
        x = self.bn_relu(x, "initial")
        x = self.transition_down(x, o.init_filters, "tr_early")
        skips = []
        for block in range(o.n_down_blocks):
            x, _ = self.dense_block(x, block)
            skips.append(x)
            x = self.transition_down(x, int(x.shape[-1]), f"tr_{block}")
        _, new_maps = self.dense_block(x, o.n_down_blocks)
        new = self.concat(new_maps, f"dense_{o.n_down_blocks}_new")

        keep = o.growth_rate * o.layers_per_block
        aux_features = None
        for up in range(o.n_down_blocks if full else 1):
            block = o.n_down_blocks + 1 + up
            t = self.transition_up(new, keep, f"tr_up_{up}_conv2DT")
            x = layers.Concatenate(axis=-1, name=f"tr_up_{up}_skip")([t, skips[-1 - up]])
            x, new_maps = self.dense_block(x, block)
            new = self.concat(new_maps, f"dense_{block}_new")
            if up == 0:
                aux_features = new  # 14x14 at 224 input: the low-res CAM features

        conv_aux = self.conv(aux_features, 16, 1, "conv_aux", decay=False)
        pooled = layers.GlobalAveragePooling2D(name="gap")(conv_aux)
        probs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=self.l2, name="classifier")(
            pooled
        )
        if not full:
            return keras.Model(inputs, probs, name="densenet_fcn_half")

        highres = self.transition_up(x, o.growth_rate, "highres_features")
        recon = self.conv(highres, input_shape[-1], 1, "reconstruction", decay=False)
        return keras.Model(inputs, [probs, recon], name="densenet_fcn_full")


def _build(
    model: str, input_shape: tuple[int, ...], n_classes: int, full: bool, options: dict[str, Any]
) -> keras.Model:
    opts = _parse_options(model, options)
    input_shape = tuple(int(d) if isinstance(d, numbers.Integral) else d for d in input_shape)
    _check_input(model, input_shape, n_classes, opts)
    return _Builder(opts).build(input_shape, n_classes, full)


@register_model("densenet-half", inputs="images")
def build_densenet_half(input_shape: tuple[int, ...], n_classes: int, **options: Any) -> keras.Model:
    """Classifier: DenseNet-FCN down path + first up block, ``conv_aux`` 1x1/16 → ``gap`` → ``classifier``."""
    return _build("densenet-half", input_shape, n_classes, False, options)


@register_model("densenet-full", inputs="images")
def build_densenet_full(input_shape: tuple[int, ...], n_classes: int, **options: Any) -> keras.Model:
    """Half model continued to full resolution; outputs ``[classifier, reconstruction]``."""
    return _build("densenet-full", input_shape, n_classes, True, options)


def shared_layer_names(half: keras.Model, full: keras.Model) -> list[str]:
    """Names of layers that hold weights in both models (in ``half``'s layer order), for copying weights."""
    full_weighted = {layer.name for layer in full.layers if layer.weights}
    return [layer.name for layer in half.layers if layer.weights and layer.name in full_weighted]
