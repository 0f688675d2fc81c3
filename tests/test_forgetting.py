"""Forgetting measures on hand-computed accuracy matrices (R[i][j]: task j after task i)."""

import math

import pytest

from contlearn.eval.forgetting import (
    average_incremental_accuracy,
    backward_transfer,
    final_average,
    forgetting,
    summarize,
    validate_matrix,
)

TWO_TASKS = [
    [0.8, None],
    [0.6, 0.9],
]

# Task 0 peaks at 0.7 after task 1, above its diagonal 0.5, so forgetting measures from 0.7
# while BWT measures from 0.5.
THREE_TASKS = [
    [0.5, None, None],
    [0.7, 0.6, None],
    [0.4, 0.5, 0.9],
]


def test_two_tasks():
    # ACC = (0.6 + 0.9) / 2; BWT = 0.6 - 0.8; forgetting = max(0.8) - 0.6;
    # average incremental = (0.8 + (0.6 + 0.9) / 2) / 2.
    assert final_average(TWO_TASKS) == pytest.approx(0.75)
    assert backward_transfer(TWO_TASKS) == pytest.approx(-0.2)
    assert forgetting(TWO_TASKS) == pytest.approx(0.2)
    assert average_incremental_accuracy(TWO_TASKS) == pytest.approx((0.8 + 0.75) / 2)


def test_three_tasks_forgetting_uses_best_intermediate_score():
    # ACC = (0.4 + 0.5 + 0.9) / 3 = 0.6.
    assert final_average(THREE_TASKS) == pytest.approx(0.6)
    # BWT = ((0.4 - 0.5) + (0.5 - 0.6)) / 2 = -0.1.
    assert backward_transfer(THREE_TASKS) == pytest.approx(-0.1)
    # task 0: max(0.5, 0.7) - 0.4 = 0.3; task 1: max(0.6) - 0.5 = 0.1; mean 0.2.
    assert forgetting(THREE_TASKS) == pytest.approx(0.2)
    assert backward_transfer(THREE_TASKS) != pytest.approx(-forgetting(THREE_TASKS))
    # rows: 0.5, (0.7 + 0.6) / 2 = 0.65, 0.6; mean = 1.75 / 3.
    assert average_incremental_accuracy(THREE_TASKS) == pytest.approx(1.75 / 3)


def test_single_task_has_no_baseline():
    R = [[0.7]]
    assert backward_transfer(R) is None
    assert forgetting(R) is None
    assert final_average(R) == pytest.approx(0.7)
    assert average_incremental_accuracy(R) == pytest.approx(0.7)
    assert summarize(R) == {
        "acc": pytest.approx(0.7),
        "bwt": None,
        "forgetting": None,
        "avg_incremental_acc": pytest.approx(0.7),
    }


def test_zero_forgetting_when_scores_never_change():
    R = [
        [0.8, None, None],
        [0.8, 0.7, None],
        [0.8, 0.7, 0.9],
    ]
    assert backward_transfer(R) == 0.0
    assert forgetting(R) == 0.0


def test_positive_backward_transfer_gives_negative_forgetting():
    # Task 0 rises from 0.5 to 0.7: BWT = +0.2, forgetting = 0.5 - 0.7 = -0.2.
    R = [[0.5, None], [0.7, 0.6]]
    assert backward_transfer(R) == pytest.approx(0.2)
    assert forgetting(R) == pytest.approx(-0.2)


def test_entries_above_diagonal_are_ignored():
    filled = [
        [0.5, 0.1, float("nan")],
        [0.7, 0.6, 0.2],
        [0.4, 0.5, 0.9],
    ]
    assert summarize(filled) == pytest.approx(summarize(THREE_TASKS))


def test_summarize():
    result = summarize(THREE_TASKS)
    assert list(result) == ["acc", "bwt", "forgetting", "avg_incremental_acc"]
    assert result == pytest.approx(
        {"acc": 0.6, "bwt": -0.1, "forgetting": 0.2, "avg_incremental_acc": 1.75 / 3}
    )


def test_accepts_ints_and_returns_floats():
    R = [[1, None], [0, 1]]
    assert final_average(R) == 0.5
    assert type(final_average(R)) is float
    assert type(backward_transfer(R)) is float


@pytest.mark.parametrize(
    ("R", "message"),
    [
        ([], "empty"),
        ([[0.8, None]], "not square"),
        ([[0.8], [0.6, 0.9]], "not square"),
        ([[0.8, None], [0.6, 0.9], [0.5, 0.5]], "not square"),
        ([[None]], r"R\[0\]\[0\]"),
        ([[0.8, None], [None, 0.9]], r"R\[1\]\[0\]"),
        ([[0.8, None], [0.6, math.nan]], r"R\[1\]\[1\]"),
        ([[0.8, None], [0.6, math.inf]], r"R\[1\]\[1\]"),
        ([["0.8"]], r"R\[0\]\[0\]"),
    ],
)
def test_invalid_matrices_raise(R, message):
    with pytest.raises(ValueError, match=message):
        validate_matrix(R)
    with pytest.raises(ValueError, match=message):
        summarize(R)


def test_valid_matrix_passes():
    assert validate_matrix(THREE_TASKS) is None
