"""The attribution engine: no mutation, batching, tracing, layer addressing, targets, real models."""

from __future__ import annotations

import gc
import re
import weakref
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import camkit
from camkit.errors import CamkitError
from camkit.methods import Method, MethodNotApplicable, NoCamHead, base, explain, method_class, register_method, step
from camkit.methods.layers import LayerRef, listing, walk

L = keras.layers


def plain_methods(kind: str) -> list[str]:
    """The registered methods that explain any classifier with ``kind`` inputs (series or images) as they are."""
    return [m for m in camkit.methods() if method_class(m).task == "classify"
            and method_class(m).requires_model is None and kind in method_class(m).input_kinds]


def functional() -> keras.Model:
    inputs = keras.Input((10, 2))
    x = L.Conv1D(4, 3, activation="relu", name="conv1")(inputs)
    x = L.Activation("relu", name="act")(L.Conv1D(4, 3, name="conv2")(x))
    x = L.GlobalAveragePooling1D(name="gap")(L.ReLU(name="relu")(x))
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="dense")(x))


def sequential() -> keras.Model:
    return keras.Sequential(
        [keras.Input((10, 2)), L.Conv1D(4, 3, activation="relu"), L.Conv1D(4, 3), L.ReLU(),
         L.GlobalAveragePooling1D(), L.Dense(3, activation="softmax")],
        name="seq",
    )


def nested_sequential() -> keras.Model:
    """c0 -> inner[c1, c2] -> c3 -> gap -> dense: a conv outside and inside a nested Sequential."""
    inputs = keras.Input((10, 2))
    x = L.Conv1D(4, 1, activation="relu", name="c0")(inputs)
    inner = keras.Sequential([keras.Input((10, 4)), L.Conv1D(4, 3, activation="relu", name="c1"),
                              L.Conv1D(4, 3, name="c2"), L.ReLU(name="r2")], name="inner")
    x = L.Conv1D(4, 1, activation="relu", name="c3")(inner(x))
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="dense")(x))


def nested_backbone() -> keras.Model:
    """A keras.applications-style backbone Model (BN, ReLU6, depthwise) inside a Model, GAP and head outside."""
    image = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(image)
    x = L.ReLU(6.0, name="stem_relu")(L.BatchNormalization(name="stem_bn")(x))
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Activation("relu", name="dw_relu")(L.BatchNormalization(name="dw_bn")(x))
    x = L.Conv2D(6, 1, activation="relu", name="project")(x)
    backbone = keras.Model(image, x, name="backbone")
    inputs = keras.Input((12, 12, 3))
    x = L.GlobalAveragePooling2D(name="gap")(backbone(inputs))
    return keras.Model(inputs, L.Dense(4, activation="softmax", name="predictions")(x))


class Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.conv = L.Conv1D(4, 3, activation="relu", name="conv")
        self.block = keras.Sequential([L.Conv1D(4, 3, name="inner_conv"), L.ReLU(name="inner_relu")], name="block")
        self.gap = L.GlobalAveragePooling1D(name="gap")
        self.dense = L.Dense(3, activation="softmax", name="dense")

    def call(self, x):
        return self.dense(self.gap(self.block(self.conv(x))))


def subclassed() -> keras.Model:
    model = Subclassed()
    model(np.zeros((1, 10, 2), np.float32))
    return model


MODELS = {"functional": functional, "sequential": sequential, "nested": nested_sequential,
          "backbone": nested_backbone, "subclassed": subclassed}


def inputs_for(model: keras.Model, n: int, seed: int = 0) -> np.ndarray:
    shape = (12, 12, 3) if any(ref.path == "backbone" for ref in walk(model)) else (10, 2)
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def snapshot(model: keras.Model) -> dict[str, tuple]:
    """Everything explaining must leave alone: instance attributes (activation, call), trainable, weights."""
    state = {}
    for ref in [*walk(model), LayerRef("<model>", model)]:
        layer = ref.layer
        state[ref.path] = (
            sorted(layer.__dict__), layer.__dict__.get("activation"), layer.trainable,
            [np.array(w) for w in layer.get_weights()],
        )
    return state


def assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for path, (attrs, activation, trainable, weights) in before.items():
        attrs2, activation2, trainable2, weights2 = after[path]
        assert attrs == attrs2 and activation is activation2 and trainable == trainable2, path
        assert "call" not in attrs2, path
        assert all(np.array_equal(a, b) for a, b in zip(weights, weights2, strict=True)), path


def input_gradient(model: keras.Model, x: np.ndarray) -> np.ndarray:
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x, training=False)[:, 0]
    return tape.gradient(y, x).numpy()


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_no_mutation(kind: str) -> None:
    model = MODELS[kind]()
    x = inputs_for(model, 3)
    model.layers[-1].trainable = False  # a frozen head stays frozen, the rest trainable
    before = snapshot(model)
    outputs, grads = keras.ops.convert_to_numpy(model(x)), input_gradient(model, x)
    for method in plain_methods("images" if x.ndim == 4 else "series"):
        exp = explain(model, x, method=method, **method_class(method).quick_options)
        assert exp.maps.shape == (3, *x.shape[1:-1]) and exp.maps.min() >= 0 and exp.maps.max() <= 1, method
    with pytest.raises(CamkitError):
        explain(model, x, layer=-99)
    assert_same(before, snapshot(model))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), outputs)
    np.testing.assert_array_equal(input_gradient(model, x), grads)  # plain ReLU gradients, not guided ones


def test_failed_trace_restores_the_model() -> None:
    model = functional()
    before = snapshot(model)
    with pytest.raises(CamkitError, match="no spatial axes"):
        explain(model, inputs_for(model, 2), method="guided-gradcam", layer="gap")
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "cam", "guided-gradcam"])
def test_batch_independence(method: str) -> None:
    model = nested_sequential()
    x = inputs_for(model, 7)
    together = explain(model, x, method=method, batch_size=4)
    for i in range(7):
        alone = explain(model, x[i : i + 1], method=method, batch_size=4)
        np.testing.assert_allclose(alone.raw[0], together.raw[i], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(alone.maps[0], together.maps[i], rtol=1e-6, atol=1e-6)


def traces(model: keras.Model) -> list[int]:
    return [fn.experimental_get_tracing_count() for fn in step._CACHE[model].values()]


def test_traced_once_per_batch_shape() -> None:
    model = functional()
    x = inputs_for(model, 12)
    explain(model, x, batch_size=4)  # 3 batches
    assert traces(model) == [1]
    explain(model, x[:10], batch_size=4, targets="top2")  # padded last batch, two target columns
    streamed = tf.data.Dataset.from_tensor_slices((x, np.zeros(12))).batch(5)  # batches 5, 5, 2 regrouped
    from_dataset = explain(model, streamed, batch_size=4)
    assert traces(model) == [1]
    np.testing.assert_array_equal(from_dataset.maps, explain(model, x, batch_size=4).maps)
    explain(model, x, method="gradcam++", batch_size=4)  # shares the step
    assert traces(model) == [1]


def test_varying_small_batches_do_not_retrace_each_size() -> None:
    model = functional()
    x = inputs_for(model, 6)
    maps = [explain(model, x[:n], batch_size=8).maps for n in range(1, 7)]  # six batch shapes (e.g. a "true" subset)
    assert traces(model) == [2]  # the first shape, then one trace whose batch axis is left open
    for n, m in enumerate(maps, 1):
        np.testing.assert_allclose(m, explain(model, x, batch_size=8).maps[:n], atol=1e-6)


def test_step_cache_does_not_keep_the_model_alive() -> None:
    model = functional()
    explain(model, inputs_for(model, 2))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_dataset_errors() -> None:
    model = functional()
    x = inputs_for(model, 4)
    with pytest.raises(CamkitError, match="batch"):
        explain(model, tf.data.Dataset.from_tensor_slices(x))  # unbatched samples
    with pytest.raises(CamkitError, match="no samples"):
        explain(model, x[:0])
    mixed = tf.data.Dataset.from_tensor_slices(x).batch(2).concatenate(tf.data.Dataset.from_tensors(x[:, :8]))
    with pytest.raises(CamkitError, match=r"samples of shape \(8, 2\), the first had \(10, 2\)"):
        explain(model, mixed)
    batches = tf.data.Dataset.from_tensor_slices(x).batch(2)
    with pytest.raises(CamkitError, match="targets: 3 targets, but x has more samples"):
        explain(model, batches, targets=[0, 1, 2])
    with pytest.raises(CamkitError, match="targets: 5 targets for 4 samples"):
        explain(model, batches, targets=[0, 1, 2, 0, 1])


def test_default_layer_and_addressing() -> None:
    model = nested_sequential()
    x = inputs_for(model, 2)
    assert explain(model, x).layer == "c3"
    assert explain(model, x, layer="c1").layer == "inner/c1"
    assert explain(model, x, layer="inner/r2").layer == "inner/r2"
    assert [explain(model, x, layer=-i).layer for i in (1, 2, 3, 4)] == ["c3", "inner/c2", "inner/c1", "c0"]
    assert explain(model, x, layer=np.int64(-1)).layer == "c3"
    assert explain(nested_backbone(), np.zeros((1, 12, 12, 3), np.float32)).layer == "backbone/project"
    assert explain(subclassed(), x).layer == "block/inner_relu"
    assert explain(sequential(), x).layer.startswith("re_lu")


@pytest.mark.parametrize(
    ("layer", "message"),
    [("nope", "no layer named 'nope'.*inner/c1"), ("c", "did you mean"), ("inner/zz", "no layer at path.*inner/c2"),
     (-5, "has 4: c0, inner/c1, inner/c2, c3"), (0, "from the end"), (1.5, "expected None"),
     ("gap", "no spatial axes")],
)
def test_layer_errors_list_candidates(layer: object, message: str) -> None:
    model = nested_sequential()
    with pytest.raises(CamkitError, match=message):
        explain(model, inputs_for(model, 2), layer=layer)


def test_ambiguous_name_and_long_listing() -> None:
    inputs = keras.Input((10, 2))
    a = keras.Sequential([keras.Input((10, 2)), L.Conv1D(2, 1, name="conv")], name="a")
    b = keras.Sequential([keras.Input((10, 2)), L.Conv1D(2, 1, name="conv")], name="b")
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(b(a(inputs)))))
    with pytest.raises(CamkitError, match="ambiguous; use a path: a/conv, b/conv"):
        explain(model, inputs_for(model, 1), layer="conv")
    assert listing([f"l{i}" for i in range(30)]) == "... (18 more), " + ", ".join(f"l{i}" for i in range(18, 30))


def test_cam_needs_gap_dense_head() -> None:
    inputs = keras.Input((10, 2))
    x = L.Flatten()(L.Conv1D(4, 3, activation="relu", name="conv")(inputs))
    flat = keras.Model(inputs, L.Dense(3, activation="softmax")(x))
    with pytest.raises(NoCamHead, match=r"cam needs 'conv' -> GlobalAveragePooling -> Dense.*gradcam") as err:
        explain(flat, inputs_for(flat, 2), method="cam")
    assert isinstance(err.value, MethodNotApplicable) and isinstance(err.value, CamkitError)
    assert err.value.fallback == "gradcam" and explain(flat, inputs_for(flat, 2), method=err.value.fallback).maps.any()
    assert MethodNotApplicable("no", fallback="x").fallback == "x" and MethodNotApplicable("no").fallback is None
    model = nested_sequential()
    with pytest.raises(CamkitError, match="cam needs 'inner/c2'"):  # BN/ReLU/conv in between
        explain(model, inputs_for(model, 2), method="cam", layer="inner/c2")
    x = L.GlobalAveragePooling1D()(L.Conv1D(4, 3, name="conv")(inputs))
    hidden = keras.Model(inputs, L.Dense(3)(L.Dense(5, activation="relu")(x)))
    with pytest.raises(CamkitError, match="no Dense giving the class scores"):
        explain(hidden, inputs_for(hidden, 2), method="cam")
    exp = explain(nested_backbone(), np.ones((2, 12, 12, 3), np.float32), method="cam")
    assert exp.layer == "backbone/project" and exp.raw.shape == (2, 6, 6)


def backward_ops(model: keras.Model, needs_grads: bool, batch_shape: tuple[int, ...]) -> list[str]:
    """The gradient ops of the model's traced step with that ``needs_grads`` (tape: ``gradient_tape/``)."""
    (fn,) = [f for key, f in step._CACHE[model].items() if key[2] is needs_grads]
    spec = (tf.TensorSpec(batch_shape, tf.float32), tf.TensorSpec(batch_shape[:1], tf.int32))
    ops = fn.get_concrete_function(*spec).graph.get_operations()
    return [op.name for op in ops if op.name.startswith(("gradient_tape/", "gradients/"))]


def test_cam_step_runs_no_backward_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    gradient = tf.GradientTape.gradient
    monkeypatch.setattr(tf.GradientTape, "gradient", lambda tape, *a, **k: calls.append(a) or gradient(tape, *a, **k))
    model = functional()
    x = inputs_for(model, 3)
    assert not method_class("cam").needs_grads and method_class("gradcam").needs_grads
    cam = explain(model, x, method="cam")  # traces CAM's step: no tape.gradient, no gradient ops
    assert calls == [] and backward_ops(model, False, x.shape) == []
    grad = explain(model, x, method="gradcam")  # its own step (the key holds needs_grads), with the backward pass
    assert len(calls) == 1 and len(backward_ops(model, True, x.shape)) > 0 and len(step._CACHE[model]) == 2
    assert cam.layer == grad.layer == "relu" and not np.allclose(cam.raw, grad.raw)
    np.testing.assert_array_equal(cam.targets, grad.targets)


def test_targets() -> None:
    model = functional()
    x = inputs_for(model, 5)
    logits = explain(model, x, targets="top3").scores
    probs = model.predict(x, verbose=0)
    predicted = explain(model, x)
    np.testing.assert_array_equal(predicted.targets, probs.argmax(1))
    np.testing.assert_allclose(predicted.scores, logits[:, 0])
    assert explain(model, x, targets=2).targets.tolist() == [2] * 5
    assert explain(model, x, targets=np.array([0, 1, 2, 1, 0])).targets.tolist() == [0, 1, 2, 1, 0]
    np.testing.assert_array_equal(explain(model, x, targets="lowest").targets, probs.argmin(1))
    top = explain(model, x, targets="top-3", method="guided-gradcam")
    assert top.maps.shape == (5, 3, 10) and top.raw.shape == (5, 3, 10, 2) and top.targets.shape == (5, 3)
    np.testing.assert_array_equal(top.targets, np.argsort(-probs, axis=1, kind="stable"))
    assert np.all(np.diff(top.scores, axis=1) <= 0)
    for bad, message in [(3, "class 3 is out of range; the model has 3"), ("top4", "top4 needs"),
                         ("lowest,class3", "class 3 is out of range"), ([0, 1], "2 targets for 5"),
                         ("best", "'best' is not predicted"), (-1, "negative"), ([0.5], "expected")]:
        with pytest.raises(CamkitError, match=message):
            explain(model, x, targets=bad)


def test_target_lists_and_true_classes() -> None:
    model = functional()
    x = inputs_for(model, 5)
    probs = model.predict(x, verbose=0)
    order = np.argsort(-probs, axis=1, kind="stable")
    y_true = np.array([2, 2, 0, 1, 0])
    mixed = explain(model, x, targets="top2,lowest,true,class1", y_true=y_true, batch_size=2)
    assert mixed.maps.shape == (5, 5, 10) and mixed.raw.shape == (5, 5, 6) and mixed.scores.shape == (5, 5)
    expected = np.stack([order[:, 0], order[:, 1], probs.argmin(1), y_true, np.ones(5, int)], axis=1)
    np.testing.assert_array_equal(mixed.targets, expected)
    for j, column in {0: None, 1: order[:, 1], 2: "lowest", 3: y_true, 4: 1}.items():  # each as run alone
        alone = explain(model, x, targets=column)
        np.testing.assert_allclose(mixed.maps[:, j], alone.maps, atol=1e-6)
        np.testing.assert_allclose(mixed.scores[:, j], alone.scores, rtol=1e-6, atol=1e-7)
    true = explain(model, x, targets="true", y_true=y_true)
    assert true.maps.shape == (5, 10) and true.targets.tolist() == y_true.tolist()
    assert explain(model, x, targets=["lowest"]).maps.shape == (5, 1, 10)
    for y, message in [(None, "'true' column needs y_true"), (y_true[:4], "y_true: 4 targets for 5 samples"),
                       (np.array([0, 1, -1, 0, 0]), "y_true: expected one class index"),
                       (np.array([0, 1, 3, 0, 0]), "class 3 is out of range")]:
        with pytest.raises(CamkitError, match=message):
            explain(model, x, targets="top1,true", y_true=y)


def test_registry_and_api() -> None:
    sources = Path(camkit.methods.__file__).parent.glob("*.py")
    declared = sorted(n for p in sources for n in re.findall(r'@register_method\("([^"]+)"\)', p.read_text()))
    assert len(declared) > 8 and camkit.methods() == declared  # every method file is imported, nothing else
    assert all(method_class(name).name == name for name in declared)
    assert camkit.methods.DEFAULT_METHOD in declared and camkit.explain is explain
    with pytest.raises(CamkitError, match="unknown method 'nope'; choose one of ablationcam, augmented-gradcam, cam"):
        explain(functional(), np.zeros((1, 10, 2)), method="nope")
    with pytest.raises(CamkitError, match="unknown method 'nope'; choose one of ablationcam, augmented-gradcam, cam"):
        method_class("nope")
    with pytest.raises(CamkitError, match="unexpected option"):
        explain(functional(), np.zeros((1, 10, 2)), aggregate="max")
    with pytest.raises(ValueError, match="registered twice"):
        register_method("gradcam")(Method)


def test_custom_method_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    @register_method("test-uniform")
    class Uniform(Method):
        def channel_weights(self, batch: base.Batch) -> np.ndarray:
            return np.ones((len(batch.acts), batch.acts.shape[-1]))

    try:
        model = functional()
        exp = explain(model, inputs_for(model, 6), method="test-uniform", layer="conv1", batch_size=1, progress=True)
        assert exp.method == "test-uniform" and exp.raw.shape == (6, 8)
        assert Uniform.title == "test-uniform" and Uniform.box_threshold == 0.15 and Uniform.variants == {}
        assert "explain test-uniform" in capsys.readouterr().err
    finally:
        base._METHODS.pop("test-uniform")


@pytest.mark.parametrize("method", plain_methods("series"))
def test_fcn_on_gunpoint_shaped_input(method: str, fcn_model: keras.Model) -> None:
    x = np.random.default_rng(0).normal(size=(3, 150, 1)).astype(np.float32)
    exp = explain(fcn_model, x, method=method)
    assert exp.maps.shape == (3, 150) and exp.maps.dtype == np.float32
    assert exp.maps.min() >= 0 and exp.maps.max() == pytest.approx(1)
    assert exp.layer == ("block3_relu" if method_class(method).uses_layer else None)
    assert exp.raw.shape == ((3, 150, 1) if method_class(method).display == "guided" else (3, 150))


@pytest.fixture(scope="module")
def fcn_model() -> keras.Model:
    keras.utils.set_random_seed(0)  # an unseeded draw can give a map with no positive part (all zero)
    return camkit.build_model("fcn", (150, 1), 2)


def test_vgg16_gap_at_32() -> None:
    model = camkit.build_model("vgg16-gap", (32, 32, 3), 5)
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype(np.float32)
    for method in ("cam", "gradcam", "guided-gradcam++"):
        exp = explain(model, x, method=method)
        assert exp.layer == "block5_conv3" and exp.maps.shape == (2, 32, 32)
        assert exp.maps.min() >= 0 and exp.maps.max() <= 1 and not np.isnan(exp.maps).any()
    assert explain(model, x, layer=-1).raw.shape == (2, 2, 2)
