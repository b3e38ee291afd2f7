"""The target grammar, token by token: columns, engine codes, stacking, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from camkit.errors import CamkitError
from camkit.methods.targets import LOWEST, Column, TargetPlan, parse_targets


def columns(plan: TargetPlan) -> list[tuple[str, int | None]]:
    return [(c.name, c.code) for c in plan.columns]


@pytest.mark.parametrize(
    ("targets", "expected", "stacked"),
    [
        (None, [("top1", -1)], False),
        ("predicted", [("top1", -1)], False),
        (" Predicted ", [("top1", -1)], False),
        (2, [("class2", 2)], False),
        (np.int64(0), [("class0", 0)], False),
        ("7", [("class7", 7)], False),
        ("class4", [("class4", 4)], False),
        ("lowest", [("lowest", LOWEST)], False),
        ("true", [("true", None)], False),
        ("top1", [("top1", -1)], True),
        ("top3", [("top1", -1), ("top2", -2), ("top3", -3)], True),
        ("TOP-2", [("top1", -1), ("top2", -2)], True),
        ("top5,true", [("top1", -1), ("top2", -2), ("top3", -3), ("top4", -4), ("top5", -5), ("true", None)], True),
        ("top3,lowest", [("top1", -1), ("top2", -2), ("top3", -3), ("lowest", LOWEST)], True),
        ("lowest,", [("lowest", LOWEST)], True),
        ("predicted, top2, 1, class1", [("top1", -1), ("top2", -2), ("class1", 1)], True),
        ("top2,top3", [("top1", -1), ("top2", -2), ("top3", -3)], True),
        (["true", "top2"], [("true", None), ("top1", -1), ("top2", -2)], True),
        (("lowest",), [("lowest", LOWEST)], True),
        (["top1,class0", "lowest"], [("top1", -1), ("class0", 0), ("lowest", LOWEST)], True),
    ],
)
def test_tokens(targets: object, expected: list, stacked: bool) -> None:
    plan = parse_targets(targets)
    assert columns(plan) == expected and plan.stacked is stacked
    assert plan.names == [name for name, _ in expected]
    assert plan.needs_truth == ("true" in plan.names)
    assert all(c.classes is None for c in plan.columns)


@pytest.mark.parametrize("targets", [np.array([2, 0, 1]), [2, 0, 1], (2, 0, 1), np.array([2, 0, 1], np.uint8)])
def test_one_class_per_sample(targets: object) -> None:
    plan = parse_targets(targets)
    assert plan.names == ["target"] and not plan.stacked and not plan.needs_truth
    (column,) = plan.columns
    assert column.code is None and column.classes.dtype == np.int32
    np.testing.assert_array_equal(column.classes, [2, 0, 1])


def test_n_classes_caps_topk_and_checks_classes() -> None:
    assert parse_targets("top5", n_classes=3).names == ["top1", "top2", "top3"]
    assert parse_targets("top5,true", n_classes=2).names == ["top1", "top2", "true"]
    assert parse_targets("top2", n_classes=3).names == ["top1", "top2"]
    assert parse_targets("top9").names == [f"top{r}" for r in range(1, 10)]  # the engine checks it later
    assert parse_targets(5).names == ["class5"]
    assert parse_targets("lowest", n_classes=1).columns == (Column("lowest", LOWEST),)
    for bad in (3, "3", "class3", "top2,class7", [0, 3]):
        with pytest.raises(CamkitError, match=r"targets: class \d is out of range; the model has 3 classes"):
            parse_targets(bad, n_classes=3)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ("best", "targets: 'best' is not predicted, lowest, true, topK, class<k> or a class index"),
        ("top3,worst", "'worst' is not"),
        ("top", "'top' is not"),
        ("-1", "'-1' is not"),
        ("class", "'class' is not"),
        ("top0", "'top0': K must be at least 1"),
        ("top-0,lowest", "'top-0': K must be at least 1"),
        (",", r"no target in \[\]"),
        (-1, "class -1 is negative"),
        (True, "expected None"),
        ([0.5], "one class index per sample"),
        ([], "one class index per sample"),
        ([1, -2], "one class index per sample"),
        (np.zeros((2, 2), int), "one class index per sample"),
        (["top1", 2], "one class index per sample"),
        (3.0, "expected None"),
    ],
)
def test_errors_name_the_token(targets: object, message: str) -> None:
    with pytest.raises(CamkitError, match=message):
        parse_targets(targets)
