"""The routing rule and its measures, on hand-computed numbers (no model)."""

from __future__ import annotations

import pytest
import torch

from contlearn.eval.routing import (
    Router,
    RoutingStats,
    decide,
    pooled_covariance,
    shrunk,
    tpr_threshold,
)
from contlearn.eval.routing_measures import accuracy, auroc, routed_classes, share_matrix


def stats(points: list[list[float]], held: list[list[float]] | None = None) -> RoutingStats:
    x = torch.tensor(points, dtype=torch.float32)
    return RoutingStats.of(x, torch.tensor(held or points, dtype=torch.float32))


def test_statistics_are_count_mean_and_scatter() -> None:
    s = stats([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]])
    assert s.count == 3
    assert torch.equal(s.mean, torch.tensor([1.0, 1.0], dtype=torch.float64))
    # deviations (-1,-1), (1,-1), (0,2): scatter [[2, 0], [0, 6]]
    assert torch.equal(s.scatter, torch.tensor([[2.0, 0.0], [0.0, 6.0]], dtype=torch.float64))
    again = RoutingStats.from_tensors(s.tensors())
    assert again.count == 3 and torch.equal(again.scatter, s.scatter)


def test_the_pooled_covariance_is_shrunk_towards_its_scaled_identity() -> None:
    a, b = stats([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]]), stats([[10.0, 0.0], [12.0, 0.0]])
    pooled = pooled_covariance([a, b])  # scatters [[2,0],[0,6]] + [[2,0],[0,0]], over 5 - 2
    assert torch.allclose(pooled, torch.tensor([[4 / 3, 0.0], [0.0, 2.0]], dtype=torch.float64))
    # trace/d = 5/3: 0.9 * pooled + 0.1 * 5/3 I
    want = torch.tensor([[0.9 * 4 / 3 + 1 / 6, 0.0], [0.0, 1.8 + 1 / 6]], dtype=torch.float64)
    assert torch.allclose(shrunk(pooled), want)
    assert torch.equal(shrunk(torch.zeros(2, 2, dtype=torch.float64)), 0.1 * torch.eye(2).double())


def test_distances_are_mahalanobis_under_the_shrunk_pooled_covariance() -> None:
    a, b = stats([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]]), stats([[10.0, 0.0], [12.0, 0.0]])
    router = Router(["a", "b"], [a, b])
    x = torch.tensor([[1.0, 2.0], [11.0, 0.5]])
    inverse = torch.linalg.inv(shrunk(pooled_covariance([a, b])))
    for t, mean in enumerate((a.mean, b.mean)):
        d = x.double() - mean
        want = torch.einsum("nd,de,ne->n", d, inverse, d)
        assert torch.allclose(router.distances(x)[:, t], want)
    routes = router.route(x)
    assert routes.choice.tolist() == [0, 1]
    assert routes.confidence.tolist() == pytest.approx(
        torch.softmax(-router.distances(x) / 2, dim=1).max(dim=1).values.tolist()
    )


def test_the_threshold_keeps_95_percent_of_held_out_inputs() -> None:
    assert tpr_threshold(torch.arange(1.0, 21.0)) == 19.0  # 19 of 20 at or below it
    assert tpr_threshold(torch.tensor([3.0])) == 3.0
    assert tpr_threshold(torch.arange(1.0, 101.0), 0.5) == 50.0


def test_inputs_beyond_the_threshold_or_without_allowed_tasks_go_nowhere() -> None:
    distance = torch.tensor([[1.0, 9.0], [30.0, 40.0]], dtype=torch.float64)
    routes = decide(distance, threshold=10.0)
    assert routes.choice.tolist() == [0, 0] and routes.in_scope.tolist() == [True, False]
    assert routes.confidence[0] == pytest.approx(1 / (1 + torch.exp(torch.tensor(-4.0))))
    a, b = stats([[0.0, 0.0], [1.0, 1.0]]), stats([[5.0, 5.0], [6.0, 6.0]])
    allowed = torch.tensor([[False, True]])
    assert Router(["a", "b"], [a, b]).route(torch.tensor([[0.0, 0.0]]), allowed).choice == 1


def test_share_matrix_and_accuracy() -> None:
    truth = ["a", "a", "a", "a", "b", "b"]
    routed = ["a", "a", "b", None, "b", "b"]
    assert share_matrix(truth, routed, ["a", "b"], ["a", "b"]) == [
        [0.5, 0.25, 0.25],
        [0.0, 1.0, 0.0],
    ]
    assert share_matrix(truth, routed, ["c"], ["a"]) == [[None, None]]
    assert accuracy(truth, routed) == pytest.approx(4 / 6)
    assert accuracy([], []) is None


def test_auroc_counts_pairs_and_ties() -> None:
    assert auroc([1.0, 2.0], [3.0, 4.0]) == 1.0
    assert auroc([3.0, 4.0], [1.0, 2.0]) == 0.0
    # pairs (in, out): (1,2) right, (1,1) tie, (3,2) wrong, (3,1) wrong -> (1 + 0.5) / 4
    assert auroc([1.0, 3.0], [2.0, 1.0]) == pytest.approx(0.375)
    assert auroc([], [1.0]) is None


def test_a_misrouted_answer_counts_when_its_label_is_right() -> None:
    # a sentiment row answered by another sentiment task: its label still scores
    assert routed_classes([0, 1, 1], ["neg", "pos"], ["neg", "pos", "neg"]) == [0, 1, 0]
    # an answer from a task with other labels, or none, is wrong
    assert routed_classes([0, 1, 2], ["x", "y", "z"], ["sport", None, "cat"]) == [1, 2, 0]


def test_each_kind_says_what_routing_reads_of_a_row() -> None:
    from contlearn.kinds import get

    classification, tagging, generation = (
        get(n) for n in ("classification", "tagging", "generation")
    )
    assert classification.routing_text(("a film",)) == ("a film",)
    assert classification.routing_text(("premise", "hypothesis")) == ("premise", "hypothesis")
    assert classification.routing_text(("a", "b", "c")) == ("a\nb\nc",)
    # a tagging row is its words; given to predict as one text, it reads the same
    assert tagging.routing_text(("the", "cat", "sat")) == ("the cat sat",)
    assert tagging.routing_text(tagging.predict_inputs([("the  cat sat",)])[0]) == ("the cat sat",)
    # a conversation: its contents, not its roles
    turns = ("system", "be brief", "user", "hello")
    assert generation.routing_text(turns) == ("be brief\nhello",)
    assert generation.routing_text(generation.predict_inputs([("hello",)])[0]) == ("hello",)
