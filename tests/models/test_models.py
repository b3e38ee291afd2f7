"""Model builders of the registry: output shapes, parameter counts by hand, errors (camkit.models)."""

from __future__ import annotations

import re

import keras
import keras.src.utils.file_utils as keras_file_utils
import numpy as np
import pytest

from camkit.errors import CamkitError
from camkit.models import build_model, model_names


def conv_params(kernel: int, c_in: int, c_out: int, dims: int = 1) -> int:
    """Weights of a Conv with bias: kernel^dims * c_in * c_out + c_out."""
    return kernel**dims * c_in * c_out + c_out


def bn_params(channels: int) -> int:
    """BatchNormalization: gamma, beta, moving mean, moving variance."""
    return 4 * channels


def dense_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def residual_block_params(c_in: int, filters: int) -> int:
    """Shortcut Conv(k1)+BN and Conv(k8)+BN, Conv(k5)+BN, Conv(k3)+BN."""
    total = conv_params(1, c_in, filters) + bn_params(filters)
    for kernel, n_in in ((8, c_in), (5, filters), (3, filters)):
        total += conv_params(kernel, n_in, filters) + bn_params(filters)
    return total


# VGG16's 13 3x3 convolutions: (in, out) channels.
VGG16_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
VGG16_CONV_PARAMS = sum(conv_params(3, i, o, dims=2) for i, o in VGG16_CONVS)


def test_registry_lists_the_builders():
    assert {"fcn", "resnet1d", "resnet1d-ae", "vgg16", "vgg16-gap"} <= set(model_names())
    assert model_names() == sorted(model_names())


def test_every_registered_builder_is_covered():
    """A new builder must get shape/parameter tests here (or in its own test file, like densenet)."""
    covered_here = {"fcn", "resnet1d", "resnet1d-ae", "vgg16", "vgg16-gap"}
    covered_elsewhere = {"densenet-half", "densenet-full", "small-gap-cnn",  # test_densenet_fcn.py, test_benchmark.py
                         "conv-ae"}  # test_clustering.py
    assert set(model_names()) == covered_here | covered_elsewhere


def test_unknown_model_lists_the_names():
    with pytest.raises(CamkitError, match="unknown model 'lenet'") as info:
        build_model("lenet", (150, 1), 2)
    for name in model_names():
        assert name in str(info.value)


def test_fcn_shapes_and_parameter_count():
    model = build_model("fcn", (150, 1), 2)
    assert tuple(model.input_shape) == (None, 150, 1)
    assert tuple(model.output_shape) == (None, 2)
    assert tuple(model.get_layer("block3_relu").output.shape) == (None, 150, 128)  # 'same' padding keeps T
    assert tuple(model.get_layer("gap").output.shape) == (None, 128)
    expected = (conv_params(8, 1, 128) + bn_params(128)      # 1,152 + 512
                + conv_params(5, 128, 256) + bn_params(256)  # 164,096 + 1,024
                + conv_params(3, 256, 128) + bn_params(128)  # 98,432 + 512
                + dense_params(128, 2))                      # 258
    assert expected == 265_986
    assert model.count_params() == expected
    probs = model.predict(np.zeros((3, 150, 1), np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_fcn_multichannel_and_other_length():
    model = build_model("fcn", (24, 3), 5)
    assert tuple(model.output_shape) == (None, 5)
    assert model.count_params() == 265_986 - 8 * 128 * 1 + 8 * 128 * 3 - 258 + dense_params(128, 5)


def test_resnet1d_shapes_and_parameter_count():
    model = build_model("resnet1d", (150, 1), 2)
    assert tuple(model.output_shape) == (None, 2)
    assert tuple(model.get_layer("block3_out").output.shape) == (None, 150, 128)
    expected = (residual_block_params(1, 64)       # 34,624
                + residual_block_params(64, 128)   # 207,360
                + residual_block_params(128, 128)  # 281,088
                + dense_params(128, 2))            # 258
    assert expected == 523_330
    assert model.count_params() == expected
    # Non-trainable: the moving mean and variance of the 12 BatchNorm layers (4 per block).
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert non_trainable == 2 * 4 * (64 + 128 + 128)


def test_resnet1d_autoencoder_structure():
    model = build_model("resnet1d-ae", (150, 1), 2)
    x = np.random.default_rng(0).normal(size=(2, 150, 1)).astype(np.float32)
    assert model.predict(x, verbose=0).shape == x.shape
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    assert isinstance(encoder, keras.Model) and isinstance(decoder, keras.Model)
    assert [layer.name for layer in model.layers] == ["series", "encoder", "decoder"]
    assert tuple(encoder.output_shape) == (None, 10)
    assert tuple(decoder.input_shape) == (None, 10)
    assert tuple(decoder.output_shape) == (None, 150, 1)
    codes = encoder.predict(x, verbose=0)
    np.testing.assert_allclose(decoder.predict(codes, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    enc = residual_block_params(1, 64) + residual_block_params(64, 128) + residual_block_params(128, 128)
    enc += dense_params(128, 10)  # latent, linear
    dec = (dense_params(10, 150 * 1)  # expand to T*C
           + residual_block_params(1, 128) + residual_block_params(128, 128) + residual_block_params(128, 64)
           + conv_params(3, 64, 1))  # reconstruction
    assert encoder.count_params() == enc == 524_362
    assert decoder.count_params() == dec == 525_491
    assert model.count_params() == enc + dec


def test_resnet1d_autoencoder_latent_dim_option():
    model = build_model("resnet1d-ae", (24, 2), 0, latent_dim=4)
    assert tuple(model.get_layer("encoder").output_shape) == (None, 4)
    assert tuple(model.output_shape) == (None, 24, 2)


def test_vgg16_gap_small_input():
    model = build_model("vgg16-gap", (32, 32, 3), 2)
    names = [layer.name for layer in model.layers]
    # GAP directly on block5_conv3: block5_pool is dropped (Zhou et al. 2016).
    assert names[-3:] == ["block5_conv3", "gap", "predictions"]
    assert "block5_pool" not in names
    assert tuple(model.get_layer("block5_conv3").output.shape) == (None, 2, 2, 512)
    assert tuple(model.output_shape) == (None, 2)
    assert VGG16_CONV_PARAMS == 14_714_688  # Keras' VGG16(include_top=False)
    assert model.count_params() == VGG16_CONV_PARAMS + dense_params(512, 2)
    probs = model.predict(np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32), verbose=0)
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_vgg16_fc_head_small_input():
    model = build_model("vgg16", (32, 32, 3), 3)
    assert [layer.name for layer in model.layers][-5:] == ["block5_pool", "flatten", "fc1", "fc2", "predictions"]
    assert tuple(model.get_layer("flatten").output.shape) == (None, 512)  # 32 / 2^5 = 1: 1x1x512
    assert tuple(model.output_shape) == (None, 3)
    expected = VGG16_CONV_PARAMS + dense_params(512, 4096) + dense_params(4096, 4096) + dense_params(4096, 3)
    assert model.count_params() == expected == 33_609_539


def test_vgg16_at_224_has_keras_published_parameter_count():
    model = build_model("vgg16", (224, 224, 3), 1000)
    flat = 7 * 7 * 512
    expected = VGG16_CONV_PARAMS + dense_params(flat, 4096) + dense_params(4096, 4096) + dense_params(4096, 1000)
    assert expected == 138_357_544  # keras.applications.VGG16 documentation
    assert model.count_params() == expected


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: keras' downloader fails as it does offline; KERAS_HOME is an empty folder."""
    keras_home = tmp_path / "keras_home"
    keras_home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    calls: list[str] = []

    def get_file(fname=None, origin=None, *args, **kwargs):
        calls.append(origin)
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras_file_utils, "get_file", get_file)
    return keras_home, calls


@pytest.mark.parametrize(("name", "shape", "classes", "weight_file"), [
    ("vgg16-gap", (32, 32, 3), 2, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("vgg16", (224, 224, 3), 1000, "vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
])
def test_vgg16_imagenet_offline_says_how_to_pass_a_file(offline, name, shape, classes, weight_file):
    keras_home, calls = offline
    with pytest.raises(CamkitError) as info:
        build_model(name, shape, classes, weights="imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "--weights-file" in message
    assert weight_file in message
    assert len(calls) == 1 and calls[0].endswith(weight_file)  # it tried the download once, which failed
    assert list(keras_home.rglob("*")) == []  # and nothing was written


def test_vgg16_imagenet_head_needs_1000_classes(offline):
    _, calls = offline
    with pytest.raises(CamkitError, match=r"^vgg16: .*classes.* 1000"):
        build_model("vgg16", (224, 224, 3), 2, weights="imagenet")
    assert calls == []  # refused before any download


def test_vgg16_missing_weights_file(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(CamkitError) as info:
        build_model("vgg16-gap", (32, 32, 3), 2, weights=str(missing))
    assert str(info.value) == f"--weights-file: {missing} does not exist (expected a VGG16 weights .h5 file)"


def test_vgg16_weights_file_round_trip(tmp_path):
    """A local weights file is loaded: the backbone of a second model equals the first's."""
    source = build_model("vgg16", (32, 32, 3), 2)
    path = tmp_path / "vgg.weights.h5"
    source.save_weights(path)
    loaded = build_model("vgg16", (32, 32, 3), 2, weights=str(path))
    for a, b in zip(source.get_layer("block1_conv1").get_weights(), loaded.get_layer("block1_conv1").get_weights(),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(source.get_layer("fc2").get_weights()[0], loaded.get_layer("fc2").get_weights()[0])


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_vgg16_weights_file_that_does_not_fit(tmp_path):
    path = tmp_path / "fcn.weights.h5"
    build_model("fcn", (150, 1), 2).save_weights(path)
    with pytest.raises(CamkitError, match=rf"^--weights-file: {re.escape(str(path))} does not fit VGG16 \("):
        build_model("vgg16-gap", (32, 32, 3), 2, weights=str(path))
