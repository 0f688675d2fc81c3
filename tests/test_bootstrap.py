"""Seeded, paired percentile-bootstrap intervals over dev examples."""

import numpy as np
import pytest

from contlearn.eval.bootstrap import bootstrap_summary, interval, resample_indices
from contlearn.eval.metrics import accuracy


def _noisy(size, correct_share, seed):
    """Binary labels and predictions with about ``correct_share`` of them right."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 2, size)
    pred = np.where(rng.random(size) < correct_share, true, 1 - true)
    return true.tolist(), pred.tolist()


def _three_tasks(size):
    """Targets, final and diagonal predictions for three tasks; task 0 and 1 forget a little."""
    tasks = [_noisy(size, share, seed) for seed, share in enumerate([0.9, 0.8, 0.7])]
    targets = [true for true, _ in tasks]
    diagonal = [pred for _, pred in tasks]
    final = [list(pred) for pred in diagonal]
    for j in (0, 1):
        final[j][: size // 5] = [1 - t for t in targets[j][: size // 5]]
    return final, diagonal, targets


def _summary(size=200, **kwargs):
    final, diagonal, targets = _three_tasks(size)
    return bootstrap_summary(final, diagonal, targets, [accuracy] * 3, **kwargs)


def test_resample_indices_shapes_and_range():
    indices = resample_indices([3, 5], resamples=7, seed=1)
    assert [a.shape for a in indices] == [(7, 3), (7, 5)]
    assert all(a.min() >= 0 and a.max() < n for a, n in zip(indices, [3, 5], strict=True))


def test_resample_indices_are_seeded_and_drawn_task_by_task():
    first, again = resample_indices([4, 6], 10, 3), resample_indices([4, 6], 10, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], resample_indices([4, 6], 10, 4)[1])
    # Task 0 is drawn first, so it does not depend on the tasks after it.
    assert np.array_equal(first[0], resample_indices([4], 10, 3)[0])


@pytest.mark.parametrize(("sizes", "resamples"), [([3, 0], 5), ([3], 0)])
def test_resample_indices_rejects_empty(sizes, resamples):
    with pytest.raises(ValueError):
        resample_indices(sizes, resamples, 0)


def test_interval_is_the_percentile_interval():
    values = np.arange(101, dtype=float)  # percentile p is p itself
    assert interval(values) == pytest.approx((2.5, 97.5))
    assert interval(values, level=0.9) == pytest.approx((5.0, 95.0))
    assert interval([0.3] * 10) == (0.3, 0.3)
    with pytest.raises(ValueError):
        interval(values, level=1.0)
    with pytest.raises(ValueError):
        interval([])


def test_point_estimates_are_the_full_data_scores():
    final, diagonal, targets = _three_tasks(200)
    result = bootstrap_summary(final, diagonal, targets, [accuracy] * 3, resamples=200)
    finals = [accuracy(t, p) for t, p in zip(targets, final, strict=True)]
    diagonals = [accuracy(t, p) for t, p in zip(targets, diagonal, strict=True)]
    assert [task["score"] for task in result["tasks"]] == pytest.approx(finals)
    assert result["acc"]["value"] == pytest.approx(sum(finals) / 3)
    bwt = ((finals[0] - diagonals[0]) + (finals[1] - diagonals[1])) / 2
    assert result["bwt"]["value"] == pytest.approx(bwt)
    assert bwt < 0
    assert {k: result[k] for k in ("resamples", "seed", "level")} == {
        "resamples": 200,
        "seed": 0,
        "level": 0.95,
    }


def test_intervals_contain_the_point_estimates():
    result = _summary(resamples=300)
    estimates = [(t["score"], t["ci"]) for t in result["tasks"]]
    estimates += [(result[k]["value"], result[k]["ci"]) for k in ("acc", "bwt")]
    for value, (lower, upper) in estimates:
        assert lower <= value <= upper
        assert lower < upper


def test_intervals_narrow_with_more_examples():
    small, large = _summary(size=50, resamples=300), _summary(size=2000, resamples=300)
    for key in ("acc", "bwt"):
        assert np.diff(large[key]["ci"])[0] < np.diff(small[key]["ci"])[0] / 2
    for few, many in zip(small["tasks"], large["tasks"], strict=True):
        assert np.diff(many["ci"])[0] < np.diff(few["ci"])[0]


def test_same_seed_same_result_other_seed_different():
    assert _summary(resamples=100, seed=5) == _summary(resamples=100, seed=5)
    other = _summary(resamples=100, seed=6)
    assert other["acc"]["ci"] != _summary(resamples=100, seed=5)["acc"]["ci"]
    assert other["acc"]["value"] == _summary(resamples=100, seed=5)["acc"]["value"]


def test_unchanged_method_has_bwt_interval_exactly_zero():
    _, diagonal, targets = _three_tasks(100)
    result = bootstrap_summary(diagonal, diagonal, targets, [accuracy] * 3, resamples=200)
    assert result["bwt"] == {"value": 0.0, "ci": [0.0, 0.0]}
    assert result["acc"]["ci"][0] < result["acc"]["ci"][1]


def test_perfect_task_has_interval_exactly_one():
    _, diagonal, targets = _three_tasks(100)
    final = [targets[0], diagonal[1], diagonal[2]]
    result = bootstrap_summary(final, None, targets, [accuracy] * 3, resamples=200)
    assert result["tasks"][0] == {"score": 1.0, "ci": [1.0, 1.0]}


def test_bwt_is_none_without_a_sequence_or_a_second_task():
    final, diagonal, targets = _three_tasks(50)
    metrics = [accuracy] * 3
    assert bootstrap_summary(final, None, targets, metrics, resamples=20)["bwt"] is None
    missing = [None, diagonal[1], diagonal[2]]
    assert bootstrap_summary(final, missing, targets, metrics, resamples=20)["bwt"] is None
    one = bootstrap_summary(final[:1], diagonal[:1], targets[:1], metrics[:1], resamples=20)
    assert one["bwt"] is None
    assert one["acc"]["value"] == one["tasks"][0]["score"]


def test_per_task_metrics_and_float_predictions():
    """Each task uses its own metric; a regression task's predictions are floats."""

    def neg_abs_error(y_true, y_pred):
        return -float(np.mean(np.abs(np.asarray(y_true) - np.asarray(y_pred))))

    targets = [[0, 1, 1, 0], [0.5, 1.5, 2.5]]
    final = [[0, 1, 0, 0], [0.5, 1.0, 2.5]]
    result = bootstrap_summary(final, None, targets, [accuracy, neg_abs_error], resamples=50)
    assert [t["score"] for t in result["tasks"]] == pytest.approx([0.75, -0.5 / 3])
    assert result["acc"]["value"] == pytest.approx((0.75 - 0.5 / 3) / 2)


@pytest.mark.parametrize(
    ("final", "diagonal", "targets", "metrics"),
    [
        ([[0, 1]], None, [[0, 1], [1, 0]], [accuracy] * 2),
        ([[0, 1], [1, 0]], None, [[0, 1], [1, 0]], [accuracy]),
        ([[0, 1], [1, 0]], [[0, 1]], [[0, 1], [1, 0]], [accuracy] * 2),
        ([[0, 1], [1]], None, [[0, 1], [1, 0]], [accuracy] * 2),
        ([[0, 1], [1, 0]], [[0], None], [[0, 1], [1, 0]], [accuracy] * 2),
        ([], None, [], []),
    ],
)
def test_mismatched_inputs_raise(final, diagonal, targets, metrics):
    with pytest.raises(ValueError):
        bootstrap_summary(final, diagonal, targets, metrics, resamples=5)
