"""Score-CAM and Ablation-CAM against explicit loops of full forward passes, independent of camkit's runners.

The references compute ``A`` with sub-models or eager layer calls, the masked inputs' logits with one
``model(...)`` call per copy, and the ablated logits with one ``model(...)`` call per channel on the model whose
explained conv layer has that channel's kernel and bias set to zero (so ``A_k = 0``), then restored.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import pytest
import tensorflow as tf
from tf_keras_vis.scorecam import Scorecam
from tf_keras_vis.utils.scores import CategoricalScore

from camkit.errors import CamkitError
from camkit.methods import Passes, explain, forward, method_class, scorecam

L = keras.layers
Array = np.ndarray


@dataclass
class Case:
    model: keras.Model
    path: str  # the explained layer
    acts: Callable[[Array], Array]  # x -> A, without camkit
    logits: Callable[[Array], Array]  # x -> (N, classes) logits, a full forward pass
    conv: L.Layer  # the conv layer that gives A: zeroing channel k's kernel and bias gives A_k = 0
    shape: tuple[int, ...] = (20, 2)  # a sample's shape

    def inputs(self, n: int = 3, seed: int = 0) -> Array:
        return np.random.default_rng(seed).normal(size=(n, *self.shape)).astype(np.float32)


def seeded(model: keras.Model, seed: int = 0) -> keras.Model:
    """Every weight (biases included) drawn from N(0, 0.5²): fixed, and no channel starts dead by construction."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.5, tuple(w.shape)).astype(np.float32))
    return model


def head(x: keras.KerasTensor, rank: int) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """GAP -> Dense logits -> softmax: (logits, probabilities)."""
    pooled = (L.GlobalAveragePooling1D if rank == 1 else L.GlobalAveragePooling2D)(name="gap")(x)
    logits = L.Dense(3, name="logits")(pooled)
    return logits, L.Activation("softmax", name="softmax")(logits)


def plain(rank: int) -> Case:
    """conv -> pool -> conv A -> conv -> GAP -> Dense -> softmax; A at half the input's resolution."""
    conv, pool = (L.Conv1D, L.MaxPooling1D) if rank == 1 else (L.Conv2D, L.MaxPooling2D)
    inputs = keras.Input((20, 2) if rank == 1 else (12, 12, 2))
    x = pool(2)(conv(3, 3, padding="same", activation="relu", name="c1")(inputs))
    acts = conv(4, 3, padding="same", activation="relu", name="A")(x)
    logits, probs = head(conv(3, 3, padding="same", activation="relu", name="c3")(acts), rank)
    model = seeded(keras.Model(inputs, probs))
    return Case(model, "A", keras.Model(inputs, acts), keras.Model(inputs, logits), model.get_layer("A"),
                tuple(inputs.shape[1:]))


def nested() -> Case:
    """c0 -> inner Sequential [A, c2] -> GAP -> Dense -> softmax; the layer explained inside the nested model."""
    inputs = keras.Input((20, 2))
    c0 = L.Conv1D(3, 3, padding="same", activation="relu", name="c0")
    inner = keras.Sequential([keras.Input((20, 3)), L.Conv1D(4, 3, padding="same", activation="relu", name="A"),
                              L.Conv1D(3, 3, strides=2, activation="relu", name="c2")], name="inner")
    logits, probs = head(inner(c0(inputs)), 1)
    model = seeded(keras.Model(inputs, probs))
    inner_acts = keras.Model(inner.inputs, inner.get_layer("A").output)
    return Case(model, "inner/A", lambda x: np.asarray(inner_acts(c0(x))), keras.Model(inputs, logits),
                inner.get_layer("A"))


class Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = L.Conv1D(3, 3, padding="same", activation="relu", name="c1")
        self.a = L.Conv1D(4, 3, activation="relu", name="A")
        self.gap = L.GlobalAveragePooling1D()
        self.out = L.Dense(3)  # logits out, no softmax

    def call(self, x):
        return self.out(self.gap(self.a(self.c1(x))))


def subclassed() -> Case:
    model = Subclassed()
    model(np.zeros((1, 20, 2), np.float32))
    seeded(model)
    return Case(model, "A", lambda x: np.asarray(model.a(model.c1(x))), model, model.a)


def residual() -> Case:
    """c0 -> A -> c2, + c0 (a skip connection around A) -> ReLU -> GAP -> Dense -> softmax."""
    inputs = keras.Input((10, 10, 2))
    c0 = L.Conv2D(4, 3, padding="same", activation="relu", name="c0")(inputs)
    acts = L.Conv2D(4, 3, padding="same", activation="relu", name="A")(c0)
    x = L.ReLU()(L.Add()([L.Conv2D(4, 3, padding="same", name="c2")(acts), c0]))
    logits, probs = head(x, 2)
    model = seeded(keras.Model(inputs, probs))
    return Case(model, "A", keras.Model(inputs, acts), keras.Model(inputs, logits), model.get_layer("A"), (10, 10, 2))


CASES = {"image": lambda: plain(2), "series": lambda: plain(1), "nested": nested, "subclassed": subclassed,
         "residual": residual}


def softmax(v: Array, axis: int = -1) -> Array:
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def resize(channel: Array, size: tuple[int, ...]) -> Array:
    """Bilinear with half-pixel centres (tf.image.resize), 1-D as a (T, 1) image."""
    if len(size) == 1:
        return np.asarray(tf.image.resize(channel[:, None, None], (size[0], 1)))[:, 0, 0]
    return np.asarray(tf.image.resize(channel[..., None], size))[..., 0]


def minmax(m: Array) -> Array:
    return (m - m.min()) / np.ptp(m) if np.ptp(m) > 0 else np.zeros_like(m)


def ref_scorecam(case: Case, x: Array, targets: Array, weights: str = "softmax", keep: int | None = None) -> Array:
    """Algorithm 1 as a loop: one full forward pass per (sample, kept channel)."""
    acts = np.asarray(case.acts(x))
    raws = []
    for i, t in enumerate(targets):
        variance = acts[i].reshape(-1, acts.shape[-1]).var(0)
        channels = np.argsort(-variance, kind="stable")[:keep]
        values = []
        for k in channels:
            mask = minmax(resize(acts[i, ..., k], x.shape[1:-1]))
            logits = np.asarray(case.logits(x[i : i + 1] * mask[None, ..., None]))[0]
            values.append(logits[t] if weights == "softmax" else softmax(logits)[t])
        w = softmax(np.array(values)) if weights == "softmax" else np.array(values)
        raws.append(np.maximum((acts[i][..., channels] * w).sum(-1), 0))
    return np.stack(raws)


def ref_ablation(case: Case, x: Array, targets: Array, literal: bool = False) -> Array:
    """Ablation-CAM as a loop: the full model once per channel with that channel's kernel and bias zeroed."""
    rows = np.arange(len(x))
    acts = np.asarray(case.acts(x))
    y = np.asarray(case.logits(x))[rows, targets]
    kernel, bias = case.conv.kernel, case.conv.bias
    original = [np.array(kernel), np.array(bias)]
    ablated = []
    try:
        for k in range(acts.shape[-1]):
            zk, zb = original[0].copy(), original[1].copy()
            zk[..., k], zb[k] = 0, 0
            kernel.assign(zk)
            bias.assign(zb)
            ablated.append(np.asarray(case.logits(x))[rows, targets])
    finally:
        kernel.assign(original[0])
        bias.assign(original[1])
    denominator = y if literal else np.maximum(np.abs(y), 1e-6)
    w = (y[:, None] - np.stack(ablated, 1)) / denominator[:, None]
    return np.maximum(np.einsum("n...k,nk->n...", acts, w), 0)


def ref_maps(raw: Array, size: tuple[int, ...]) -> Array:
    up = np.stack([resize(r, size) for r in raw])
    top = up.reshape(len(up), -1).max(1).reshape(-1, *[1] * len(size))
    return np.where(top > 0, up / np.where(top > 0, top, 1), 0)


REFERENCES = {"scorecam": ref_scorecam, "ablationcam": ref_ablation}


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_against_an_explicit_loop(method: str, kind: str) -> None:
    case = CASES[kind]()
    x = case.inputs()
    targets = np.array([2, 0, 1])
    exp = explain(case.model, x, method=method, layer=case.path, targets=targets, batch_size=2)  # padded last batch
    want = REFERENCES[method](case, x, targets)
    assert exp.layer == case.path and exp.raw.shape == want.shape and want.max() > 0
    np.testing.assert_allclose(exp.raw, want, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(exp.maps, ref_maps(want, x.shape[1:-1]), atol=2e-4)
    np.testing.assert_allclose(exp.scores, np.asarray(case.logits(x))[np.arange(3), targets], rtol=1e-5, atol=1e-6)
    alone = explain(case.model, x[2:], method=method, layer=case.path, targets=int(targets[2]))  # padded above
    np.testing.assert_allclose(alone.raw[0], exp.raw[2], rtol=1e-5, atol=1e-6)


def test_scorecam_constant_channels_give_zero_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A constant channel's mask is zero (never NaN); such copies are all the zero input: run once per target."""
    case = plain(2)
    weights = case.conv.get_weights()
    weights[0][..., 0], weights[1][0] = 0, 0.7  # A_0 = ReLU(0.7) everywhere: no range
    weights[0][..., 2], weights[1][2] = 0, -1.0  # A_2 = ReLU(-1) = 0: a dead channel
    case.conv.set_weights(weights)
    x = case.inputs()
    acts = np.asarray(case.acts(x))
    assert np.ptp(acts[..., 0], axis=(1, 2)).max() == 0 and np.ptp(acts[..., 2], axis=(1, 2)).max() == 0
    assert np.ptp(acts[..., 1], axis=(1, 2)).min() > 0 and np.ptp(acts[..., 3], axis=(1, 2)).min() > 0
    run: list[int] = []
    masked_scores = scorecam.masked_scores
    monkeypatch.setattr(scorecam, "masked_scores", lambda *a, **k: run.append(len(a[4])) or masked_scores(*a, **k))
    targets = np.array([0, 1, 1])
    exp = explain(case.model, x, method="scorecam", layer="A", targets=targets, batch_size=2)
    assert run == [2 * 2 + 2, 2 + 1]  # per batch: two live channels per sample, one zero input per target class
    assert np.isfinite(exp.raw).all() and np.isfinite(exp.maps).all() and exp.maps.max() == pytest.approx(1)
    np.testing.assert_allclose(exp.raw, ref_scorecam(case, x, targets), rtol=2e-4, atol=1e-5)
    probability = explain(case.model, x, method="scorecam", layer="A", targets=targets, weights="probability")
    np.testing.assert_allclose(probability.raw, ref_scorecam(case, x, targets, "probability"), rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("weights", ["softmax", "probability"])
def test_scorecam_max_channels(weights: str) -> None:
    case = plain(2)
    x = case.inputs()
    exp = explain(case.model, x, method="scorecam", layer="A", weights=weights, max_channels=2)
    np.testing.assert_allclose(exp.raw, ref_scorecam(case, x, exp.targets, weights, keep=2), rtol=2e-4, atol=1e-5)
    every = explain(case.model, x, method="scorecam", layer="A", weights=weights, max_channels=4)  # = all 4
    np.testing.assert_array_equal(every.raw, explain(case.model, x, method="scorecam", layer="A", weights=weights).raw)
    assert not np.allclose(exp.raw, every.raw)


def tkv_model(rank: int) -> keras.Model:
    """A at the input's resolution (tf-keras-vis's scipy zoom is then the identity, as camkit's resize) and
    logits out (tf-keras-vis takes the softmax of the model's output)."""
    conv = L.Conv1D if rank == 1 else L.Conv2D
    inputs = keras.Input((16, 2) if rank == 1 else (10, 10, 2))
    x = conv(3, 3, padding="same", activation="relu", name="c3")(conv(5, 3, padding="same", activation="relu",
                                                                       name="A")(inputs))
    pooled = (L.GlobalAveragePooling1D() if rank == 1 else L.GlobalAveragePooling2D())(x)
    return seeded(keras.Model(inputs, L.Dense(3, name="logits")(pooled)), seed=3)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("rank", [1, 2])
def test_probability_weights_match_tf_keras_vis(rank: int) -> None:
    model = tkv_model(rank)
    x = np.random.default_rng(1).normal(size=(2, *model.input_shape[1:])).astype(np.float32)
    for max_channels in (None, 2):
        ours = explain(model, x, method="scorecam", layer="A", targets=[1, 2], weights="probability",
                       max_channels=max_channels)
        for i, target in enumerate((1, 2)):  # one sample per call: its Faster Score-CAM mixes a batch's channels
            theirs = Scorecam(model)(CategoricalScore([target]), x[i : i + 1], penultimate_layer="A",
                                     max_N=max_channels, expand_cam=False, normalize_cam=False)
            np.testing.assert_allclose(ours.raw[i], np.asarray(theirs)[0], rtol=1e-4, atol=1e-6)
    softmax_weights = explain(model, x, method="scorecam", layer="A", targets=[1, 2])
    assert not np.allclose(ours.raw, softmax_weights.raw)  # the variant is not the paper's weights


@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_chunk_sizes_give_the_same_maps(method: str) -> None:
    case = plain(2)
    x = case.inputs()
    raws = [explain(case.model, x, method=method, layer="A", chunk=chunk).raw for chunk in (1, 7, 10_000)]
    for raw in raws[1:]:
        np.testing.assert_allclose(raw, raws[0], rtol=1e-5, atol=1e-6)


def test_ablationcam_denominator_is_the_score_size() -> None:
    """Negative logits: w_k divides by |y_c| (the paper's y_c would invert the map); y_c ≡ 0: finite, zero."""
    case = plain(1)
    x = case.inputs()
    exp = explain(case.model, x, method="ablationcam", layer="A", targets="lowest")
    y = np.asarray(case.logits(x))[np.arange(3), exp.targets]
    assert (y < 0).all()
    np.testing.assert_allclose(exp.raw, ref_ablation(case, x, exp.targets), rtol=2e-4, atol=1e-5)
    assert not np.allclose(exp.raw, ref_ablation(case, x, exp.targets, literal=True), atol=1e-3)
    dense = case.model.get_layer("logits")
    kernel, bias = dense.get_weights()
    kernel[:, 0], bias[0] = 0, 0  # class 0's logit is 0 whatever A is
    dense.set_weights([kernel, bias])
    zero = explain(case.model, x, method="ablationcam", layer="A", targets=0)
    np.testing.assert_array_equal(zero.scores, 0)
    assert np.isfinite(zero.raw).all() and (zero.maps == 0).all()


def test_options_and_passes() -> None:
    case = plain(1)
    x = case.inputs(1)
    for method, options, culprit in [("scorecam", {"weights": "logit"}, "weights"),
                                     ("scorecam", {"max_channels": 0}, "max_channels"),
                                     ("scorecam", {"chunk": 0}, "chunk"), ("ablationcam", {"chunk": 1.5}, "chunk")]:
        with pytest.raises(CamkitError, match=culprit):
            explain(case.model, x, method=method, **options)
    assert method_class("scorecam")().passes(512) == Passes(513)
    assert method_class("scorecam")(max_channels=10).passes(512) == Passes(11)
    assert method_class("ablationcam")().passes(512) == Passes(1, upper=512)


def test_runners_trace_once_and_do_not_keep_the_model_alive() -> None:
    case = plain(2)
    x = case.inputs(7)
    for method in REFERENCES:
        explain(case.model, x, method=method, batch_size=3, chunk=5)  # 3 batches, the last padded; 12 copies each
        explain(case.model, x[:5], method=method, batch_size=3, chunk=5, targets="top2")
    runners = forward._CACHE[case.model]
    assert len(runners) == 2 and [fn.experimental_get_tracing_count() for fn in runners.values()] == [1, 1]
    model = weakref.ref(case.model)
    del case, runners
    gc.collect()
    assert model() is None
