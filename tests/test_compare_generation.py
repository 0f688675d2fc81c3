"""``compare`` on a sequence of generation tasks and a classification task between them (a tiny
random Llama with a chat template): every
baseline and sequential LoRA merged, scored by each task's canonical greedy evaluation (its
recorded ``max_new_tokens``) and its primary metric, with bootstrap intervals from the
per-example scores, and the report rendered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contlearn.api import Workspace
from contlearn.eval.generation import per_example
from contlearn.kinds import get
from tests.conftest import fast_workspace, invoke, write_keyword_task
from tests.test_generation import save_chat_llama, write_generation_task

METHODS = ["adapter", "sequential", "ewc", "replay", "joint", "separate", "lora-merged"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict]:
    """Two generation tasks with a classification task between them, learned with LoRA
    adapters (rank 2, own LayerNorm copies), then compared by every method (one epoch, a few
    examples each)."""
    tmp = tmp_path_factory.mktemp("gencmp")
    ws = fast_workspace(tmp / "ws", save_chat_llama(tmp / "llama"))
    text = (ws.root / "tasks.toml").read_text()
    for key, value in {
        "replay_buffer": 4,
        "fisher_examples": 2,
        "bootstrap_resamples": 100,
    }.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    lora = '[adapter]\nmethod = "lora"\nrank = 2\nalpha = 4.0\nnorms = "task"\n\n[train]'
    text = re.sub(r"(?s)\[adapter\].*?\[train\]", lambda _: lora, text)
    (ws.root / "tasks.toml").write_text(text)
    ws = Workspace.open(ws.root)
    ws.add_task("chat", write_generation_task(tmp / "chat", n_train=8, n_dev=4), max_new_tokens=3)
    ws.add_task("words", write_keyword_task(tmp / "words", n_train=8, n_dev=4))
    ws.add_task(
        "chat2", write_generation_task(tmp / "chat2", n_train=8, n_dev=4, seed=3), max_new_tokens=2
    )
    ws.train_next(all_tasks=True, epochs=1, batch_size=8)
    return ws, ws.compare(epochs=1, batch_size=8)


def test_every_method_compares_generation_tasks(compared) -> None:
    ws, results = compared
    methods = results["methods"]
    assert list(methods) == METHODS
    assert [t["name"] for t in results["tasks"]] == ["chat", "words", "chat2"]
    assert results["tasks"][0]["metric"] == "accuracy"  # a closed set of answers
    for name, method in methods.items():
        matrix = method["matrix"]
        assert len(matrix) == 3 and all(len(row) == 3 for row in matrix), name
        for i, row in enumerate(matrix):
            assert all(cell is None for cell in row[i + 1 :]), name
            assert all(0 <= cell <= 1 for cell in row[: i + 1]), name
        acc = method["intervals"]["acc"]
        assert acc["ci"][0] <= acc["value"] <= acc["ci"][1], name
        assert acc["value"] == pytest.approx(method["summary"]["acc"]), name
    adapters = methods["adapter"]
    assert adapters["summary"]["bwt"] == 0.0 and adapters["intervals"]["bwt"]["ci"] == [0.0, 0.0]
    runs = [r for r in ws.ledger.runs(purpose="compare") if r.method == "lora-merged"]
    assert len(runs) == 3 and all(r.status == "succeeded" for r in runs)
    # the workspace's LoRA settings, the norms shared (a norm copy is no update to merge)
    assert {(r.config["adapter"]["rank"], r.config["adapter"]["alpha"]) for r in runs} == {(2, 4.0)}
    assert all(r.config["adapter"]["norms"] == "shared" for r in runs)
    adapter_lr = ws.ledger.trained_run(ws.ledger.task("chat").id).config["train"]["lr"]
    assert runs[0].config["train"]["lr"] == adapter_lr  # a LoRA's learning rate
    assert ws.audit()["verdict"] == "clean"  # no baseline touched the adapters' backbone


def test_the_recorded_scores_are_the_generated_texts_scored(compared) -> None:
    """A baseline's recorded predictions are texts, and its matrix cell is their metric (the
    canonical evaluation decoding at most the task's recorded max_new_tokens)."""
    ws, results = compared
    (last,) = [
        r
        for r in ws.ledger.runs(purpose="compare")
        if r.method == "sequential" and r.task_id == ws.ledger.task("chat2").id
    ]
    chat = ws.ledger.task("chat")
    texts = last.result["predictions"][str(chat.id)]
    gold = [str(v) for v in results_targets(ws, "chat")]
    assert all(isinstance(t, str) for t in texts) and len(texts) == len(gold) == 4
    assert all(len(t.split()) <= 3 for t in texts)  # at most 3 tokens generated
    scores = per_example("accuracy", gold, texts, chat.labels)
    assert results["methods"]["sequential"]["matrix"][2][0] == pytest.approx(sum(scores) / 4)


def results_targets(ws: Workspace, name: str) -> list:
    from contlearn.ops.compare import dev_targets

    return dev_targets(ws.ledger.task(name))


def test_the_generation_metric_resamples_as_its_per_example_scores() -> None:
    additive = get("generation").additive("rouge_l", None)
    parts = additive.parts(["yes good", "no bad"], ["yes good", "no"])
    assert parts[0] == (1.0, 1.0) and 0 < parts[1][0] < 1
    import numpy as np

    sums = np.array([[parts[0][0] * 2, 2.0], [parts[0][0] + parts[1][0], 2.0]])
    assert list(additive.combine(sums)) == [1.0, pytest.approx((1 + parts[1][0]) / 2)]


def test_the_report_renders_generation_metrics_and_the_merged_row(compared, tmp_path: Path) -> None:
    ws, results = compared
    files = ws.write_report(results, tmp_path / "report")
    text = files["md"].read_text()
    assert "Sequential LoRA merged into the weights" in text and "95% CI" in text
    assert files["html"].is_file() and files["heatmaps"].read_bytes().startswith(b"\x89PNG")


def test_the_base_row_shows_what_each_method_does_to_the_base_model(compared, tmp_path) -> None:
    """Adapters leave the base model identical after every step (measured by train-next's
    check, not assumed); full fine-tuning changes its perplexity; the report shows the row."""
    ws, results = compared
    (reference,) = [r for r in ws.ledger.runs(purpose="base-reference")]
    assert results["base_reference"]["perplexity"] == reference.result["perplexity"]
    methods = results["methods"]
    adapters = methods["adapter"]["base"]
    assert len(adapters) == 3 and all(step["identical"] for step in adapters)
    assert {step["perplexity"] for step in adapters} == {reference.result["perplexity"]}
    assert {step["answers_identical"] for step in adapters} == {1.0}
    for name in ("sequential", "ewc", "replay", "lora-merged", "separate"):
        steps = methods[name]["base"]
        assert len(steps) == 3 and not any(step["identical"] for step in steps), name
    sequential = [step["perplexity"] for step in methods["sequential"]["base"]]
    assert all(p != reference.result["perplexity"] for p in sequential)
    joint = methods["joint"]["base"]
    assert len(joint) == 3 and joint[0] == joint[2] and not joint[0]["identical"]
    files = ws.write_report(results, tmp_path / "report")
    text = files["md"].read_text()
    assert text.count("Base model (every task switched off):") == len(METHODS)
    rows = [line.split(",") for line in files["csv_sequential"].read_text().splitlines()]
    assert rows[0][-2:] == ["base_perplexity", "base_answers_identical"]
    assert [float(row[-2]) for row in rows[1:4]] == sequential
    assert rows[4][0] == "before" and float(rows[4][-2]) == reference.result["perplexity"]
    assert "| answers identical | 100% | 100% | 100% | 100% |" in text
    shown = invoke(ws, "compare", "--epochs", "1", "--batch-size", "8")  # the finished one
    assert shown.exit_code == 0, shown.output
    assert "base model (no task): perplexity" in shown.output
    (adapter_line,) = [line for line in shown.output.splitlines() if line.startswith("adapter ")]
    assert adapter_line.rstrip().endswith("100%")


@pytest.mark.parametrize("tied", [True, False])
def test_full_fine_tuning_trains_a_tied_lm_head_and_leaves_an_untied_one(tied: bool) -> None:
    """What the fine-tuning baselines train (the backbone's weights and the task's own): a
    tied output projection is the input embedding matrix among them; an untied one is the
    fixed buffer the generation kind reads."""
    import torch
    from transformers import AutoConfig, AutoModel

    from contlearn.model.adapted import AdaptedModel
    from contlearn.model.output import OutputWeights
    from tests.family_configs import CONFIGS, VOCAB

    _, values = CONFIGS["llama"]
    backbone = AutoModel.from_config(
        AutoConfig.for_model("llama", **values, tie_word_embeddings=tied)
    )
    read = None if tied else (lambda: OutputWeights(torch.randn(VOCAB, 32)))
    model = AdaptedModel(backbone, output_embeddings=read)
    model.add_task("g", num_outputs=0, adapter=None, head="lm")
    trained = [*model.backbone.parameters(), *model.trainable_parameters("g")]
    weight = model.output_projection().weight
    assert any(p is weight for p in trained) == tied
    assert model.trainable_parameters("g") == []  # nothing of the task's own
