"""SQuAD v2's no-answer threshold: chosen after training on the selection split (the held-out
rows that pick the best epoch, never the dev split) by the official script's best-threshold
rule, recorded in the task's artifact config, and used wherever a prediction becomes an answer:
the dev metrics, verification, audit, predict, export and import. A run recorded without one
answers by threshold 0."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from contlearn import kinds
from contlearn.api import Workspace
from contlearn.config import recorded_train_config
from contlearn.eval.squad import best_threshold, raw_scores, squad_v2
from contlearn.kinds.extractive_qa import ExtractiveQA
from tests.conftest import copy_workspace, settled, write_keyword_task
from tests.test_extractive_qa import write_qa_task
from tests.test_qa_interop import dev_rows


@pytest.fixture(scope="module")
def trained_v2(tmp_path_factory: pytest.TempPathFactory, word_backbone: Path) -> Path:
    """A SQuAD v2 task trained with the holdout rule, then a classification task after it."""
    from tests.conftest import fast_workspace

    root = tmp_path_factory.mktemp("qa-threshold")
    ws = fast_workspace(root / "ws", word_backbone)
    ws.add_task("squad", write_qa_task(root / "squad", n_train=90, n_dev=30, seed=3, v2=True))
    ws.add_task("words", write_keyword_task(root / "words", seed=4))
    ws.train_next(all_tasks=True, epochs=2, lr=0.02)
    return settled(ws)


@pytest.fixture()
def ws(trained_v2: Path, tmp_path: Path) -> Workspace:
    return copy_workspace(trained_v2, tmp_path / "ws")


def best_spans_and_diffs(logits: torch.Tensor, targets: list) -> tuple[dict, dict]:
    """Per question: its best span's text (the threshold not applied) and its null-score
    difference (inf: no valid span), from the canonical logits of its windows."""
    said = ExtractiveQA().predictions(logits)
    spans = {str(i): t[0][p[0] : p[1]] for i, (t, p) in enumerate(zip(targets, said, strict=True))}
    diffs = {str(i): math.inf if p[3] is None else p[3] for i, p in enumerate(said)}
    return spans, diffs


def golds_of(targets: list) -> dict[str, list[str]]:
    return {str(i): [a[0] for a in t[1]] for i, t in enumerate(targets)}


def recorded_meta(ws: Workspace, name: str = "squad") -> dict:
    return json.loads(ws.artifact_files(name)["config"].read_text())


def selection_logits(ws: Workspace, name: str, meta: dict) -> tuple[torch.Tensor, list]:
    """The trained task's canonical logits on its held-out selection rows, and their targets."""
    from contlearn.eval.recipe import predict_logits
    from contlearn.runtime.context import open_context, read_task_data, training_rows

    task = ws.ledger.task(name)
    config = recorded_train_config(meta["train"])
    _, held = training_rows(read_task_data(task).train, config)
    ctx = open_context(ws.ledger, ws.store, "cpu")
    ctx.load_task(task)
    ctx.model.activate(name)
    split = ctx.encode(task, held, config.max_length)
    return predict_logits(ctx.model, split.encoded), split.targets


def dev_targets(ws: Workspace, name: str) -> list:
    from contlearn.runtime.context import read_task_data, targets

    task = ws.ledger.task(name)
    return targets(task, read_task_data(task).dev.labels)


def test_the_threshold_is_the_best_one_on_the_selection_split(ws: Workspace) -> None:
    meta = recorded_meta(ws)
    threshold = meta["calibration"]["null_threshold"]
    logits, targets = selection_logits(ws, "squad", meta)
    spans, diffs = best_spans_and_diffs(logits, targets)
    golds = golds_of(targets)
    assert len(golds) == 9  # the holdout rule's 10% of 90 questions, never the dev split's
    _, f1 = raw_scores(spans, golds)
    best, expected = best_threshold(spans, f1, diffs, golds)
    assert threshold == expected
    assert threshold != 0.0  # the rule found a better threshold than answering every question
    chosen = squad_v2(spans, golds, diffs, threshold)["f1"]
    assert chosen == pytest.approx(best) and chosen >= squad_v2(spans, golds, diffs, 0.0)["f1"]


def test_the_dev_metrics_verification_audit_and_predict_use_it(ws: Workspace) -> None:
    threshold = recorded_meta(ws)["calibration"]["null_threshold"]
    logits = load_file(ws.artifact_files("squad")["logits"])["logits"]
    targets = dev_targets(ws, "squad")
    spans, diffs = best_spans_and_diffs(logits, targets)
    golds = golds_of(targets)
    by_hand = squad_v2(spans, golds, diffs, threshold)  # the official rule, by hand
    (run,) = [r for r in ws.ledger.runs() if r.result and r.result.get("task") == "squad"]
    assert run.result["metrics"]["qa_f1"] == by_hand["f1"]
    assert run.result["metrics"]["qa_exact_match"] == by_hand["exact"]
    words = next(r for r in ws.ledger.runs() if r.result and r.result.get("task") == "words")
    assert [(v["task"], v["outcome"]) for v in words.result["verifications"]] == [
        ("squad", "identical")
    ]
    assert ws.audit()["verdict"] == "clean"
    rows = [
        {"question": q, "context": c}
        for q, c in dev_rows(Path(ws.ledger.task("squad").data_source))
    ]
    said = [row["label"] for row in ws.predict("squad", rows)]
    wanted = ["" if diffs[q] > threshold else spans[q] for q in sorted(spans, key=int)]
    assert said == wanted
    at_zero = ["" if diffs[q] > 0 else spans[q] for q in sorted(spans, key=int)]
    assert said != at_zero  # on these questions the recorded threshold answers otherwise


def test_a_run_recorded_without_a_threshold_answers_by_zero(
    word_workspace: Workspace, tmp_path: Path
) -> None:
    """With the dev rule there is no selection split: nothing is chosen, nothing recorded, and
    the task answers by threshold 0 everywhere, as runs recorded before thresholds did."""
    ws = word_workspace
    ws.add_task("squad", write_qa_task(tmp_path / "squad", n_train=30, n_dev=15, v2=True))
    (result,) = ws.train_next(epochs=1, lr=0.02, selection="dev")
    assert "calibration" not in recorded_meta(ws)
    logits = load_file(ws.artifact_files("squad")["logits"])["logits"]
    targets = dev_targets(ws, "squad")
    spans, diffs = best_spans_and_diffs(logits, targets)
    assert result["metrics"]["qa_f1"] == squad_v2(spans, golds_of(targets), diffs, 0.0)["f1"]
    assert ws.audit()["verdict"] == "clean"
    rows = [{"question": q, "context": c} for q, c in dev_rows(tmp_path / "squad")]
    said = [row["label"] for row in ws.predict("squad", rows)]
    assert said == ["" if diffs[q] > 0 else spans[q] for q in sorted(spans, key=int)]


def test_export_carries_the_threshold_and_import_answers_by_it(
    ws: Workspace, tmp_path: Path
) -> None:
    recorded = recorded_meta(ws)["calibration"]
    data = Path(ws.ledger.task("squad").data_source)
    ws.export("squad", "adapterhub", tmp_path / "out", include_norms=True)
    ws.import_adapter("again", tmp_path / "out", data)
    assert recorded_meta(ws, "again")["calibration"] == recorded
    runs = {r.result["task"]: r.result for r in ws.ledger.runs() if r.result and "task" in r.result}
    assert runs["again"]["metrics"] == runs["squad"]["metrics"]
    assert ws.audit()["verdict"] == "clean"


def test_only_a_v2_task_chooses_a_threshold() -> None:
    logits = torch.zeros(1, 3, 5)
    logits[0, :, 2:] = torch.tensor([[-1.0, -1.0, 0.0], [0.0, 1.0, 0.0], [2.0, 3.0, 0.0]])
    target = [("a b c", (("a", 0),), "q1")]
    qa = kinds.get("extractive-qa")
    assert qa.calibrate(logits, target, ("answer",), "qa_f1") is None
    assert qa.calibrated(None) is qa
    assert kinds.get("classification").calibrate(logits, target, ("a", "b"), "accuracy") is None
    chosen = qa.calibrate(logits, target, ("answer", "no answer"), "qa_f1")
    assert chosen == {"null_threshold": 0.0}  # every logit 0: the null score ties the span
    ((*_, margin),) = qa.calibrated({"null_threshold": -0.5}).predictions(logits)
    ((*_, diff),) = qa.predictions(logits)
    assert margin == diff + 0.5


def test_compare_scores_the_adapters_dev_predictions_by_their_thresholds(ws: Workspace) -> None:
    """The intervals of ``compare`` resample the adapters' recorded dev predictions: decided by
    each task's recorded threshold, they score what its post-train evaluation recorded."""
    from contlearn.ops.baselines.base import Recorded
    from contlearn.ops.baselines.registry import ADAPTERS

    tasks = ws.ledger.tasks()
    runs = [ws.ledger.trained_run(t.id) for t in tasks]
    recorded = Recorded(ws.ledger, 0, tasks, runs, ws.store, intervals=True)
    final, _ = ADAPTERS.collect(ADAPTERS, recorded)["predictions"]
    for task, run, predictions in zip(tasks, runs, final, strict=True):
        metrics = run.result["metrics"]
        kind = kinds.kind_of(task)
        scored = kind.score([task.metric], dev_targets(ws, task.name), predictions, task.labels)
        assert scored[task.metric] == metrics[task.metric]


def test_an_import_whose_provenance_holds_a_bad_threshold_is_refused_in_one_line(
    ws: Workspace, tmp_path: Path
) -> None:
    from contlearn.errors import InteropError
    from contlearn.interop.folder import PROVENANCE

    out = tmp_path / "out"
    ws.export("squad", "adapterhub", out, include_norms=True)
    provenance = json.loads((out / PROVENANCE).read_text())
    provenance["calibration"] = {"null_threshold": "high"}
    (out / PROVENANCE).write_text(json.dumps(provenance))
    data = Path(ws.ledger.task("squad").data_source)
    with pytest.raises(InteropError, match="'calibration' is not an object of numbers") as caught:
        ws.import_adapter("again", out, data)
    assert "\n" not in str(caught.value)
    assert [t.name for t in ws.ledger.tasks()] == ["squad", "words"]
