"""``routing``: how routing decides over the trained tasks' dev inputs, measured.

- the routing matrix after each task: the router over the first k tasks (a fixed function of
  their files, which never change, so it is the router the workspace had after task k) routes
  the dev inputs of each of them; row i, column j is the share of task i's inputs routed to task
  j (a last column: to none of these);
- "none of these": per task held out, the router over the others scores every dev input by its
  distance to the nearest task; the AUROC of that score with the held-out task's inputs as the
  out-of-scope ones, and the share of them the threshold answers with no task;
- the end-to-end metric of each task: its primary metric on its dev rows predicted with routing
  (a row routed elsewhere is answered by that task: a class label, tags, an answer or a text
  scores only where it is right for this task; a row routed to none is unanswered) and with
  the true task given (regression: not scored);
- throughput: the same rows predicted with their task given and with routing, side by side.

In the matrix every task is a candidate for every input (its text as its own task reads it).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from ..artifacts import ArtifactStore
from ..config import WorkspaceConfig
from ..eval.routing import Router
from ..eval.routing_measures import accuracy, auroc, share_matrix
from ..kinds import kind_of
from ..ledger.records import TaskRecord
from ..ledger.store import Ledger
from ..naming import AUTO
from ..runtime import routing
from ..runtime.context import read_task_data
from ..train.batching import subsample
from .predict import predict
from .route import trained_tasks

GIVEN = "\x00task"  # the field naming each row's true task in the task-given pass


def routing_report(
    ledger: Ledger,
    store: ArtifactStore,
    *,
    device: str = "auto",
    workspace: WorkspaceConfig | None = None,
    max_rows: int = 1000,
) -> dict[str, Any]:
    """The measurements above over at most ``max_rows`` dev rows per task (seeded)."""
    tasks = trained_tasks(ledger)
    stats, max_length = routing.load_stats(ledger, store, tasks)
    from ..runtime.context import open_context

    ctx = open_context(ledger, store, device, workspace=workspace)
    names = [t.name for t in tasks]
    dev = {t.name: _dev_rows(t, max_rows) for t in tasks}
    features = {
        t.name: routing.features_of(
            ctx, [kind_of(t).routing_text(r) for r in dev[t.name][0]], max_length
        )
        for t in tasks
    }
    steps = [_step(names[: k + 1], stats[: k + 1], features) for k in range(len(tasks))]
    return {
        "tasks": names,
        "rows": {n: len(dev[n][0]) for n in names},
        "threshold": Router(names, stats).threshold,
        "steps": steps,
        "out_of_scope": _out_of_scope(names, stats, features),
        **_predicted(ledger, store, ctx, tasks, dev),
    }


def _dev_rows(task: TaskRecord, max_rows: int) -> tuple[list, list]:
    """(texts, labels) of at most ``max_rows`` of the task's dev rows."""
    split = read_task_data(task).dev
    keep = subsample(len(split.texts), max_rows, 0)
    return [split.texts[i] for i in keep], [split.labels[i] for i in keep]


def _step(names: list[str], stats: list, features: dict) -> dict[str, Any]:
    """The routing matrix of the router over ``names``, on their dev inputs."""
    router = Router(names, stats)
    truth: list[str] = []
    routed: list[str | None] = []
    for name in names:
        routes = router.route(features[name])
        truth += [name] * len(routes.choice)
        routed += [
            names[c] if ok else None
            for c, ok in zip(routes.choice.tolist(), routes.in_scope.tolist(), strict=True)
        ]
    return {
        "after": names[-1],
        "matrix": share_matrix(truth, routed, names, names),
        "accuracy": accuracy(truth, routed),
    }


def _out_of_scope(names: list[str], stats: list, features: dict) -> dict[str, Any]:
    """Per task held out of a router over the others: AUROC and the share answered none."""
    found: dict[str, Any] = {}
    for h, held in enumerate(names):
        others = [n for n in names if n != held]
        if not others:
            found[held] = {"auroc": None, "none_share": None, "in_scope_kept": None}
            continue
        router = Router(others, [s for i, s in enumerate(stats) if i != h])
        inside = [float(v) for n in others for v in router.route(features[n]).nearest]
        outside = router.route(features[held])
        kept = [v <= router.threshold for v in inside]
        found[held] = {
            "auroc": auroc(inside, [float(v) for v in outside.nearest]),
            "none_share": float((~outside.in_scope).double().mean())
            if len(outside.choice)
            else None,
            "in_scope_kept": sum(kept) / len(kept) if kept else None,
        }
    return found


def _predicted(ledger, store, ctx, tasks: list[TaskRecord], dev: dict) -> dict[str, Any]:
    """End-to-end metrics and throughput, from the same rows predicted both ways (each way
    timed ``TIMINGS`` times, taking turns to go first after a warm-up of each; the median)."""
    rows = []
    for task in tasks:
        for texts in dev[task.name][0]:
            fields = dict(zip(task.text_fields, _fields(task, texts), strict=True))
            rows.append({**fields, GIVEN: task.name})
    bare = [{k: v for k, v in r.items() if k != GIVEN} for r in rows]
    ways = {
        "given": lambda: predict(ledger, store, None, rows, task_field=GIVEN, context=ctx),
        "routed": lambda: predict(ledger, store, AUTO, bare, context=ctx),
    }
    results = {name: way() for name, way in ways.items()}  # the warm-up
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for turn in range(TIMINGS):
        for name in sorted(ways, reverse=turn % 2 == 1):
            began = time.perf_counter()
            ways[name]()
            seconds[name].append(time.perf_counter() - began)
    given_s, routed_s = (statistics.median(seconds[n]) for n in ("given", "routed"))
    return {
        "end_to_end": _end_to_end(tasks, dev, results["given"], results["routed"]),
        "throughput": {
            "rows": len(rows),
            "task_given_rows_per_s": len(rows) / given_s if given_s else None,
            "routed_rows_per_s": len(rows) / routed_s if routed_s else None,
            "ratio": given_s / routed_s if routed_s else None,
        },
    }


TIMINGS = 3


def _fields(task: TaskRecord, texts: tuple) -> tuple:
    """A dev row's text fields as ``predict`` takes them (a tagging row's words as one text)."""
    if len(texts) == len(task.text_fields):
        return tuple(" ".join(t) if isinstance(t, (list, tuple)) else t for t in texts)
    return kind_of(task).routing_text(texts)


def _end_to_end(tasks, dev, given: list, routed: list) -> dict[str, Any]:
    """Per task: its primary metric with the task given and with routing (each row answered by
    the task routing chose, or by none), where its kind scores answers."""
    found: dict[str, Any] = {}
    start = 0
    for task in tasks:
        values = dev[task.name][1]
        mine = slice(start, start + len(values))
        start += len(values)
        kind = kind_of(task)
        scores = [
            kind.score_answers(task.metric, values, [r.get("label") for r in rows], task.labels)
            if values
            else None
            for rows in (given[mine], routed[mine])
        ]
        own = [r.get("task") == task.name for r in routed[mine]]
        found[task.name] = {
            "metric": task.metric,
            "task_given": scores[0],
            "routed": scores[1],
            "routed_to_own_task": sum(own) / len(own) if own else None,
        }
    return found
