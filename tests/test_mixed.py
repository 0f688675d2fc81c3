"""Mixed-task batches: one forward pass whose rows belong to different tasks gives each row what
its own task's forward gives it (logits within 1e-5), for every method that can mix, on post-LN,
pre-LN and fused-projection families; ``topk`` says it cannot mix."""

from __future__ import annotations

import pytest
import torch

from contlearn.model.adapted import AdaptedModel
from contlearn.model.methods.registry import method_config
from tests.family_configs import tiny_model

CONFIGS = [
    ("houlsby", {"bottleneck": 4}),
    ("houlsby", {"bottleneck": 3, "norms": "shared", "leave_out": [0]}),
    ("pfeiffer", {"bottleneck": 4}),
    ("pfeiffer", {"bottleneck": 4, "norms": "task"}),
    ("parallel", {"bottleneck": 4}),
    ("parallel", {"bottleneck": 2, "norms": "task"}),
    ("lora", {"rank": 2}),
    ("lora", {"rank": 3, "targets": ["query", "key", "value", "ffn_output"], "norms": "task"}),
    ("ia3", {}),
    ("ia3", {"targets": ["query", "value", "ffn_intermediate", "ffn_output"], "norms": "task"}),
    ("head", {}),
]


def _model_with_tasks(family: str) -> AdaptedModel:
    model = AdaptedModel(tiny_model(family))
    torch.manual_seed(1)
    for i, (method, values) in enumerate(CONFIGS):
        task = model.add_task(
            f"t{i}", num_outputs=2 + i % 3, adapter=method_config(method, values), dropout=0.1
        )
        with torch.no_grad():  # away from the identity, so that every task computes its own
            for p in task.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _batch(rows: int, width: int, vocab: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(5, vocab, (rows, width), generator=g)
    mask = torch.ones_like(ids)
    for r in range(rows):  # ragged rows, right-padded
        mask[r, width - r % 4 :] = 0 if r % 4 else 1
    ids[mask == 0] = 0
    return ids, mask


@pytest.mark.parametrize("family", ["bert", "llama", "gpt2", "phi3"])
def test_a_mixed_batch_gives_each_row_its_own_tasks_logits(family: str) -> None:
    model = _model_with_tasks(family)
    names = list(model.tasks)
    ids, mask = _batch(2 * len(names) + 3, 9)
    row_tasks = [names[(3 * r) % len(names)] for r in range(len(ids))]
    with torch.no_grad():
        mixed = model.forward_mixed(row_tasks, ids, mask)
        assert sorted(name for name, _, _ in mixed) == sorted(set(row_tasks))
        for name, rows, logits in mixed:
            assert rows.tolist() == [r for r, t in enumerate(row_tasks) if t == name]
            model.activate(name)
            alone = model(ids, mask)[rows]  # the same rows, the same padding, one task
            assert logits.shape == alone.shape
            torch.testing.assert_close(logits, alone, atol=1e-5, rtol=0)
            assert torch.equal(logits.argmax(-1), alone.argmax(-1))


def test_the_active_task_is_left_as_it_was() -> None:
    model = _model_with_tasks("bert")
    model.activate("t2")
    ids, mask = _batch(4, 6)
    with torch.no_grad():
        before = model(ids, mask)
        model.forward_mixed(["t0", "t1", "t0", "t3"], ids, mask)
        assert model.active == "t2" and model.router.groups is None
        assert torch.equal(model(ids, mask), before)


def test_topk_cannot_mix_and_says_so() -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_task("deep", num_outputs=2, adapter=method_config("topk", {"k": 1}))
    model.add_task("light", num_outputs=2, adapter=method_config("houlsby", {"bottleneck": 2}))
    assert not model.can_mix("deep") and model.can_mix("light")
    ids, mask = _batch(2, 5)
    with pytest.raises(ValueError, match="task 'deep' cannot share a forward pass"):
        model.forward_mixed(["deep", "light"], ids, mask)
    assert model.router.groups is None


@pytest.fixture()
def four_methods(workspace, tmp_path):
    """Four trained tasks of four methods, topk among them (it cannot mix)."""
    from tests.conftest import write_keyword_task

    plans = [
        ("a", "houlsby", None, {"pos": "good", "neg": "bad"}),
        ("b", "lora", {"rank": 2}, {"x": "cat", "y": "dog", "z": "news"}),
        ("c", "topk", {"k": 1}, {"p": "film", "q": "movie"}),
        ("d", "ia3", None, {"u": "sport", "v": "tech"}),
    ]
    for i, (name, method, options, keywords) in enumerate(plans):
        data = write_keyword_task(tmp_path / name, seed=i, n_train=48, keywords=keywords)
        workspace.add_task(name, data, method=method, options=options)
    workspace.train_next(all_tasks=True, epochs=1)
    return workspace


def test_predict_with_a_task_field_equals_each_tasks_own_predictions(four_methods) -> None:
    words = ["good film", "bad cat news", "the dog movie", "tech sport it", "very good dog"]
    rows = [{"text": w, "task": "abcd"[i % 4]} for i, w in enumerate(words * 3)]
    notes: list[str] = []
    mixed = four_methods.predict(None, rows, task_field="task", on_note=notes.append)
    assert notes == [
        "task 'c' cannot share a forward pass with other tasks' rows (its method topk changes "
        "whole layers): its rows ran in batches of their own"
    ]
    for name in "abcd":
        mine = [i for i, r in enumerate(rows) if r["task"] == name]
        alone = four_methods.predict(name, [rows[i] for i in mine])
        for i, one in zip(mine, alone, strict=True):
            assert mixed[i]["index"] == i and mixed[i]["task"] == name
            assert mixed[i]["label"] == one["label"]
            for label, p in one["probabilities"].items():
                assert abs(mixed[i]["probabilities"][label] - p) < 1e-5


def test_at_most_the_resident_limit_of_tasks_stays_built(four_methods) -> None:
    from contlearn.runtime.context import open_context

    ws = four_methods
    ctx = open_context(ws.ledger, ws.store, "cpu")
    assert ctx.residency.limit == 64  # tasks.toml's default
    ctx.residency.limit = 2
    a, b, c, d = (ws.ledger.task(n) for n in "abcd")
    ctx.ensure([a])
    ctx.ensure([b])
    ctx.ensure([c])
    assert set(ctx.model.tasks) == {"b", "c"}  # a, the least recently used, left
    ctx.ensure([b])
    ctx.ensure([d])
    assert set(ctx.model.tasks) == {"b", "d"}
    ctx.ensure([a, b, c])  # one batch's tasks all stay, even beyond the limit
    assert set(ctx.model.tasks) == {"a", "b", "c"}
    rows = [{"text": "good film", "task": n} for n in "abcdabcd"]
    bounded = ws.predict(None, rows, task_field="task", context=ctx, batch_size=2)
    assert len(ctx.model.tasks) <= 2 + 2
    free = ws.predict(None, rows, task_field="task")
    for one, other in zip(bounded, free, strict=True):
        assert one["label"] == other["label"]
        for label, p in other["probabilities"].items():
            assert abs(one["probabilities"][label] - p) < 1e-5


def test_the_resident_limit_is_a_workspace_setting(workspace) -> None:
    from contlearn.errors import ConfigError

    text = (workspace.root / "tasks.toml").read_text()
    assert "resident_tasks = 64" in text
    (workspace.root / "tasks.toml").write_text(
        text.replace("resident_tasks = 64", "resident_tasks = -1")
    )
    with pytest.raises(ConfigError, match="resident_tasks must be an integer >= 0"):
        type(workspace).open(workspace.root)


def test_residency_evicts_the_least_recently_used_but_never_a_kept_task() -> None:
    from contlearn.model.resident import Residency

    r = Residency(limit=2)
    for name in "abc":
        r.use(name)
    assert r.over() == ["a"] and len(r) == 2
    r.use("b")
    r.use("d")
    assert r.over(keep={"c"}) == ["b"]
    assert Residency(limit=0).over() == []
    with pytest.raises(ValueError, match=">= 0"):
        Residency(limit=-1)


def test_only_a_task_that_cannot_mix_is_named(four_methods) -> None:
    rows = [{"text": "good film", "task": "a"}, {"text": "the movie", "task": "c"}]
    notes: list[str] = []
    found = four_methods.predict(None, rows, task_field="task", on_note=notes.append)
    assert [r["task"] for r in found] == ["a", "c"]
    assert len(notes) == 1 and notes[0].startswith("task 'c' cannot share a forward pass")
    notes.clear()
    four_methods.predict(
        None, [rows[0], {**rows[0], "task": "b"}], task_field="task", on_note=notes.append
    )
    assert notes == []
