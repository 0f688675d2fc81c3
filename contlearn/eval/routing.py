"""The routing rule: which trained task an input belongs to, from each task's own statistics.

Each task stores, when it finishes training, the mean-pooled features the frozen backbone (no
task active: exactly the base model) computes for its training inputs: their count, mean and
scatter (the sum of squared deviations from the mean), and the features of up to
``HELD_OUT_ROWS`` inputs of its selection split (:class:`RoutingStats`). The router over N tasks
is a fixed function of those N files (:meth:`Router.build`):

- a tied covariance pooled over the tasks (the scatters summed, divided by the rows less one per
  task), shrunk towards its own scaled identity, ``(1 - SHRINKAGE) S + SHRINKAGE tr(S)/d I``, so
  that it is invertible when a task has fewer inputs than the features have dimensions;
- per input, the squared Mahalanobis distance to every task's mean under it (Lee et al. 2018);
  the task chosen is the nearest, and its confidence the softmax over ``-distance / 2``: the
  posterior of linear discriminant analysis with equal priors, a probability under the model
  the statistics describe rather than a free score;
- "none of these": an input whose distance to the nearest task exceeds the threshold that keeps
  ``IN_SCOPE_TPR`` (95%) of the tasks' own held-out selection inputs in scope is answered with
  no task. The threshold is computed from the files too, so it follows the set of tasks.

Why not the alternatives. A nearest-prototype rule (cosine to each task's mean) is what this
rule reduces to with an identity covariance: it ignores that the frozen features vary far more
along some directions (sentence length, frequent words) than along the ones that tell tasks
apart, and gives no calibrated confidence or natural out-of-scope score. A classifier trained
over the tasks would be more flexible, but it must be retrained over every task's inputs each
time one arrives: it rewrites something earlier tasks depend on, and so cannot promise that
nothing learned before changes. Here a new task adds its own file; earlier files never change,
and decisions move only because the pooled covariance and the set of means grew (measured by the
routing matrix, :mod:`.routing_measures`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

SHRINKAGE = 0.1  # weight of the scaled identity in the shrunk pooled covariance
IN_SCOPE_TPR = 0.95  # share of in-scope held-out inputs the "none of these" threshold keeps
HELD_OUT_ROWS = 256  # selection-split inputs whose features a task's routing file holds
STATS_ROWS = 2000  # training inputs whose features a task's statistics summarise, at most


@dataclass(frozen=True)
class RoutingStats:
    """One task's routing statistics: ``count`` training inputs, their feature ``mean`` [d] and
    ``scatter`` [d, d] (float64), and the features ``held_out`` [m, d] (float32) of inputs of
    its selection split (never trained on by the statistics)."""

    count: int
    mean: torch.Tensor
    scatter: torch.Tensor
    held_out: torch.Tensor

    @classmethod
    def of(cls, features: torch.Tensor, held_out: torch.Tensor) -> RoutingStats:
        """The statistics of training ``features`` [n, d] and selection ``held_out`` [m, d]."""
        x = features.double()
        mean = x.mean(dim=0)
        centred = x - mean
        return cls(len(x), mean, centred.T @ centred, held_out.float().contiguous())

    def tensors(self) -> dict[str, torch.Tensor]:
        """What the routing file stores."""
        return {
            "count": torch.tensor([self.count], dtype=torch.int64),
            "mean": self.mean.contiguous(),
            "scatter": self.scatter.contiguous(),
            "held_out": self.held_out.contiguous(),
        }

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> RoutingStats:
        return cls(
            int(tensors["count"][0]),
            tensors["mean"].double(),
            tensors["scatter"].double(),
            tensors["held_out"].float(),
        )


@dataclass(frozen=True)
class Routes:
    """Where each of N inputs goes: ``choice`` [N] the index of the nearest task, ``distance``
    [N, T] the squared Mahalanobis distances (inf: a task the input cannot be, lacking its
    fields), ``confidence`` [N] the chosen task's posterior and ``in_scope`` [N]."""

    choice: torch.Tensor
    distance: torch.Tensor
    confidence: torch.Tensor
    in_scope: torch.Tensor

    @property
    def nearest(self) -> torch.Tensor:
        """[N] the squared distance to the nearest task: the out-of-scope score."""
        return self.distance.min(dim=1).values


class Router:
    """The rule over tasks ``names`` (in this order) with their statistics."""

    def __init__(self, names: Sequence[str], stats: Sequence[RoutingStats]) -> None:
        if not names:
            raise ValueError("a router needs at least one task")
        self.names = list(names)
        self.means = torch.stack([s.mean for s in stats])  # [T, d]
        self.chol = torch.linalg.cholesky(shrunk(pooled_covariance(stats)))  # [d, d]
        held = [s.held_out for s in stats if len(s.held_out)]
        self.threshold = (
            tpr_threshold(self.distances(torch.cat(held)).min(dim=1).values)
            if held
            else float("inf")
        )

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """[N, T] squared Mahalanobis distances of ``features`` [N, d] to every task's mean."""
        x = features.double()
        out = torch.empty(len(x), len(self.names), dtype=torch.float64)
        for t, mean in enumerate(self.means):
            z = torch.linalg.solve_triangular(self.chol, (x - mean).T, upper=False)  # [d, N]
            out[:, t] = (z * z).sum(dim=0)
        return out

    def route(self, features: torch.Tensor, allowed: torch.Tensor | None = None) -> Routes:
        """Each input's task (``allowed`` [N, T]: which tasks each input may go to)."""
        distance = self.distances(features)
        if allowed is not None:
            distance = distance.masked_fill(~allowed, float("inf"))
        return decide(distance, self.threshold)


def decide(distance: torch.Tensor, threshold: float) -> Routes:
    """The nearest task per row of squared distances [N, T], its softmax confidence over
    ``-distance / 2``, and whether its distance is within ``threshold``."""
    confidence = torch.softmax(-distance / 2, dim=1)
    choice = distance.argmin(dim=1)
    picked = confidence.gather(1, choice[:, None])[:, 0]
    nearest = distance.gather(1, choice[:, None])[:, 0]
    return Routes(choice, distance, picked, nearest <= threshold)


def pooled_covariance(stats: Sequence[RoutingStats]) -> torch.Tensor:
    """The tied covariance [d, d]: every task's scatter summed, over the rows less one per task
    (at least one)."""
    scatter = torch.stack([s.scatter for s in stats]).sum(dim=0)
    dof = max(1, sum(s.count for s in stats) - len(stats))
    return scatter / dof


def shrunk(cov: torch.Tensor, weight: float = SHRINKAGE) -> torch.Tensor:
    """``cov`` shrunk towards ``tr(cov)/d I`` (I when its trace is 0): always invertible."""
    d = cov.shape[0]
    scale = float(torch.trace(cov)) / d
    eye = torch.eye(d, dtype=cov.dtype)
    return (1 - weight) * cov + weight * (scale if scale > 0 else 1.0) * eye


def tpr_threshold(scores: torch.Tensor, tpr: float = IN_SCOPE_TPR) -> float:
    """The smallest score that at least ``tpr`` of in-scope ``scores`` do not exceed."""
    ordered = scores.double().sort().values
    k = max(0, min(len(ordered) - 1, int(-(-tpr * len(ordered) // 1)) - 1))
    return float(ordered[k])
