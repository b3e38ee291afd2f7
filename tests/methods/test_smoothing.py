"""The gradient methods' ``smooth="eigen"`` and ``smooth="aug"`` against NumPy, the options' refusals, the CLI.

Which methods take which smoothing comes from their metadata (``smooths``), never from a list of names here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cam_reference import KINDS, inputs, np_first_pc, np_max_normalise, tiny
from helpers import gunpoint, ok, refused

import camkit
from camkit.data.timeseries import load_timeseries
from camkit.errors import CamkitError
from camkit.methods import method_class
from camkit.methods.base import make_method
from camkit.methods.mapmath import normalise, upsample

COPIES = [(False, 0.9), (False, 1.0), (False, 1.1), (True, 0.9), (True, 1.0), (True, 1.1)]  # flip × intensity


def spatial_axes(a: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, a.ndim - 1))


def np_gradcampp_weights(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Grad-CAM++: w_k = Σ_ij g²/(2g² + Σ_ab A_k,ab g³) · ReLU(g) (a zero denominator counts as 1)."""
    denom = 2 * g**2 + a.sum(axis=spatial_axes(a), keepdims=True) * g**3
    return (g**2 / np.where(denom == 0, 1, denom) * np.maximum(g, 0)).sum(axis=spatial_axes(a))


WEIGHTS = {"gradcam": lambda a, g: g.mean(axis=spatial_axes(g)), "gradcam++": np_gradcampp_weights}


def weighted(method: str, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(B, *spatial, K) w_k A_k."""
    w = WEIGHTS[method](a, g)
    return a * w.reshape(len(w), *[1] * (a.ndim - 2), w.shape[-1])


def expected_maps(raw: np.ndarray, size: tuple[int, ...], signed: bool = False) -> np.ndarray:
    return np.asarray(normalise(upsample(np.float32(raw), size), signed=signed))


@pytest.mark.parametrize("method", sorted(WEIGHTS))
@pytest.mark.parametrize("kind", KINDS)
def test_smooth_eigen_is_the_first_component_of_the_weighted_activations(method: str, kind: str) -> None:
    net, x = tiny(kind, nested=kind == "images"), inputs(kind, n=4, seed=1)
    targets = net.logits(x).argmax(axis=1)
    a, g = net.acts_and_grads(x, targets)
    expected = np.maximum(np_first_pc(weighted(method, a, g)), 0)
    exp = camkit.explain(net.model, x, method=method, layer=net.path, smooth="eigen", batch_size=3)
    scale = expected.reshape(4, -1).max(axis=1)
    assert (scale > 0).all()
    np.testing.assert_array_equal(exp.targets, targets)
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-4, atol=1e-5 * scale.max())
    np.testing.assert_allclose(exp.maps, expected_maps(expected, x.shape[1:-1]), atol=1e-5)
    plain = camkit.explain(net.model, x, method=method, layer=net.path)
    assert not np.allclose(plain.maps, exp.maps, atol=1e-2)  # the option changes the map


def np_aug(net, x: np.ndarray, method: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The mean over the six copies of each copy's Grad-CAM(++) (for the class predicted on ``x``), flipped back
    and divided by its max, at the layer's resolution; and the targets."""
    targets = net.logits(x).argmax(axis=1)
    axis = 1 if kind == "series" else 2  # time, or width
    maps = []
    for flip, factor in COPIES:
        copy = np.flip(x * factor, axis) if flip else x * factor
        a, g = net.acts_and_grads(copy, targets)
        raw = np.maximum(weighted(method, a, g).sum(axis=-1), 0)
        maps.append(np_max_normalise(np.flip(raw, axis) if flip else raw))
    return np.mean(maps, axis=0), targets


@pytest.mark.parametrize("method", sorted(WEIGHTS))
@pytest.mark.parametrize("kind", KINDS)
def test_smooth_aug_is_the_mean_of_six_copies(method: str, kind: str) -> None:
    net, x = tiny(kind, nested=kind == "series"), inputs(kind, n=3, seed=2)
    expected, targets = np_aug(net, x, method, kind)
    exp = camkit.explain(net.model, x, method=method, layer=net.path, smooth="aug", batch_size=2)
    np.testing.assert_array_equal(exp.targets, targets)
    np.testing.assert_allclose(exp.raw, expected, atol=2e-5)
    np.testing.assert_allclose(exp.maps, expected_maps(expected, x.shape[1:-1]), atol=2e-5)
    assert np.abs(exp.raw - np_max_normalise(np.asarray(camkit.explain(
        net.model, x, method=method, layer=net.path).raw))).max() > 1e-2  # the copies change the map


def smoothing_cases(smoothing: str | None = None) -> list:
    """(method, smoothing, kind) for every classifier method taking a smoothing (its ``smooths``)."""
    return [pytest.param(m, s, kind, id=f"{m}-{s}-{kind}") for m in camkit.methods()
            for s in method_class(m).smooths if smoothing in (None, s)
            if method_class(m).task == "classify" and method_class(m).requires_model is None
            for kind in method_class(m).input_kinds]


@pytest.mark.parametrize(("method", "smoothing", "kind"), smoothing_cases())
def test_every_smoothing_keeps_the_contract(method: str, smoothing: str, kind: str) -> None:
    """Shapes, [0, 1], real maps, and a sample alone equals it in a padded batch."""
    cls, net, x = method_class(method), tiny(kind), inputs(kind, n=5, seed=3)
    options = {**cls.quick_options, "smooth": smoothing}
    batched = camkit.explain(net.model, x, method=method, layer=net.path, batch_size=2, **options)
    assert batched.maps.shape == (5, *x.shape[1:-1]) and batched.maps.dtype == np.float32
    assert batched.maps.min() >= 0 and batched.maps.max() == pytest.approx(1)
    assert batched.raw.shape[0] == 5 and (batched.raw.shape == x.shape) == (cls.display == "guided")
    alone = camkit.explain(net.model, x[3:4], method=method, layer=net.path, **options)
    np.testing.assert_allclose(alone.maps[0], batched.maps[3], atol=1e-5)
    np.testing.assert_array_equal(alone.targets, batched.targets[3:4])


@pytest.mark.parametrize(("method", "smoothing", "kind"), smoothing_cases("aug"))
def test_aug_is_the_mean_of_each_copy_explained_alone(method: str, smoothing: str, kind: str) -> None:
    """Any method taking ``aug``: its own map of each copy, for the class chosen on the input, flipped back."""
    cls, net, x = method_class(method), tiny(kind), inputs(kind, n=2, seed=5)
    plain = camkit.explain(net.model, x, method=method, layer=net.path, **cls.quick_options)
    raws = []
    for flip, factor in COPIES:
        copy = np.flip(x * factor, 1 if kind == "series" else 2) if flip else x * factor
        raw = camkit.explain(net.model, copy, method=method, layer=net.path, targets=plain.targets,
                             **cls.quick_options).raw
        raws.append(np.asarray(normalise(np.flip(raw, raw.ndim - 1) if flip else raw, signed=not cls.relu)))
    aug = camkit.explain(net.model, x, method=method, layer=net.path, smooth=smoothing, **cls.quick_options)
    np.testing.assert_allclose(aug.raw, np.mean(raws, axis=0), atol=1e-5)
    np.testing.assert_array_equal(aug.targets, plain.targets)


@pytest.mark.parametrize("method", [m for m in camkit.methods() if not method_class(m).smooths])
def test_methods_without_smoothings_refuse_smooth(method: str) -> None:
    with pytest.raises(CamkitError, match="smooth"):
        make_method(method, **method_class(method).quick_options, smooth="aug")


@pytest.mark.parametrize("method", [m for m in camkit.methods() if method_class(m).smooths])
def test_smoothings_are_kept_and_unknown_ones_refused(method: str) -> None:
    cls = method_class(method)
    for smoothing in cls.smooths:  # the method's own constructor does not drop the choice
        assert make_method(method, **cls.quick_options, smooth=smoothing).smoothing == smoothing
    with pytest.raises(CamkitError, match=rf"smooth='bogus': choose one of {', '.join(cls.smooths)}"):
        make_method(method, **cls.quick_options, smooth="bogus")
    assert make_method(method, **cls.quick_options).smoothing is None


@pytest.fixture(scope="module")
def gp(tmp_path_factory, data_root) -> Path:
    """A root holding a 1-epoch GunPoint FCN (experiment ``gp``)."""
    root = tmp_path_factory.mktemp("smooth")
    ok("train", *gunpoint(root, data_root), "--epochs", 1, "--no-progress", "--name", "gp")
    return root


def explain_args(root: Path, data_root: Path, *args: str | Path) -> list:
    return ["explain", "--experiment", "gp", "--root", root, "--data-root", data_root, "--n-images", 2,
            "--no-progress", "--method", "gradcam", *args]


def test_cli_smooth_aug_and_a_bad_smoothing(gp: Path, data_root: Path, tmp_path: Path) -> None:
    ok(*explain_args(gp, data_root, "-o", "smooth=aug", "--save-dir", tmp_path / "aug"))
    with np.load(tmp_path / "aug" / "explanation.npz") as npz:
        maps = npz["maps"]
    model = camkit.load_model(gp / "models" / "gp" / "best.keras", compile=False)
    x = load_timeseries("GunPoint", data_root).x_test[:2]
    np.testing.assert_allclose(maps, camkit.explain(model, x, "gradcam", smooth="aug").maps, atol=1e-5)
    assert not np.allclose(maps, camkit.explain(model, x, "gradcam").maps, atol=1e-3)
    refused(explain_args(gp, data_root, "-o", "smooth=bogus", "--save-dir", tmp_path / "bad"), "smooth", gp)
    assert not (tmp_path / "bad").exists()
