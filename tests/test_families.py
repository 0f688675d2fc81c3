"""Backbone families as data: each built-in family resolves by model type (or, for an unlisted
type, by structure), every site is checked before anything changes, and a run records the family
by name so that its artifacts load with it."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoModel,
    BertConfig,
    CamembertConfig,
    DistilBertConfig,
    ElectraConfig,
    ErnieConfig,
    RobertaConfig,
    XLMRobertaConfig,
)

from contlearn.errors import ArtifactError, UnsupportedArchitecture
from contlearn.files import sha256_file
from contlearn.model import families
from contlearn.model.adapted import AdaptedModel
from contlearn.model.routing import SiteWrapper

SMALL = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2)
CONFIGS = {
    "bert": (lambda: BertConfig(**SMALL, intermediate_size=24), "bert"),
    "roberta": (lambda: RobertaConfig(**SMALL, intermediate_size=24), "roberta"),
    "xlm-roberta": (lambda: XLMRobertaConfig(**SMALL, intermediate_size=24), "roberta"),
    "camembert": (lambda: CamembertConfig(**SMALL, intermediate_size=24), "roberta"),
    "electra": (lambda: ElectraConfig(**SMALL, intermediate_size=24), "electra"),
    "distilbert": (
        lambda: DistilBertConfig(vocab_size=60, dim=16, n_layers=2, n_heads=2, hidden_dim=24),
        "distilbert",
    ),
    "ernie": (lambda: ErnieConfig(**SMALL, intermediate_size=24), "bert"),  # by structure
}


def model_of(kind: str):
    torch.manual_seed(0)
    return AutoModel.from_config(CONFIGS[kind][0]())


@pytest.mark.parametrize("kind", CONFIGS)
def test_each_backbone_resolves_to_its_family(kind: str) -> None:
    model = AdaptedModel(model_of(kind))
    assert model.family.name == CONFIGS[kind][1]
    kinds = tuple(k for k in families.SITE_KINDS if k != "qkv")
    model.adapt(kinds)
    for kind_ in kinds:
        bases = model.base_modules(kind_)
        test, _ = families.SITE_CHECKS[kind_]
        assert len(bases) == 2 and all(test(b) for b in bases)


def test_every_family_lists_its_sites_and_has_a_unique_name() -> None:
    names = [f.name for f in families.FAMILIES]
    assert len(set(names)) == len(names)
    for family in families.FAMILIES:
        if family.refuse is not None:
            continue
        qkv = {"qkv"} if family.fused_qkv else {"query", "key", "value"}
        expected = set(families.SITE_KINDS) - {"qkv", "query", "key", "value"} | qkv
        assert set(family.sites) == expected, family.name
        assert family.norms in ("post", "pre") and family.pooling in ("first", "last")
        assert (family.qkv_split is not None) == family.fused_qkv
    types = [t for f in families.FAMILIES for t in f.model_types]
    assert len(set(types)) == len(types)


def test_a_recorded_family_is_used_by_name() -> None:
    assert AdaptedModel(model_of("bert"), family="bert").family.name == "bert"
    with pytest.raises(UnsupportedArchitecture, match="has no layer list 'transformer.layer'"):
        AdaptedModel(model_of("bert"), family="distilbert")
    with pytest.raises(UnsupportedArchitecture, match="unknown backbone family 'gpt9'"):
        AdaptedModel(model_of("bert"), family="gpt9")


def test_a_listed_type_with_a_broken_layer_is_refused_naming_it() -> None:
    model = model_of("roberta")
    model.encoder.layer[0].attention.output.dense = torch.nn.Identity()
    with pytest.raises(UnsupportedArchitecture, match="layer 0: attention.output.dense is a"):
        AdaptedModel(model)
    assert not any(isinstance(m, SiteWrapper) for m in model.modules())  # nothing was wrapped


def test_runs_and_artifacts_record_the_family_and_a_different_one_is_refused(two_tasks) -> None:
    from contlearn.runtime.context import open_context

    ws = two_tasks
    ws.train_next()
    task = ws.ledger.task("a")
    run = ws.ledger.trained_run(task.id)
    assert (run.config["method"], run.config["family"]) == ("houlsby", "bert")
    path = ws.artifact_files("a")["config"]
    meta = json.loads(path.read_text())
    assert (meta["method"], meta["family"]) == ("houlsby", "bert")
    path.write_text(json.dumps({**meta, "family": "distilbert"}))
    _rerecord(ws, run.id, "config", sha256_file(path))  # as if written for that family
    with pytest.raises(ArtifactError, match="backbone family 'distilbert'"):
        open_context(ws.ledger, ws.store).load_task(task)


def _rerecord(ws, run_id: int, role: str, sha: str) -> None:
    from sqlalchemy import text

    with ws.ledger.engine.begin() as conn:
        conn.execute(
            text("UPDATE artifacts SET sha256 = :sha WHERE run_id = :run AND role = :role"),
            {"sha": sha, "run": run_id, "role": role},
        )
