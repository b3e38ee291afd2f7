"""classification_report / format_report against numbers worked out by hand (camkit.metrics.classification)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from camkit.metrics.classification import classification_report, format_report

# 10 samples, 3 classes. Confusion matrix (rows: true class, columns: predicted class):
#            pred 0  pred 1  pred 2   | support
#   true 0      2       1       1     |   4
#   true 1      1       2       0     |   3
#   true 2      0       1       2     |   3
#   predicted   3       4       3
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]
MATRIX = [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
PRECISION = [2 / 3, 2 / 4, 2 / 3]  # diagonal / column sum
RECALL = [2 / 4, 2 / 3, 2 / 3]  # diagonal / row sum
F1 = [4 / 7, 4 / 7, 2 / 3]  # 2PR/(P+R): class 0: (2*(2/3)*(1/2)) / (7/6) = 4/7


@pytest.fixture
def report():
    return classification_report(np.array(Y_TRUE), np.array(Y_PRED), 3)


def test_confusion_matrix_and_support(report):
    assert report["confusion_matrix"] == MATRIX
    assert report["per_class"]["support"] == [4, 3, 3]
    assert report["n_samples"] == 10


def test_per_class_precision_recall_f1(report):
    np.testing.assert_allclose(report["per_class"]["precision"], PRECISION)
    np.testing.assert_allclose(report["per_class"]["recall"], RECALL)
    np.testing.assert_allclose(report["per_class"]["f1"], F1)


def test_accuracy_and_averages(report):
    assert report["accuracy"] == pytest.approx(6 / 10)  # trace 6 of 10
    # macro: unweighted mean over classes
    assert report["macro"]["precision"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)  # 11/18
    assert report["macro"]["recall"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)  # 11/18
    assert report["macro"]["f1"] == pytest.approx((4 / 7 + 4 / 7 + 2 / 3) / 3)  # 38/63
    assert report["macro"]["f1"] == pytest.approx(38 / 63)
    # micro, single label: every false positive is another class's false negative, so P = R = F1 = accuracy
    for key in ("precision", "recall", "f1"):
        assert report["micro"][key] == pytest.approx(0.6)


def test_report_is_plain_json(report):
    assert json.loads(json.dumps(report)) == report  # no numpy scalars, no NaN


def test_class_never_predicted_counts_as_zero():
    # class 2 is present twice but never predicted: precision 0/0 -> 0 (zero_division 0), recall 0/2 = 0
    rep = classification_report([0, 1, 2, 2], [0, 1, 1, 1], 3)
    assert rep["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 2, 0]]
    np.testing.assert_allclose(rep["per_class"]["precision"], [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(rep["per_class"]["recall"], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(rep["per_class"]["f1"], [1.0, 0.5, 0.0])  # class 1: 2(1/3)(1)/(4/3)
    assert rep["accuracy"] == pytest.approx(0.5)
    assert rep["macro"]["precision"] == pytest.approx(4 / 9)
    assert rep["macro"]["recall"] == pytest.approx(2 / 3)
    assert rep["macro"]["f1"] == pytest.approx(1 / 2)
    assert rep["micro"]["f1"] == pytest.approx(0.5)
    assert not any(np.isnan(v) for avg in ("macro", "micro") for v in rep[avg].values())


def test_class_absent_from_both_keeps_its_row_and_counts_zero_in_macro():
    rep = classification_report([0, 1, 0, 1], [0, 1, 0, 0], 3)
    assert rep["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert rep["per_class"]["support"] == [2, 2, 0]
    np.testing.assert_allclose(rep["per_class"]["precision"], [2 / 3, 1.0, 0.0])
    np.testing.assert_allclose(rep["per_class"]["recall"], [1.0, 0.5, 0.0])
    # as documented: the macro average runs over all n_classes, the absent class counting 0
    assert rep["macro"]["precision"] == pytest.approx((2 / 3 + 1) / 3)
    assert rep["macro"]["recall"] == pytest.approx(1.5 / 3)
    assert rep["accuracy"] == pytest.approx(0.75)
    assert rep["micro"]["precision"] == pytest.approx(0.75)


def test_perfect_predictions():
    rep = classification_report([2, 0, 1, 1], [2, 0, 1, 1], 3)
    assert rep["accuracy"] == 1.0
    assert rep["macro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert rep["confusion_matrix"] == [[1, 0, 0], [0, 2, 0], [0, 0, 1]]


def test_format_report_text(report):
    assert format_report(report).splitlines() == [
        "samples   10",
        "accuracy  0.6000",
        "           precision    recall        f1",
        "macro         0.6111    0.6111    0.6032",
        "micro         0.6000    0.6000    0.6000",
    ]
