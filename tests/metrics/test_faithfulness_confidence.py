"""Insertion, Average Drop, Increase in Confidence and Average Gain against hand-computed values on a linear
softmax model, and every faithfulness metric preferring the known ideal map to a random and a reversed one."""

from __future__ import annotations

import numpy as np
import pytest
from faithfulness_models import ideal_maps, linear_model
from scipy.special import expit

from camkit.errors import CamkitError
from camkit.metrics import metric_classes
from camkit.metrics.faithfulness.average_drop import AverageDrop
from camkit.metrics.faithfulness.average_gain import AverageGain
from camkit.metrics.faithfulness.base import Explained
from camkit.metrics.faithfulness.deletion import Deletion
from camkit.metrics.faithfulness.increase_in_confidence import IncreaseInConfidence
from camkit.metrics.faithfulness.insertion import Insertion
from camkit.metrics.faithfulness.mufidelity import MuFidelity
from camkit.metrics.faithfulness.perturb import baseline

ONES = np.ones((1, 4, 1), np.float32)  # W·x = 2.5 on the model of faithfulness_models.W


def test_insertion_auc_by_hand() -> None:
    ideal = np.array([[0.6, 0.0, 1.0, 0.2]])  # insertion order 2, 0, 3, 1 (W = 1, -2, 3, 0.5)
    got = Insertion(steps=4, baseline="zero").score(Explained(linear_model(), ONES, ideal, np.array([1])))
    p = expit(np.array([0.0, 3.0, 4.0, 4.5, 2.5]))
    assert got.curve[0] == pytest.approx(p, abs=1e-6)
    assert got.curve_x == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert got.values[0] == pytest.approx((p[:-1] + p[1:]).sum() / 8, abs=1e-6)
    reverse = Insertion(steps=4, baseline="zero").score(Explained(linear_model(), ONES, 1 - ideal, np.array([1])))
    assert reverse.values[0] < got.values[0]


def test_insertion_defaults_blur_and_one_step_per_time_step() -> None:
    rng = np.random.default_rng(3)
    w, x = rng.normal(size=20), rng.uniform(size=(2, 20, 1)).astype(np.float32)
    maps = rng.uniform(size=(2, 20)).astype(np.float32)
    got = Insertion().score(Explained(linear_model(w), x, maps, np.array([1, 0])))
    blurred = baseline(x, "blur")[..., 0]
    assert not np.allclose(blurred, x[..., 0])
    for i, sign in enumerate((1, -1)):  # class 0's probability is sigmoid(-W·x)
        copy, expected = blurred[i].copy(), []
        for position in [None, *np.argsort(-maps[i], kind="stable")]:
            if position is not None:
                copy[position] = x[i, position, 0]
            expected.append(expit(sign * w @ copy))
        assert got.curve[i] == pytest.approx(expected, abs=1e-5)  # 20 steps, one time step each


def test_confidence_metrics_by_hand() -> None:
    x = np.ones((3, 4, 1), np.float32)
    maps = np.array([[0.5, 1.0, 0.5, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]], np.float32)
    explained = Explained(linear_model(), x, maps, np.array([1, 1, 0]))
    y = np.array([expit(2.5), expit(2.5), expit(-2.5)])
    o = np.array([expit(0.0), expit(4.0), expit(2.0)])  # logits W·(x ⊙ map): 0, 4, -2 (class 0: sigmoid(2))
    drop = AverageDrop().score(explained).values
    assert drop == pytest.approx([100 * (y[0] - o[0]) / y[0], 0.0, 0.0], abs=1e-4)
    assert IncreaseInConfidence().score(explained).values.tolist() == [0.0, 100.0, 100.0]
    gain = AverageGain().score(explained).values
    assert gain == pytest.approx([0.0, 100 * (o[1] - y[1]) / (1 - y[1]), 100 * (o[2] - y[2]) / (1 - y[2])], abs=1e-3)


def test_confidence_edge_cases() -> None:
    assert AverageGain().from_probabilities(np.array([1.0, 0.5]), np.array([1.0, 0.75])).tolist() == [0.0, 50.0]
    assert AverageDrop().from_probabilities(np.array([0.0, 0.5]), np.array([0.0, 0.25])).tolist() == [0.0, 50.0]
    assert IncreaseInConfidence().from_probabilities(np.array([0.5, 0.5]), np.array([0.5, 0.6])).tolist() == [0, 100]


def test_registered_with_their_directions() -> None:
    direction = {cls.name: cls.higher_is_better for cls in metric_classes()}
    assert {k: direction[k] for k in ("deletion", "insertion", "average-drop", "increase-in-confidence",
                                      "average-gain", "mufidelity")} == {
        "deletion": False, "insertion": True, "average-drop": False, "increase-in-confidence": True,
        "average-gain": True, "mufidelity": True}
    assert Insertion().settings["baseline"] == "blur"


def test_bad_options() -> None:
    with pytest.raises(CamkitError, match="chunk: expected the copies per forward call, an integer of at least 1"):
        AverageDrop(chunk=0).score(Explained(linear_model(), ONES, np.ones((1, 4)), np.array([1])))
    with pytest.raises(CamkitError, match="baseline: expected one of"):
        Insertion(baseline="noise").score(Explained(linear_model(), ONES, np.ones((1, 4)), np.array([1])))


@pytest.mark.parametrize("spatial", [(6, 6), (16,)], ids=["image", "series"])
def test_ideal_map_beats_random_and_reversed(spatial: tuple[int, ...]) -> None:
    """On p(class 1) = sigmoid(Σ w ⊙ x) the ideal map is w ⊙ x's positive part; every metric must rank it first.
    Deletion and insertion use the zero baseline here: on inputs this small the blur (σ = 0.3 px on 6×6 images, a
    2-step average on 16 steps) leaves the input nearly as it is, so there would be little to delete or insert."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=spatial) * 2 / np.sqrt(np.prod(spatial))
    x = rng.uniform(size=(8, *spatial, 1)).astype(np.float32)
    model, targets, ideal = linear_model(w), np.ones(8, np.int64), ideal_maps(w, x)
    maps = {"ideal": ideal, "random": rng.uniform(size=ideal.shape).astype(np.float32), "reversed": 1 - ideal}
    metrics = [Deletion(baseline="zero"), Insertion(baseline="zero"), AverageDrop(), IncreaseInConfidence(),
               AverageGain(), MuFidelity()]
    for metric in metrics:
        sign = 1 if metric.higher_is_better else -1
        got = {k: sign * metric.score(Explained(model, x, m, targets)).values.mean() for k, m in maps.items()}
        assert got["ideal"] > max(got["random"], got["reversed"]), (metric.name, got)


@pytest.mark.parametrize("spatial", [(24, 24), (64,)], ids=["image", "series"])
@pytest.mark.parametrize("kind", ["default", "mean"])
def test_ideal_map_beats_random_and_reversed_on_other_baselines(spatial: tuple[int, ...], kind: str) -> None:
    """Deletion and insertion with their default baselines (zero; blur) and the mean, on inputs large enough for the
    blur to change them (24×24: σ = 1.2 px; 64 steps: a 6-step average)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=spatial) * 2 / np.sqrt(np.prod(spatial))
    x = rng.uniform(size=(8, *spatial, 1)).astype(np.float32)
    assert np.abs(baseline(x, "blur") - x).mean() > 0.1
    model, targets, ideal = linear_model(w), np.ones(8, np.int64), ideal_maps(w, x)
    maps = {"ideal": ideal, "random": rng.uniform(size=ideal.shape).astype(np.float32), "reversed": 1 - ideal}
    options = {} if kind == "default" else {"baseline": "mean"}
    for metric in (Deletion(**options), Insertion(**options)):
        sign = 1 if metric.higher_is_better else -1
        got = {k: sign * metric.score(Explained(model, x, m, targets)).values.mean() for k, m in maps.items()}
        assert got["ideal"] > max(got["random"], got["reversed"]), (metric.name, metric.settings, got)


def test_blur_of_an_impulse_by_hand() -> None:
    """Series: a centred 3-step average on 30 steps (BLUR_WINDOW 0.1), edges reflected."""
    x = np.zeros((1, 30, 1), np.float32)
    x[0, 5, 0], x[0, 0, 0] = 3.0, 3.0
    blurred = baseline(x, "blur")[0, :, 0]
    expected = np.zeros(30)
    expected[[4, 5, 6]] = 1.0
    expected[[0, 1]] = 2.0, 1.0  # reflected edge: (x0 + x0 + x1) / 3 at 0
    assert blurred == pytest.approx(expected, abs=1e-6)
