"""Metrics against hand-computed confusion matrices and rankings.

Each expected value is worked out in the comments. Where scikit-learn or scipy happens to be
importable, an extra assert compares with it; the hand-computed asserts stand on their own.
"""

import importlib
import math

import pytest

from contlearn.eval.metrics import (
    METRIC_FUNCTIONS,
    accuracy,
    compute_metrics,
    f1,
    majority_class_score,
    matthews,
    pearson,
    spearman,
)


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


SKLEARN = _optional("sklearn.metrics")
SCIPY = _optional("scipy.stats")

# Binary: TP = 3 (positions 0, 2, 7), FN = 1 (1), FP = 2 (3, 6), TN = 2 (4, 5).
BINARY_TRUE = [1, 1, 1, 0, 0, 0, 0, 1]
BINARY_PRED = [1, 0, 1, 1, 0, 0, 1, 1]

# Three classes, confusion matrix (rows true, columns predicted):
#   [[2, 1, 0],
#    [1, 2, 0],
#    [0, 1, 3]]
MULTI_TRUE = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
MULTI_PRED = [0, 0, 1, 0, 1, 1, 1, 2, 2, 2]


def test_metric_functions_names():
    assert list(METRIC_FUNCTIONS) == ["accuracy", "f1", "matthews", "pearson", "spearman"]


def test_accuracy():
    # Positions 0, 1, 3 agree: 3 / 5.
    value = accuracy([0, 1, 1, 0, 1], [0, 1, 0, 0, 0])
    assert value == pytest.approx(0.6)
    assert type(value) is float


def test_f1_binary_is_f1_of_class_one():
    # P = 3/5, R = 3/4, F1 = 2 TP / (2 TP + FP + FN) = 6 / 9.
    value = f1(BINARY_TRUE, BINARY_PRED, num_classes=2)
    assert value == pytest.approx(2 / 3)
    assert type(value) is float
    if SKLEARN is not None:
        assert value == pytest.approx(SKLEARN.f1_score(BINARY_TRUE, BINARY_PRED))


def test_f1_binary_undefined_precision_is_zero():
    # No predicted positives: precision 0/0, so F1 is 0.0 rather than NaN.
    assert f1([1, 0, 1], [0, 0, 0], num_classes=2) == 0.0
    # No positives at all on either side.
    assert f1([0, 0], [0, 0], num_classes=2) == 0.0


def test_f1_macro():
    # class 0: TP 2, FP 1, FN 1 -> 4/6;  class 1: TP 2, FP 2, FN 1 -> 4/7;
    # class 2: TP 3, FP 0, FN 1 -> 6/7;  mean = (2/3 + 4/7 + 6/7) / 3 = 44/63.
    value = f1(MULTI_TRUE, MULTI_PRED, num_classes=3)
    assert value == pytest.approx(44 / 63)
    if SKLEARN is not None:
        expected = SKLEARN.f1_score(MULTI_TRUE, MULTI_PRED, average="macro")
        assert value == pytest.approx(expected)


def test_f1_macro_skips_classes_absent_from_both_sides():
    # num_classes 4 but class 3 never occurs: the macro-F1 is the same 44/63.
    assert f1(MULTI_TRUE, MULTI_PRED, num_classes=4) == pytest.approx(44 / 63)


def test_matthews_binary():
    # (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (6 - 2) / sqrt(5*4*4*3)
    # = 4 / sqrt(240) = 1 / sqrt(15).
    value = matthews(BINARY_TRUE, BINARY_PRED, num_classes=2)
    assert value == pytest.approx(1 / math.sqrt(15))
    if SKLEARN is not None:
        assert value == pytest.approx(SKLEARN.matthews_corrcoef(BINARY_TRUE, BINARY_PRED))


def test_matthews_three_classes():
    # c = trace = 7, s = 10, t (row sums) = [3, 3, 4], p (column sums) = [3, 4, 3].
    # numerator = c s - p.t = 70 - (9 + 12 + 12) = 37.
    # s^2 - p.p = 100 - 34 = 66;  s^2 - t.t = 100 - 34 = 66;  MCC = 37 / 66.
    value = matthews(MULTI_TRUE, MULTI_PRED, num_classes=3)
    assert value == pytest.approx(37 / 66)
    if SKLEARN is not None:
        assert value == pytest.approx(SKLEARN.matthews_corrcoef(MULTI_TRUE, MULTI_PRED))


def test_matthews_extremes_and_zero_denominator():
    assert matthews([0, 1, 2, 1], [0, 1, 2, 1], num_classes=3) == pytest.approx(1.0)
    assert matthews([0, 1, 0, 1], [1, 0, 1, 0], num_classes=2) == pytest.approx(-1.0)
    # A constant prediction makes s^2 - p.p = 0.
    assert matthews([0, 1, 2, 1], [1, 1, 1, 1], num_classes=3) == 0.0


def test_pearson_hand_computed():
    # dx = [-1, 0, 1], dy = [-1, 1, 0]: cov = 1, ss_x = ss_y = 2, r = 1/2.
    value = pearson([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert value == pytest.approx(0.5)
    assert type(value) is float
    if SCIPY is not None:
        assert value == pytest.approx(SCIPY.pearsonr([1, 2, 3], [1, 3, 2])[0])


def test_pearson_perfect_and_inverse():
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == 1.0
    assert pearson([1, 2, 3, 4], [8, 6, 4, 2]) == -1.0


def test_pearson_constant_side_is_zero():
    # [0.1] * 3 has a mean that is not exactly 0.1; it must still count as constant.
    assert pearson([1.0, 2.0, 3.0], [0.1, 0.1, 0.1]) == 0.0
    assert pearson([5.0, 5.0], [1.0, 2.0]) == 0.0


def test_spearman_with_ties():
    # ranks x = [1, 2.5, 2.5, 4], ranks y = [1, 3, 2, 4], both with mean 2.5.
    # dx = [-1.5, 0, 0, 1.5], dy = [-1.5, 0.5, -0.5, 1.5]:
    # cov = 4.5, ss_x = 4.5, ss_y = 5, r = 4.5 / sqrt(22.5) = sqrt(0.9).
    value = spearman([1, 2, 2, 3], [1, 3, 2, 4])
    assert value == pytest.approx(math.sqrt(0.9))
    if SCIPY is not None:
        assert value == pytest.approx(SCIPY.spearmanr([1, 2, 2, 3], [1, 3, 2, 4])[0])


def test_spearman_ties_share_mean_rank():
    # x ranks: 10 -> 1, the three 20s -> 3, 30 -> 5; y ranks are the same: r = 1.
    assert spearman([10, 20, 20, 30, 20], [1, 3, 3, 5, 3]) == pytest.approx(1.0)


def test_spearman_perfect_and_inverse_for_monotone_data():
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [16, 9, 4, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [7, 7, 7]) == 0.0


def test_compute_metrics_keeps_order_of_names():
    result = compute_metrics(
        ["matthews", "accuracy", "f1"],
        y_true=BINARY_TRUE,
        y_pred=BINARY_PRED,
        num_classes=2,
    )
    assert list(result) == ["matthews", "accuracy", "f1"]
    # accuracy: TP 3 + TN 2 of 8.
    assert result == pytest.approx({"matthews": 1 / math.sqrt(15), "accuracy": 5 / 8, "f1": 2 / 3})


def test_compute_metrics_regression():
    result = compute_metrics(
        ["spearman", "pearson"], y_true=[1.0, 2.0, 3.0], y_pred=[1.0, 3.0, 2.0], num_classes=None
    )
    # Values equal their ranks here, so both are the r = 1/2 worked out above.
    assert result == pytest.approx({"spearman": 0.5, "pearson": 0.5})
    assert list(result) == ["spearman", "pearson"]


def test_compute_metrics_rejects_unknown_and_classification_without_classes():
    with pytest.raises(ValueError, match="unknown metrics"):
        compute_metrics(["bleu"], y_true=[0, 1], y_pred=[0, 1], num_classes=2)
    with pytest.raises(ValueError, match="need num_classes"):
        compute_metrics(["accuracy"], y_true=[0.5, 1.0], y_pred=[0.5, 1.0], num_classes=None)


def test_majority_class_score():
    # Class 2 is most frequent (3 of 6): accuracy 1/2. Macro-F1: class 2 has TP 3, FP 3,
    # FN 0 -> 6/9; classes 0 and 1 have TP 0 -> 0; mean = 2/9. MCC: constant prediction -> 0.
    result = majority_class_score(["accuracy", "f1", "matthews"], [2, 0, 2, 1, 2, 0], 3)
    assert result == pytest.approx({"accuracy": 0.5, "f1": 2 / 9, "matthews": 0.0})


def test_majority_class_score_breaks_ties_by_lowest_index():
    # Classes 0 and 1 tie; predicting 0 leaves no true positives for class 1, so F1 is 0.
    result = majority_class_score(["accuracy", "f1"], [1, 0, 1, 0], 2)
    assert result == {"accuracy": 0.5, "f1": 0.0}


@pytest.mark.parametrize("function", list(METRIC_FUNCTIONS.values()))
def test_empty_input_raises(function):
    args = ([], [], 2) if function in (f1, matthews) else ([], [])
    with pytest.raises(ValueError, match="no examples"):
        function(*args)


def test_empty_input_raises_in_compute_and_majority():
    with pytest.raises(ValueError, match="no examples"):
        compute_metrics([], y_true=[], y_pred=[], num_classes=2)
    with pytest.raises(ValueError, match="no examples"):
        majority_class_score(["accuracy"], [], 2)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "num_classes", "message"),
    [
        ([0, 1], [0], 2, "has 2 values but y_pred has 1"),
        ([0, 2], [0, 1], 2, "outside"),
        ([0, 1], [0, -1], 2, "outside"),
        ([0.0, 1.0], [0, 1], 2, "integer class indices"),
        ([0, 0], [0, 0], 1, "at least 2"),
    ],
)
def test_bad_labels_raise(y_true, y_pred, num_classes, message):
    with pytest.raises(ValueError, match=message):
        f1(y_true, y_pred, num_classes)


def test_non_finite_regression_values_raise():
    with pytest.raises(ValueError, match="NaN"):
        pearson([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        spearman([1.0, 2.0], [1.0, float("inf")])
