"""How well routing decides, as pure functions over decisions and scores: the routing matrix,
"none of these" AUROC, and the predictions a task's metric scores when routing chose the task
(the end-to-end metric). ``None`` where there is nothing to measure, never a fake 0."""

from __future__ import annotations

from collections.abc import Sequence

NONE = None  # the column of inputs routed to none of the tasks


def share_matrix(
    truth: Sequence[str], routed: Sequence[str | None], rows: Sequence[str], columns: Sequence[str]
) -> list[list[float | None]]:
    """Row i, column j: the share of the inputs of task ``rows[i]`` routed to ``columns[j]``;
    a last column for those routed to none. A task without inputs has a row of None."""
    out: list[list[float | None]] = []
    for name in rows:
        mine = [r for t, r in zip(truth, routed, strict=True) if t == name]
        if not mine:
            out.append([None] * (len(columns) + 1))
            continue
        out.append([sum(r == c for r in mine) / len(mine) for c in [*columns, NONE]])
    return out


def accuracy(truth: Sequence[str], routed: Sequence[str | None]) -> float | None:
    """The share of inputs routed to their own task (None: no inputs)."""
    if not truth:
        return None
    return sum(t == r for t, r in zip(truth, routed, strict=True)) / len(truth)


def auroc(in_scope: Sequence[float], out_of_scope: Sequence[float]) -> float | None:
    """The probability that an out-of-scope input scores above an in-scope one (ties count
    half): the area under the ROC curve of the score as an out-of-scope detector (None when
    either side is empty)."""
    if not in_scope or not out_of_scope:
        return None
    ranked = sorted([(s, 0) for s in in_scope] + [(s, 1) for s in out_of_scope])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + 1 + j) / 2  # the mean 1-based rank of the tied block
        rank_sum += mid * sum(label for _, label in ranked[i:j])
        i = j
    n_out, n_in = len(out_of_scope), len(in_scope)
    return (rank_sum - n_out * (n_out + 1) / 2) / (n_out * n_in)


def routed_classes(
    targets: Sequence[int], labels: Sequence[str], answered: Sequence[str | None]
) -> list[int]:
    """The class indices a task's metric scores when each input was answered with the label
    ``answered`` (by whichever task routing chose; None: by none): the label's index among the
    task's ``labels`` when it is one of them (another task with the same labels can still be
    right), else a class other than the target (the answer is wrong)."""
    index = {name: i for i, name in enumerate(labels)}
    wrong = len(labels) > 1
    return [
        index[a] if a in index else ((t + 1) % len(labels) if wrong else t)
        for t, a in zip(targets, answered, strict=True)
    ]
