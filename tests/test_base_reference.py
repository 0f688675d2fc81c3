"""The base model kept, as a checked property: a workspace on a generative backbone records the
base model's measurement on the base reference set when its first generation task trains;
``train-next`` and ``audit`` measure it again with every task switched off and compare bit for
bit; a changed reference fails naming it; an encoder workspace records none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contlearn.api import Workspace
from tests.conftest import fast_workspace, invoke, write_keyword_task
from tests.test_generation import save_chat_llama, write_generation_task


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, list]:
    """words (classification: nothing recorded yet), chat (generation: the base reference
    recorded, then checked), then words2 (classification: the base model checked again)."""
    tmp = tmp_path_factory.mktemp("base")
    llama = save_chat_llama(tmp / "tiny-llama")
    ws = fast_workspace(tmp / "ws", llama)
    (ws.root / "base_reference.json").unlink()  # the built-in set, as a workspace has it
    ws.add_task("words", write_keyword_task(tmp / "words", n_train=8, n_dev=4))
    ws.add_task("chat", write_generation_task(tmp / "chat", n_train=8, n_dev=4), max_new_tokens=3)
    ws.add_task("words2", write_keyword_task(tmp / "words2", n_train=8, n_dev=4))
    results = [ws.train_next(epochs=1)[0] for _ in range(3)]
    return ws, results


def reference_runs(ws: Workspace) -> list:
    return [r for r in ws.ledger.runs(purpose="base-reference") if r.status == "succeeded"]


def test_the_first_generation_task_records_the_base_reference(kept) -> None:
    from contlearn.data.base_set import BUILT_IN, read

    ws, (words, chat, words2) = kept
    assert words["base"] is None  # recorded when a generation task first trains, not before
    (run,) = reference_runs(ws)
    built_in = read(BUILT_IN)
    assert run.config["set"] == built_in.as_dict()
    assert len(run.result["answers"]) == len(built_in.instructions) == 6
    assert all(1 <= len(a["ids"]) <= 24 for a in run.result["answers"])
    assert run.result["perplexity"] > 1.0 and run.result["tokens"] > 100
    for result in (chat, words2):  # the run that recorded it checks it too
        assert result["base"]["outcome"] == "identical" and result["base"]["identical"]
        assert result["base"]["digest"] == run.result["digest"]
        assert result["base"]["now"]["perplexity"] == run.result["perplexity"]


def test_the_measure_is_the_base_model_with_every_task_off(kept) -> None:
    """Measured on a fresh plain model from the backbone's files, the base reference is the
    same bit for bit: the tasks loaded beside it change nothing while switched off."""
    import torch

    from contlearn.data.base_set import from_dict
    from contlearn.eval.base_model import measure
    from contlearn.model.adapted import AdaptedModel
    from contlearn.model.backbone import load

    ws, _ = kept
    (run,) = reference_runs(ws)
    loaded = load(ws.ledger.backbone().identity)
    plain = AdaptedModel(loaded.model, output_embeddings=loaded.output_embeddings)
    base_set = from_dict(run.config["set"])
    threads = run.result["recipe"]["threads"]  # the recorded recipe: bit for bit
    now = measure(plain, loaded.tokenizer, base_set, device=torch.device("cpu"), threads=threads)
    assert now.digest == run.result["digest"] and now.perplexity == run.result["perplexity"]
    assert [a["text"] for a in now.answers] == [a["text"] for a in run.result["answers"]]


def test_audit_checks_the_base_model_and_prints_it(kept) -> None:
    ws, _ = kept
    shown = invoke(ws, "audit")
    assert shown.exit_code == 0, shown.output
    assert "(base model): perplexity" in shown.output and "100% of the greedy" in shown.output
    as_json = json.loads(invoke(ws, "audit", "--json").output)
    assert as_json["verdict"] == "clean" and as_json["base"]["outcome"] == "identical"
    assert as_json["base"]["task"] == "(base model)" and as_json["base"]["recipe"] == "same"
    assert ws.audit(task="chat")["base"] is None  # one task audited: that task alone
    (row,) = [r for r in ws.runs() if r["purpose"] == "base-reference"]
    assert row["metric"] == reference_runs(ws)[0].result["perplexity"] and row["task"] is None


def test_a_changed_base_reference_fails_the_audit_naming_it(kept, tmp_path: Path) -> None:
    """The recorded greedy answers changed (as a changed output projection would change
    them): the audit's verdict is drift and its finding names the base reference."""
    from sqlalchemy import update

    from contlearn.errors import VerificationFailed
    from contlearn.ledger.schema import RunRow

    ws, _ = kept
    (run,) = reference_runs(ws)
    changed = dict(run.result)
    changed["answers"] = [{"ids": [0], "text": "x"}, *run.result["answers"][1:]]
    changed["digest"] = "0" * 64
    with ws.ledger.session() as s:
        s.execute(update(RunRow).where(RunRow.id == run.id).values(result=changed))
    try:
        audit = ws.audit()
        assert audit["verdict"] == "drift" and audit["base"]["outcome"] == "changed"
        assert audit["base"]["answers_identical"] == pytest.approx(5 / 6)
        (finding,) = audit["base"]["findings"]
        assert finding.startswith(f"the base reference (run {run.id}) no longer reproduces")
        assert {t["outcome"] for t in audit["tasks"]} == {"identical"}
        shown = invoke(ws, "audit")
        assert "! the base reference" in shown.output
        ws.add_task("more", write_keyword_task(tmp_path / "more", n_train=8, n_dev=4))
        with pytest.raises(VerificationFailed, match=rf"the base reference \(run {run.id}\)"):
            ws.train_next(epochs=1)
        assert ws.ledger.task("more").status == "pending"  # not marked trained
    finally:
        with ws.ledger.session() as s:
            s.execute(update(RunRow).where(RunRow.id == run.id).values(result=run.result))


def test_an_encoder_workspace_records_no_base_reference(word_workspace, tmp_path: Path) -> None:
    word_workspace.add_task("words", write_keyword_task(tmp_path / "words", n_train=8, n_dev=4))
    (result,) = word_workspace.train_next(epochs=1)
    assert result["base"] is None and reference_runs(word_workspace) == []
    assert word_workspace.audit()["base"] is None


def test_a_workspace_gives_its_own_base_reference_set(tmp_path: Path) -> None:
    from contlearn.data.base_set import FILE, for_workspace
    from contlearn.errors import BadData

    own = {"texts": ["one two three"], "instructions": ["say one"], "max_new_tokens": 4}
    (tmp_path / FILE).write_text(json.dumps(own))
    assert for_workspace(tmp_path).as_dict() == own
    (tmp_path / FILE).write_text(json.dumps({"texts": [], "instructions": ["x"]}))
    with pytest.raises(BadData, match="texts must be a non-empty list of texts") as info:
        for_workspace(tmp_path)
    assert "\n" not in str(info.value) and str(tmp_path / FILE) in str(info.value)


def test_a_changed_output_projection_fails_the_audit_naming_the_base_reference(
    tmp_path: Path,
) -> None:
    """An untied decoder's ``lm_head.weight`` is outside the backbone fingerprint: changed on
    disk, only the base reference (and the generation task that reads it) notice. The set is
    the workspace's own (``fast_workspace`` writes a small one)."""
    from safetensors.torch import load_file, save_file

    from tests.conftest import save_causal_backbone

    folder = save_causal_backbone(tmp_path / "untied", "llama")
    ws = fast_workspace(tmp_path / "ws", folder)
    ws.add_task(
        "chat", write_generation_task(tmp_path / "chat", n_train=4, n_dev=2), max_new_tokens=2
    )
    (result,) = ws.train_next(epochs=1)
    assert result["base"]["outcome"] == "identical"
    (run,) = reference_runs(ws)
    assert run.config["set"]["instructions"] == ["the film", "good or bad"]
    weights = load_file(folder / "model.safetensors")
    weights["lm_head.weight"] = weights["lm_head.weight"].flip(0).contiguous()
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    audit = Workspace.open(ws.root).audit()
    assert audit["verdict"] == "drift" and audit["base"]["outcome"] == "changed"
    assert audit["base"]["findings"][0].startswith("the base reference (run ")
    shown = invoke(ws, "audit", "--json")
    assert shown.exit_code == 1 and json.loads(shown.output)["base"]["ok"] is False


def base_recorded_elsewhere(ws: Workspace, run, *, flip: bool = False) -> None:
    """Rewrite the base reference ``run`` as another host would have recorded it: its recipe
    names a host with 96 cores, its perplexity a relative 1e-6 away (so another digest), the
    answers the same (``flip``: the first one changed)."""
    from sqlalchemy import update

    from contlearn.ledger.schema import RunRow

    moved = dict(run.result)
    moved["recipe"] = {**moved["recipe"], "host": {**moved["recipe"]["host"], "cores": 96}}
    moved["perplexity"] = run.result["perplexity"] * (1 + 1e-6)
    moved["digest"] = "0" * 64
    if flip:
        moved["answers"] = [{"ids": [0], "text": "x"}, *run.result["answers"][1:]]
    with ws.ledger.session() as s:
        s.execute(update(RunRow).where(RunRow.id == run.id).values(result=moved))


def test_adopting_the_host_makes_the_base_reference_bit_for_bit_again(tmp_path: Path) -> None:
    """A base reference recorded on another host checks as "equivalent" here; a changed answer
    is never adopted; ``audit --adopt-host`` records this host's measurement as its reference
    (a base-reference run naming the one it was adopted for), and later checks here, the
    audit's and train-next's, compare with it bit for bit."""
    from contlearn.runtime.base_reference import reference_run

    ws = fast_workspace(tmp_path / "ws", save_chat_llama(tmp_path / "llama"))
    ws.add_task("chat", write_generation_task(tmp_path / "chat", n_train=4, n_dev=2))
    ws.train_next(epochs=1)
    (run,) = reference_runs(ws)
    base_recorded_elsewhere(ws, run, flip=True)
    flipped = invoke(ws, "audit", "--adopt-host", "--json")
    assert flipped.exit_code == 1 and json.loads(flipped.output)["base"]["outcome"] == "changed"
    assert json.loads(flipped.output)["base"]["adopted"] is None
    assert [r.id for r in reference_runs(ws)] == [run.id]  # nothing adopted

    base_recorded_elsewhere(ws, run)
    audit = ws.audit()
    assert audit["verdict"] == "clean" and audit["base"]["adopted"] is None
    assert (audit["base"]["outcome"], audit["base"]["recipe"]) == ("equivalent", "different")
    shown = invoke(ws, "audit", "--adopt-host")
    assert shown.exit_code == 0, shown.output
    assert "adopted this host's outputs as the reference of (base model)" in shown.output
    (adopting,) = [r for r in ws.ledger.runs(purpose="audit") if r.config.get("adopt_host")][1:]
    (original, host) = reference_runs(ws)
    assert original.id == run.id and reference_run(ws.ledger).id == run.id  # still in force
    assert host.config["host_of"] == run.id and host.config["audit_run"] == adopting.id
    assert host.config["set"] == run.config["set"]
    assert adopting.result["base"]["adopted"] == host.id
    assert host.result["recipe"]["host"]["cores"] != 96  # this host's measurement

    again = ws.audit()
    assert again["verdict"] == "clean" and again["base"]["adopted"] is None
    assert (again["base"]["outcome"], again["base"]["recipe"]) == ("identical", "same")
    assert again["base"]["reference"] == f"host (audit run {adopting.id})"
    assert again["base"]["digest"] == host.result["digest"] != "0" * 64
    ws.add_task("words", write_keyword_task(tmp_path / "words", n_train=8, n_dev=4))
    (trained,) = ws.train_next(epochs=1)
    assert trained["base"]["outcome"] == "identical" and trained["base"]["recipe"] == "same"
    assert len(reference_runs(ws)) == 2  # no further reference recorded
