"""Every attribution formula against NumPy on tiny models with known weights (REFERENCE.md)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from camkit.methods import explain

L = keras.layers

# Conv1D(3, k=2) -> ReLU -> GAP -> Dense(2) on length-5 series: A is (4, 3), dy_c/dA[t, k] = W[k, c] / 4.
CONV_W = np.array([[[1.0, -1.0, 0.5]], [[0.5, 1.0, -1.0]]], np.float32)
CONV_B = np.array([0.0, 0.5, 0.2], np.float32)
MIX_W = np.array([[[1.0, -0.5], [-1.0, 1.0], [0.5, 0.25]]], np.float32)
MIX_B = np.array([0.1, -0.2], np.float32)
DENSE_W = np.array([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.5]], np.float32)
DENSE_B = np.array([0.1, -0.1], np.float32)
X = np.array([[1.0, 2.0, -1.0, 0.5, 3.0], [-0.5, 1.0, 0.25, -2.0, 1.5]], np.float32)[..., None]


def tiny_1d(deep: bool = False, activation: str | None = None) -> keras.Model:
    """conv(relu) [-> mix (1x1 conv) -> ReLU] -> gap -> dense, fixed weights."""
    inputs = keras.Input((5, 1))
    x = L.Conv1D(3, 2, activation="relu", name="conv")(inputs)
    if deep:
        x = L.ReLU(name="mix_relu")(L.Conv1D(2, 1, name="mix")(x))
    x = L.GlobalAveragePooling1D(name="gap")(x)
    model = keras.Model(inputs, L.Dense(2, activation=activation, name="dense")(x))
    model.get_layer("conv").set_weights([CONV_W, CONV_B])
    dense_w = DENSE_W[:2] if deep else DENSE_W
    if deep:
        model.get_layer("mix").set_weights([MIX_W, MIX_B])
    model.get_layer("dense").set_weights([dense_w, DENSE_B])
    return model


def np_acts(x: np.ndarray) -> np.ndarray:
    """(N, 4, 3) conv activations of ``tiny_1d``."""
    z = x[:, :-1, 0, None] * CONV_W[0, 0] + x[:, 1:, 0, None] * CONV_W[1, 0] + CONV_B
    return np.maximum(z, 0)


def np_grads(acts: np.ndarray, targets: np.ndarray, deep: bool) -> np.ndarray:
    """dy_t / dA for ``tiny_1d``, written out."""
    steps = acts.shape[1]
    if not deep:
        return np.broadcast_to(DENSE_W[:, targets].T[:, None, :] / steps, acts.shape).copy()
    z = acts @ MIX_W[0] + MIX_B  # (N, T, 2)
    upstream = (z > 0) * DENSE_W[:2, targets].T[:, None, :] / steps  # dy/dz
    return upstream @ MIX_W[0].T


def np_logits(x: np.ndarray, deep: bool) -> np.ndarray:
    acts = np_acts(x)
    if deep:
        acts = np.maximum(acts @ MIX_W[0] + MIX_B, 0)
        return acts.mean(1) @ DENSE_W[:2] + DENSE_B
    return acts.mean(1) @ DENSE_W + DENSE_B


def np_gradcampp(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Grad-CAM++ written with loops: a = g²/(2g² + Σ A g³) (0 -> 1), w = Σ a ReLU(g), ReLU(Σ w A)."""
    n, steps, channels = acts.shape
    maps = np.zeros((n, steps))
    for i in range(n):
        for k in range(channels):
            total = acts[i, :, k].sum()
            weight = 0.0
            for t in range(steps):
                g = grads[i, t, k]
                denom = 2 * g**2 + total * g**3
                weight += g**2 / (denom if denom != 0 else 1.0) * max(g, 0.0)
            maps[i] += weight * acts[i, :, k]
    return np.maximum(maps, 0)


def np_resize_1d(raw: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (tf.image.resize), one axis, edges clamped."""
    n_in = raw.shape[-1]
    src = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    return raw[..., lo] * (1 - frac) + raw[..., hi] * frac


def np_resize_2d(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    rows = np_resize_1d(np.swapaxes(raw, -1, -2), size[0])
    return np_resize_1d(np.swapaxes(rows, -1, -2), size[1])


def np_normalise(maps: np.ndarray, signed: bool, spatial: int = 1) -> np.ndarray:
    """Per map over the last ``spatial`` axes: min-max when signed, else divided by the max."""
    axes = tuple(range(maps.ndim - spatial, maps.ndim))
    low = maps.min(axis=axes, keepdims=True) if signed else 0
    return (maps - low) / (maps.max(axis=axes, keepdims=True) - low)


FORMULAS = {
    "gradcam": lambda a, g: np.maximum(np.einsum("ntk,nk->nt", a, g.mean(1)), 0),
    "counterfactual": lambda a, g: np.maximum(np.einsum("ntk,nk->nt", a, -g.mean(1)), 0),
    "gradcam++": np_gradcampp,
}


@pytest.mark.parametrize("deep", [False, True])
@pytest.mark.parametrize("method", sorted(FORMULAS))
@pytest.mark.parametrize("targets", [0, 1, [1, 0]])
def test_gradient_methods_raw_and_maps(method: str, deep: bool, targets: int | list[int]) -> None:
    exp = explain(tiny_1d(deep), X, method=method, layer="conv", targets=targets)
    t = np.broadcast_to(np.asarray(targets), (2,))
    acts = np_acts(X)
    expected = FORMULAS[method](acts, np_grads(acts, t, deep))
    assert exp.raw.shape == (2, 4) and exp.raw.dtype == np.float32
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(exp.targets, t)
    np.testing.assert_allclose(exp.scores, np_logits(X, deep)[[0, 1], t], rtol=1e-5)
    up = np_resize_1d(expected, 5)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.nan_to_num(np_normalise(up, signed=False))
    np.testing.assert_allclose(exp.maps, want, rtol=1e-5, atol=1e-6)


def test_cam_raw_and_minmax_maps() -> None:
    exp = explain(tiny_1d(), X, method="cam", targets=[0, 1])
    cam = np.einsum("ntk,nk->nt", np_acts(X), DENSE_W[:, [0, 1]].T)
    np.testing.assert_allclose(exp.raw, cam, rtol=1e-6)
    np.testing.assert_allclose(exp.maps, np_normalise(np_resize_1d(cam, 5), signed=True), rtol=1e-5, atol=1e-6)
    assert exp.layer == "conv"


def test_grads_come_from_the_model_not_the_formula() -> None:
    """The deep model's gradient varies over time; Grad-CAM's α is its per-sample mean."""
    acts = np_acts(X)
    grads = np_grads(acts, np.array([1, 1]), deep=True)
    assert np.ptp(grads, axis=1).max() > 0.1  # not constant: the mean really is exercised
    exp = explain(tiny_1d(deep=True), X, method="gradcam", layer="conv", targets=1)
    np.testing.assert_allclose(exp.raw, FORMULAS["gradcam"](acts, grads), rtol=1e-5, atol=1e-6)


def test_all_zero_and_constant_maps_stay_zero() -> None:
    model = tiny_1d()
    model.get_layer("dense").set_weights([-np.abs(DENSE_W), DENSE_B])  # every α_k < 0 with A >= 0
    exp = explain(model, X, method="gradcam", targets=0)
    assert np.all(exp.raw == 0) and np.all(exp.maps == 0)
    model.get_layer("dense").set_weights([np.zeros_like(DENSE_W), DENSE_B])
    for method in ("cam", "gradcam++", "guided-gradcam"):
        exp = explain(model, X, method=method, targets=0)
        assert not np.isnan(exp.maps).any() and np.all(exp.maps == 0), method


def conv_gap_dense(rank: int, softmax: bool = True, seed: int = 0) -> keras.Model:
    """conv -> GAP -> Dense with seeded weights, 1-D (12, 2) or 2-D (9, 9, 2) inputs."""
    conv, pool, shape = (
        (L.Conv1D, L.GlobalAveragePooling1D, (12, 2)) if rank == 1 else (L.Conv2D, L.GlobalAveragePooling2D, (9, 9, 2))
    )
    inputs = keras.Input(shape)
    x = pool(name="gap")(conv(4, 3, activation="relu", name="conv")(inputs))
    model = keras.Model(inputs, L.Dense(3, activation="softmax" if softmax else None, name="dense")(x))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("rank", [1, 2])
def test_gradcam_is_relu_cam_over_positions(rank: int) -> None:
    model = conv_gap_dense(rank)
    x = np.random.default_rng(1).normal(size=(5, *model.input_shape[1:])).astype(np.float32)
    cam = explain(model, x, method="cam", targets="top2")
    grad = explain(model, x, method="gradcam", targets="top2")
    positions = np.prod(cam.raw.shape[2:])
    np.testing.assert_allclose(grad.raw, np.maximum(cam.raw, 0) / positions, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(grad.targets, cam.targets)
    size = model.input_shape[1:-1]
    resize = np_resize_1d if rank == 1 else np_resize_2d
    up = resize(cam.raw, *size) if rank == 1 else resize(cam.raw, size)
    np.testing.assert_allclose(cam.maps, np_normalise(up, signed=True, spatial=rank), rtol=1e-5, atol=1e-6)
    assert cam.maps.shape == (5, 2, *size)


def test_counterfactual_is_gradcam_with_negated_dense() -> None:
    model = tiny_1d(deep=True)
    twin = tiny_1d(deep=True)
    twin.get_layer("dense").set_weights([-DENSE_W[:2], DENSE_B])
    for target in (0, 1):
        counter = explain(model, X, method="counterfactual", layer="conv", targets=target)
        flipped = explain(twin, X, method="gradcam", layer="conv", targets=target)
        np.testing.assert_allclose(counter.raw, flipped.raw, rtol=1e-6, atol=1e-7)


W1 = (np.array([[[1.0, -1.0, 0.5], [0.5, 1.0, -1.0]]]), np.array([0.1, -0.2, 0.3]))
W2 = (np.array([[[1.0, -1.0], [-0.5, 1.0], [1.0, 0.5]]]), np.array([-0.1, 0.2]))
WD = (np.array([[1.0, -1.5], [-2.0, 1.0]]), np.zeros(2))


def guided_net() -> keras.Model:
    """conv(relu) -> nested Sequential[conv, ReLU] -> GAP -> Dense; fixed weights."""
    inputs = keras.Input((4, 2))
    x = L.Conv1D(3, 1, activation="relu", name="c1")(inputs)
    block = keras.Sequential([keras.Input((4, 3)), L.Conv1D(2, 1, name="c2"), L.ReLU(name="r2")], name="block")
    x = L.GlobalAveragePooling1D(name="gap")(block(x))
    model = keras.Model(inputs, L.Dense(2, activation="softmax", name="dense")(x))
    for layer, weights in ((model.get_layer("c1"), W1), (block.get_layer("c2"), W2), (model.get_layer("dense"), WD)):
        layer.set_weights(weights)
    return model


class RawReluNet(keras.Model):
    """The same network, subclassed, with ReLUs called in ``call`` (``tf.nn.relu``, ``keras.ops.relu``)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = L.Conv1D(3, 1, name="c1"), L.Conv1D(2, 1, name="c2")
        self.gap, self.dense = L.GlobalAveragePooling1D(), L.Dense(2, name="dense")
        self(np.zeros((1, 4, 2), np.float32))
        for layer, weights in ((self.c1, W1), (self.c2, W2), (self.dense, WD)):
            layer.set_weights(weights)

    def call(self, x):
        return self.dense(self.gap(keras.ops.relu(self.c2(tf.nn.relu(self.c1(x))))))


def np_guided(x: np.ndarray, target: int, guided: bool = True) -> np.ndarray:
    """Guided gradient by hand: at each ReLU, grad = dy·[dy>0]·[x>0] (plain gradient: dy·[x>0])."""
    gate = (lambda dy: np.maximum(dy, 0)) if guided else (lambda dy: dy)
    z1 = x @ W1[0][0] + W1[1]
    z2 = np.maximum(z1, 0) @ W2[0][0] + W2[1]
    dh2 = np.broadcast_to(WD[0][:, target] / x.shape[1], z2.shape)
    dz2 = gate(dh2) * (z2 > 0)
    dz1 = gate(dz2 @ W2[0][0].T) * (z1 > 0)
    return dz1 @ W1[0][0].T


@pytest.mark.parametrize("net", [guided_net, RawReluNet])
def test_guided_backprop_by_hand(net: type) -> None:
    model = net()
    x = np.random.default_rng(2).normal(size=(6, 4, 2)).astype(np.float32)
    for target in (0, 1):
        exp = explain(model, x, method="guided-backprop", targets=target)
        want = np_guided(x, target)
        assert np.abs(want).max() > 0 and not np.allclose(want, np_guided(x, target, guided=False))
        np.testing.assert_allclose(exp.raw, want, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(exp.maps, np_normalise(np.abs(want).max(-1), signed=False), rtol=1e-5, atol=1e-6)
        assert exp.layer is None and exp.raw.shape == (6, 4, 2) and exp.maps.shape == (6, 4)


@pytest.mark.parametrize("method", ["guided-gradcam", "guided-gradcam++"])
def test_guided_gradcam_is_product(method: str) -> None:
    model = guided_net()
    x = np.random.default_rng(3).normal(size=(6, 4, 2)).astype(np.float32)
    exp = explain(model, x, method=method, layer="c1", targets=1)
    cam = explain(model, x, method=method.removeprefix("guided-"), layer="c1", targets=1)
    want = np_guided(x, 1) * cam.maps[..., None]
    np.testing.assert_allclose(exp.raw, want, rtol=1e-5, atol=1e-7)
    with np.errstate(invalid="ignore", divide="ignore"):
        want_maps = np.nan_to_num(np_normalise(np.abs(want).max(-1), signed=False))
    np.testing.assert_allclose(exp.maps, want_maps, rtol=1e-5, atol=1e-6)


class SoftmaxSub(keras.Model):
    """Subclassed twin: same layers, softmax applied in ``call``."""

    def __init__(self, softmax: bool) -> None:
        super().__init__()
        self.softmax = softmax
        self.conv = L.Conv1D(4, 3, activation="relu", name="conv")
        self.gap = L.GlobalAveragePooling1D(name="gap")
        self.dense = L.Dense(3, name="dense")

    def call(self, x):
        logits = self.dense(self.gap(self.conv(x)))
        return keras.ops.softmax(logits) if self.softmax else logits


def softmax_twins(kind: str) -> tuple[keras.Model, keras.Model]:
    if kind == "dense":
        return conv_gap_dense(1, softmax=True), conv_gap_dense(1, softmax=False)
    if kind == "layer":
        body = [keras.Input((12, 2)), L.Conv1D(4, 3, activation="relu"), L.GlobalAveragePooling1D(), L.Dense(3)]
        with_softmax, plain = keras.Sequential([*body, L.Softmax()]), keras.Sequential(body)
    else:
        with_softmax, plain = SoftmaxSub(True), SoftmaxSub(False)
        for model in (with_softmax, plain):
            model(np.zeros((1, 12, 2), np.float32))
    plain.set_weights(with_softmax.get_weights())
    return with_softmax, plain


@pytest.mark.parametrize("kind", ["dense", "layer", "subclassed"])
def test_softmax_bypass_scores_are_logits(kind: str) -> None:
    with_softmax, plain = softmax_twins(kind)
    x = np.random.default_rng(4).normal(size=(4, 12, 2)).astype(np.float32)
    logits = keras.ops.convert_to_numpy(plain(x))
    for method in ("gradcam", "guided-backprop"):
        a = explain(with_softmax, x, method=method, targets="top3")
        b = explain(plain, x, method=method, targets="top3")
        np.testing.assert_allclose(a.scores, np.sort(logits, axis=1)[:, ::-1], rtol=1e-5)
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-5, atol=1e-7)


def test_guided_relu6_passes_only_the_linear_range() -> None:
    inputs = keras.Input((4, 1))
    x = L.GlobalAveragePooling1D()(L.ReLU(6.0)(L.Conv1D(2, 1, use_bias=False, name="conv")(inputs)))
    model = keras.Model(inputs, L.Dense(2, use_bias=False, name="dense")(x))
    kernel, dense = np.array([[[3.0, -1.0]]]), np.array([[1.0, -1.0], [-1.0, 1.0]])
    model.get_layer("conv").set_weights([kernel])
    model.get_layer("dense").set_weights([dense])
    x = np.array([[-1.0, 1.0, 2.5, 4.0], [-3.0, -1.0, 0.5, 1.5]], np.float32)[..., None]
    z = x @ kernel[0]
    want = (np.maximum(dense[:, 0] / 4, 0) * ((z > 0) & (z < 6))) @ kernel[0].T
    np.testing.assert_allclose(explain(model, x, method="guided-backprop", targets=0).raw, want, atol=1e-7)
