"""DenseNet-FCN half/full models of High-Resolution CAM (camkit.models.densenet_fcn)."""

from __future__ import annotations

import numpy as np
import pytest

from camkit.errors import CamkitError
from camkit.models.densenet_fcn import build_densenet_full, build_densenet_half, shared_layer_names
from camkit.models.registry import build_model, model_names


@pytest.fixture(scope="module")
def small_pair():
    """Half and full models on 64x64x3 input with 5 classes."""
    return build_densenet_half((64, 64, 3), 5), build_densenet_full((64, 64, 3), 5)


def test_registered():
    assert {"densenet-half", "densenet-full"} <= set(model_names())


def test_parameter_counts_at_224x224x3_398_classes():
    half = build_model("densenet-half", (224, 224, 3), 398)
    full = build_model("densenet-full", (224, 224, 3), 398)
    # Originals (djib2011/high-res-mapping, Keras 2 count_params): half 1,069,630, full 1,683,902.
    assert half.count_params() == 1_069_630
    assert full.count_params() == 1_683_902
    assert tuple(full.get_layer("highres_features").output.shape) == (None, 224, 224, 16)
    assert tuple(half.get_layer("conv_aux").output.shape) == (None, 14, 14, 16)


def test_output_shapes(small_pair):
    half, full = small_pair
    assert tuple(half.output.shape) == (None, 5)
    assert [tuple(o.shape) for o in full.outputs] == [(None, 5), (None, 64, 64, 3)]
    assert list(full.output_names) == ["classifier", "reconstruction"]
    assert tuple(full.get_layer("highres_features").output.shape) == (None, 64, 64, 16)
    assert tuple(full.get_layer("gap").output.shape) == (None, 16)


def test_any_channels_and_non_square_input():
    full = build_densenet_full((32, 64, 1), 2)
    assert [tuple(o.shape) for o in full.outputs] == [(None, 2), (None, 32, 64, 1)]
    assert tuple(full.get_layer("conv_aux").output.shape) == (None, 2, 4, 16)


def test_conv_aux_is_input_over_16(small_pair):
    half, full = small_pair
    for model in (half, full):
        assert tuple(model.get_layer("conv_aux").output.shape) == (None, 4, 4, 16)
    assert tuple(build_densenet_half((96, 32, 3), 3).get_layer("conv_aux").output.shape) == (None, 6, 2, 16)


def test_half_layers_present_in_full_with_same_weight_shapes(small_pair):
    half, full = small_pair
    full_names = {layer.name for layer in full.layers}
    for layer in half.layers:
        assert layer.name in full_names, layer.name
        other = full.get_layer(layer.name)
        assert [tuple(w.shape) for w in layer.weights] == [tuple(w.shape) for w in other.weights], layer.name
    shared = shared_layer_names(half, full)
    assert shared == [layer.name for layer in half.layers if layer.weights]
    assert {"conv_aux", "classifier", "initial_conv2D", "tr_up_0_conv2DT"} <= set(shared)
    assert "highres_features" not in shared and "reconstruction" not in shared


def test_copied_weights_give_identical_classification(small_pair):
    half, full = small_pair
    for name in shared_layer_names(half, full):
        full.get_layer(name).set_weights(half.get_layer(name).get_weights())
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    probs_half = np.asarray(half(x, training=False))
    probs_full, recon = (np.asarray(t) for t in full(x, training=False))
    np.testing.assert_allclose(probs_full, probs_half, rtol=1e-5, atol=1e-6)
    assert recon.shape == (2, 64, 64, 3)


def test_options_change_the_graph():
    half = build_densenet_half(
        (48, 48, 3), 4, growth_rate=8, layers_per_block=2, n_down_blocks=3, init_filters=16
    )
    assert tuple(half.get_layer("conv_aux").output.shape) == (None, 6, 6, 16)
    assert tuple(half.get_layer("dense_4_new").output.shape) == (None, 6, 6, 16)  # 2 layers x growth 8


@pytest.mark.parametrize("shape", [(100, 100, 3), (224, 200, 3), (16, 16, 3)])
def test_bad_input_size_raises(shape):
    with pytest.raises(CamkitError, match=r"multiples of 32") as err:
        build_densenet_half(shape, 10)
    assert str(shape) in str(err.value)
    with pytest.raises(CamkitError, match=r"multiples of 32"):
        build_model("densenet-full", shape, 10)


def test_bad_rank_and_options_raise():
    with pytest.raises(CamkitError, match=r"\(224, 224\)"):
        build_densenet_half((224, 224), 10)
    with pytest.raises(CamkitError, match="unknown option"):
        build_densenet_full((64, 64, 3), 10, growth=12)
    with pytest.raises(CamkitError, match="growth_rate"):
        build_densenet_half((64, 64, 3), 10, growth_rate=0)
