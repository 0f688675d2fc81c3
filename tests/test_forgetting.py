"""Forgetting measures on hand-computed accuracy matrices (R[i][j]: task j after task i)."""

import math

import pytest

from contlearn.eval.forgetting import (
    average_incremental_accuracy,
    backward_transfer,
    final_average,
    forgetting,
    forgetting_avalanche,
    forward_transfer,
    intransigence,
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
        "forgetting_avalanche": None,
        "fwt": None,
        "intransigence": None,
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
    assert list(result) == [
        "acc",
        "bwt",
        "forgetting",
        "avg_incremental_acc",
        "forgetting_avalanche",
        "fwt",
        "intransigence",
    ]
    assert result == pytest.approx(
        {
            "acc": 0.6,
            "bwt": -0.1,
            "forgetting": 0.2,
            "avg_incremental_acc": 1.75 / 3,
            "forgetting_avalanche": 0.1,
            "fwt": None,
            "intransigence": None,
        }
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


# New measures on THREE_TASKS (diagonal 0.5, 0.6, 0.9; final row 0.4, 0.5, 0.9):
# Avalanche forgetting = ((0.5 - 0.4) + (0.6 - 0.5)) / 2 = 0.1 = -BWT.
# FWT with reference [0.3, 0.4, 0.95] = ((0.6 - 0.4) + (0.9 - 0.95)) / 2 = 0.075.
# Intransigence with joint [0.6, 0.7, 0.9] = ((0.6 - 0.5) + (0.7 - 0.6) + (0.9 - 0.9)) / 3 = 0.2/3.
REFERENCE = [0.3, 0.4, 0.95]
JOINT = [0.6, 0.7, 0.9]


def test_forgetting_avalanche_is_minus_bwt_not_chaudhry():
    assert forgetting_avalanche(THREE_TASKS) == pytest.approx(0.1)
    assert forgetting_avalanche(THREE_TASKS) == pytest.approx(-backward_transfer(THREE_TASKS))
    assert forgetting_avalanche(THREE_TASKS) != pytest.approx(forgetting(THREE_TASKS))
    assert forgetting_avalanche(TWO_TASKS) == pytest.approx(0.2)
    assert forgetting_avalanche([[0.7]]) is None


def test_forgetting_avalanche_zero_is_positive_zero():
    R = [[0.8, None], [0.8, 0.7]]
    assert forgetting_avalanche(R) == 0.0
    assert math.copysign(1.0, forgetting_avalanche(R)) == 1.0


def test_forward_transfer_against_reference():
    assert forward_transfer(THREE_TASKS, REFERENCE) == pytest.approx(0.075)
    # reference[0] is unused: task 0 has no earlier task to transfer from.
    assert forward_transfer(THREE_TASKS, [0.0, 0.4, 0.95]) == pytest.approx(0.075)
    # TWO_TASKS: 0.9 - 0.5 = 0.4.
    assert forward_transfer(TWO_TASKS, [0.5, 0.5]) == pytest.approx(0.4)
    assert forward_transfer([[0.7]], [0.5]) is None
    assert type(forward_transfer([[1, None], [0, 1]], [0, 0])) is float


def test_intransigence_against_joint():
    assert intransigence(THREE_TASKS, JOINT) == pytest.approx(0.2 / 3)
    # T == 1 is defined: 0.9 - 0.7 = 0.2.
    assert intransigence([[0.7]], [0.9]) == pytest.approx(0.2)
    # A sequential learner above the joint model has negative intransigence: (0.7 - 0.8 + 0.8 -
    # 0.9) / 2 = -0.1.
    assert intransigence(TWO_TASKS, [0.7, 0.8]) == pytest.approx(-0.1)


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([0.5, 0.5], " has 2 scores for 3 tasks"),
        ([0.5, 0.5, 0.5, 0.5], " has 4 scores for 3 tasks"),
        ([0.5, math.nan, 0.5], r"\[1\] must be a finite number"),
        ([0.5, 0.5, math.inf], r"\[2\] must be a finite number"),
        ([None, 0.5, 0.5], r"\[0\] must be a finite number"),
        ([0.5, "0.5", 0.5], r"\[1\] must be a finite number"),
        ([0.5, True, 0.5], r"\[1\] must be a finite number"),
    ],
)
def test_reference_and_joint_errors(scores, message):
    with pytest.raises(ValueError, match="reference" + message):
        forward_transfer(THREE_TASKS, scores)
    with pytest.raises(ValueError, match="joint" + message):
        intransigence(THREE_TASKS, scores)
    with pytest.raises(ValueError, match="reference" + message):
        summarize(THREE_TASKS, reference=scores)
    with pytest.raises(ValueError, match="joint" + message):
        summarize(THREE_TASKS, joint=scores)


def test_new_measures_validate_the_matrix():
    for measure in (
        forgetting_avalanche,
        lambda R: forward_transfer(R, [0.5, 0.5]),
        lambda R: intransigence(R, [0.5, 0.5]),
    ):
        with pytest.raises(ValueError, match=r"R\[1\]\[0\]"):
            measure([[0.8, None], [None, 0.9]])


def test_summarize_with_reference_and_joint():
    result = summarize(THREE_TASKS, reference=REFERENCE, joint=JOINT)
    assert list(result) == list(summarize(THREE_TASKS))
    assert result == pytest.approx(
        {
            "acc": 0.6,
            "bwt": -0.1,
            "forgetting": 0.2,
            "avg_incremental_acc": 1.75 / 3,
            "forgetting_avalanche": 0.1,
            "fwt": 0.075,
            "intransigence": 0.2 / 3,
        }
    )
    assert summarize(THREE_TASKS, joint=JOINT)["fwt"] is None
    assert summarize(THREE_TASKS, reference=REFERENCE)["intransigence"] is None
    assert summarize([[0.7]], reference=[0.5], joint=[0.9])["fwt"] is None
    assert summarize([[0.7]], reference=[0.5], joint=[0.9])["intransigence"] == pytest.approx(0.2)
