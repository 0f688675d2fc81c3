"""The model side of generation, on tiny random Llama (untied output projection) and GPT-2
(tied) causal LMs saved as real folders: the shared ``lm`` head, ``lm_logits`` and
``decoding.generate`` against transformers' own causal LM, the key/value cache against
recomputing for every method, left padding, mixed-task batches, stop ids, sampling, and the
refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contlearn.errors import BackboneError, ConfigError, UnsupportedArchitecture
from contlearn.model import backbone as bb
from contlearn.model.adapted import AdaptedModel
from contlearn.model.decoding import Decoding, generate, nucleus
from contlearn.model.families import BY_NAME
from contlearn.model.methods.registry import METHODS, get_method
from contlearn.model.output import OutputWeights
from tests.conftest import save_causal_backbone, save_family_backbone
from tests.family_configs import CONFIGS, FAMILY_OF, VOCAB, tiny_causal_lm
from tests.test_family_matrix import CASES

FAMILIES = ("llama", "gpt2")
OPTIONS = dict(CASES)  # every method's options in the family matrix
STOP = 3  # the tiny configs' eos_token_id


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("causal")
    return {label: save_causal_backbone(root / label, label) for label in FAMILIES}


def adapted(folder: Path, dtype: str = "float32") -> AdaptedModel:
    loaded = bb.load(str(folder), dtype)
    return AdaptedModel(loaded.model, output_embeddings=loaded.output_embeddings).eval()


def reference(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder)).eval()


def prompts(lengths=(5, 3, 7), seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random prompts of ``lengths``, left-padded with 0: ids [B, T], mask [B, T]."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros((len(lengths), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, width - n :] = torch.randint(4, VOCAB, (n,), generator=g)
        mask[i, width - n :] = 1
    return ids, mask


def add_task(model: AdaptedModel, name: str, method: str, seed: int = 0) -> None:
    """Task ``name`` with an ``lm`` head, its parameters moved off their initial values (most
    methods start at exactly the backbone), so that it generates something of its own."""
    model.add_task(
        name, num_outputs=0, adapter=get_method(method).config(OPTIONS[method]), head="lm"
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.trainable_parameters(name):
            p.add_(torch.randn(p.shape, generator=g) * 0.3)


def greedy(n: int = 6, stops: tuple[int, ...] = (), **options) -> Decoding:
    return Decoding(max_new_tokens=n, stop_ids=stops, **options)


def test_every_method_is_covered() -> None:
    assert set(OPTIONS) == set(METHODS)


# -- the base model is transformers' causal LM -----------------------------------------------


@pytest.mark.parametrize("label", FAMILIES)
def test_base_model_logits_are_the_causal_lms_bit_for_bit(folders, label: str) -> None:
    model, lm = adapted(folders[label]), reference(folders[label])
    ids = torch.randint(4, VOCAB, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        expected = lm(input_ids=ids, attention_mask=mask).logits
        assert torch.equal(model.lm_logits(ids, mask), expected)
        add_task(model, "t", "lora")
        model.activate("t")
        assert not torch.allclose(model.lm_logits(ids, mask), expected)
        model.deactivate()
        assert torch.equal(model.lm_logits(ids, mask), expected)
    assert model.lm_logits(ids, mask).dtype == torch.float32


def test_a_generation_tasks_forward_is_its_lm_logits_whatever_the_padding(folders) -> None:
    model = adapted(folders["llama"])
    add_task(model, "t", "lora")
    model.activate("t")
    ids, mask = prompts()  # left-padded: positions from the mask, not the column
    with torch.no_grad():
        assert torch.equal(model(ids, mask), model.lm_logits(ids, mask))
        alone = model(ids[:1, 2:], mask[:1, 2:])  # row 0 (5 tokens) without its padding
        assert torch.allclose(model(ids, mask)[0, 2:], alone[0], atol=1e-5)


@pytest.mark.parametrize("label", FAMILIES)
def test_base_model_generates_what_transformers_generates(folders, label: str) -> None:
    model, lm = adapted(folders[label]), reference(folders[label])
    ids, mask = prompts()
    n = 8
    with torch.no_grad():
        theirs = lm.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=STOP,
            pad_token_id=0,
        )[:, ids.shape[1] :]
    ours = generate(model, ids, mask, greedy(n, (STOP,)))
    expected = torch.full_like(ours, -1)
    expected[:, : theirs.shape[1]] = theirs
    for row in range(len(ids)):  # transformers pads a stopped row; contlearn writes -1
        stopped = (theirs[row] == STOP).nonzero()
        if len(stopped):
            expected[row, int(stopped[0]) + 1 :] = -1
    assert torch.equal(ours, expected)


DECODERS = [label for label, family in FAMILY_OF.items() if BY_NAME[family].causal]


@pytest.mark.parametrize("label", DECODERS)
def test_every_decoder_family_is_its_causal_lm_with_and_without_the_cache(label: str) -> None:
    """Built in memory: the reference is computed before the base model is wrapped (which
    changes no weight); Gemma 2's logit soft-capping included."""
    lm = tiny_causal_lm(label)
    ids, mask = prompts()
    with torch.no_grad():
        logits = lm(input_ids=ids[2:], attention_mask=mask[2:]).logits  # row 2: no padding
        theirs = lm.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=5,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )[:, ids.shape[1] :]
    weights = OutputWeights(lm.get_output_embeddings().weight.detach())
    model = AdaptedModel(lm.base_model, output_embeddings=lambda: weights).eval()
    with torch.no_grad():
        assert torch.equal(model.lm_logits(ids[2:], mask[2:]), logits.float())
    assert torch.equal(generate(model, ids, mask, greedy(5)), theirs)
    assert torch.equal(generate(model, ids, mask, greedy(5, use_cache=False)), theirs)


# -- the key/value cache ---------------------------------------------------------------------


@pytest.mark.parametrize("label", FAMILIES)
@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_cache_generates_what_recomputing_generates(folders, label, method) -> None:
    model = adapted(folders[label])
    add_task(model, "t", method)
    ids, mask = prompts()
    with torch.no_grad():
        base = model.lm_logits(ids, mask)  # no task active: the base model
    model.activate("t")
    fed: list[int] = []  # tokens per backbone call: the prompt, then one at a time
    embeddings = model.backbone.get_input_embeddings()
    handle = embeddings.register_forward_hook(lambda m, args, out: fed.append(args[0].shape[1]))
    cached = generate(model, ids, mask, greedy(8))
    handle.remove()
    assert fed == [ids.shape[1]] + [1] * 7
    assert torch.equal(cached, generate(model, ids, mask, greedy(8, use_cache=False)))
    assert (cached >= 0).all()
    if method != "head":  # the task's modules are live
        with torch.no_grad():
            assert not torch.allclose(model.lm_logits(ids, mask), base)
    assert model.backbone.config.use_cache is False  # training and classification: no cache


@pytest.mark.parametrize("label", FAMILIES)
def test_a_left_padded_row_generates_what_it_generates_alone(folders, label: str) -> None:
    model = adapted(folders[label])
    add_task(model, "t", "houlsby")
    model.activate("t")
    ids, mask = prompts((4, 7, 2, 5))
    batch = generate(model, ids, mask, greedy(6))
    for row in range(len(ids)):
        alone = ids[row, mask[row].bool()][None]
        assert torch.equal(batch[row], generate(model, alone, torch.ones_like(alone), greedy(6))[0])


# -- several tasks in one batch --------------------------------------------------------------


@pytest.mark.parametrize("label", FAMILIES)
@pytest.mark.parametrize("methods", [("lora", "houlsby"), ("lora", "topk")])
def test_a_mixed_task_batch_generates_what_each_task_generates_alone(
    folders, label: str, methods: tuple[str, str]
) -> None:
    model = adapted(folders[label])
    for i, method in enumerate(methods):
        add_task(model, method, method, seed=i)
    ids, mask = prompts((5, 3, 7, 4, 6))
    tasks = [methods[0], methods[1], methods[0], methods[1], methods[1]]
    for use_cache in (True, False):
        mixed = generate(model, ids, mask, greedy(6, use_cache=use_cache), tasks)
        for name in methods:
            rows = torch.tensor([i for i, t in enumerate(tasks) if t == name])
            model.activate(name)
            alone = generate(model, ids[rows], mask[rows], greedy(6, use_cache=use_cache))
            assert torch.equal(mixed[rows], alone), (name, use_cache)
    assert not torch.equal(mixed[[0, 2]], generate(model, ids[[0, 2]], mask[[0, 2]], greedy(6)))


@pytest.mark.parametrize("methods", [("lora", "houlsby"), ("lora", "topk")])
def test_on_token_hears_each_step_in_row_order_and_changes_nothing(folders, methods) -> None:
    """The columns ``on_token`` is told, stacked, are the result (-1 for a stopped row and,
    task by task, for the other task's rows while one generates); the result is unchanged."""
    model = adapted(folders["llama"])
    for i, method in enumerate(methods):
        add_task(model, method, method, seed=i)
    ids, mask = prompts((5, 3, 7, 4))
    tasks = [methods[1], methods[0], methods[1], methods[0]]
    decoding = greedy(6, stops=(STOP,))
    heard: dict[int, torch.Tensor] = {}

    def on_token(step: int, tokens: torch.Tensor) -> None:
        heard[step] = torch.maximum(heard.get(step, tokens), tokens)  # task by task: merged

    out = generate(model, ids, mask, decoding, tasks, on_token=on_token)
    assert torch.equal(out, generate(model, ids, mask, decoding, tasks))
    told = torch.full_like(out, -1)
    for step, tokens in heard.items():
        told[:, step] = tokens
    assert torch.equal(told, out) and len(heard) >= 1
    model.activate(methods[0])

    def stop(step: int, tokens: torch.Tensor) -> None:
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):  # what on_token raises stops it
        generate(model, ids, mask, decoding, on_token=stop)


def test_generation_leaves_the_model_as_it_found_it(folders) -> None:
    model = adapted(folders["llama"])
    add_task(model, "a", "lora")
    add_task(model, "b", "houlsby", seed=1)
    model.train()
    model.activate("a")
    ids, mask = prompts()
    generate(model, ids, mask, greedy(3), ["b", "a", "b"])
    generate(model, ids, mask, greedy(3), ["b", "b", "b"])
    assert model.training and model.tasks["b"].training and model.backbone.training
    assert model.active == "a" and model.router.task is model.tasks["a"]
    assert model.router.groups is None


def test_the_frozen_prefix_cache_is_off_while_generating(folders) -> None:
    model = adapted(folders["llama"])
    model.add_task(
        "t", num_outputs=0, adapter=get_method("lora").config({"leave_out": [0]}), head="lm"
    )
    model.activate("t")
    ids, mask = prompts((6, 6, 6))
    expected = generate(model, ids, mask, greedy(5))
    with model.frozen_prefix("t", 10**8) as prefix:
        assert prefix is not None and prefix.start == 1
        prefix.begin([0, 1, 2], [6, 6, 6])
        model.lm_logits(ids, mask)  # a training batch: its layer-0 outputs are kept
        prefix.end()
        prefix.begin([0, 1, 2], [6, 6, 6])  # the next batch is served from the kept outputs
        assert prefix.hits == 1
        assert torch.equal(generate(model, ids, mask, greedy(5)), expected)
        assert model.router.prefix is prefix
        prefix.end()


# -- stopping and sampling -------------------------------------------------------------------


def test_a_stop_id_ends_its_row_and_the_rest_is_minus_one(folders) -> None:
    model = adapted(folders["llama"])
    ids, mask = prompts()
    free = generate(model, ids, mask, greedy(8))
    at = next(j for j in range(1, 8) if free[1, j] not in free[1, :j])
    stop = int(free[1, at])  # row 1 stops at step ``at``
    stopped = generate(model, ids, mask, greedy(8, (stop,)))
    for row in range(len(ids)):
        hits = (free[row] == stop).nonzero()
        end = int(hits[0]) + 1 if len(hits) else free.shape[1]
        assert torch.equal(stopped[row, :end], free[row, :end])
        assert (stopped[row, end:] == -1).all()
    assert int(stopped[1, at]) == stop and (stopped[1, at + 1 :] == -1).all()
    everyone = generate(model, ids, mask, greedy(8, tuple(int(t) for t in free[:, 0])))
    assert everyone.shape == (3, 8) and (everyone[:, 1:] == -1).all()


def test_sampling_with_a_seed_is_reproducible_and_a_tiny_top_p_is_greedy(folders) -> None:
    model = adapted(folders["llama"])
    ids, mask = prompts()

    def sample(seed: int, top_p: float = 1.0, use_cache: bool = True) -> torch.Tensor:
        options = {"temperature": 2.0, "top_p": top_p, "seed": seed, "use_cache": use_cache}
        return generate(model, ids, mask, greedy(10, **options))

    first = sample(7)
    assert torch.equal(first, sample(7))
    assert torch.equal(first, sample(7, use_cache=False))
    assert not torch.equal(first, sample(8))
    assert not torch.equal(first, generate(model, ids, mask, greedy(10)))
    assert torch.equal(sample(7, top_p=1e-6), generate(model, ids, mask, greedy(10)))


def test_nucleus_keeps_the_most_likely_tokens_up_to_top_p() -> None:
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])
    assert torch.equal(nucleus(probs, 0.7), torch.tensor([[0.0, 0.5, 0.0, 0.3]]))
    assert torch.equal(nucleus(probs, 0.8), torch.tensor([[0.0, 0.5, 0.0, 0.3]]))
    assert torch.equal(nucleus(probs, 0.81), torch.tensor([[0.15, 0.5, 0.0, 0.3]]))
    assert torch.equal(nucleus(probs, 0.4), torch.tensor([[0.0, 0.5, 0.0, 0.0]]))
    assert torch.equal(nucleus(probs, 1.0), probs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"stop_ids": [3, "x"]}, "stop_ids must be a list of token ids"),
        ({"temperature": -1.0}, "temperature must be >= 0"),
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"seed": 1.5}, "seed must be an integer or None"),
    ],
)
def test_a_bad_decoding_option_is_one_line(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        Decoding(**({"max_new_tokens": 4, "stop_ids": (3,)} | options))
    assert Decoding(max_new_tokens=2, stop_ids=[3, 4]).stop_ids == (3, 4)


def test_a_batch_that_cannot_generate_is_refused_in_one_line(folders) -> None:
    model = adapted(folders["gpt2"])
    ids, mask = prompts()
    right = mask.flip(1)
    with pytest.raises(ConfigError, match="pad the batch on the left"):
        generate(model, ids, right, greedy(2))
    with pytest.raises(ConfigError, match="give one per row"):
        generate(model, ids, mask, greedy(2), ["a"])
    empty = generate(model, ids[:0], mask[:0], greedy(2))
    assert empty.shape == (0, 2)
    limit = CONFIGS["gpt2"][1]["n_positions"]
    with pytest.raises(ConfigError, match=f"more than the backbone's {limit} positions"):
        generate(model, ids, mask, greedy(limit))


# -- the lm head: shared, never saved, read from the folder; refusals ------------------------


@pytest.mark.parametrize("label", FAMILIES)
def test_a_generation_tasks_state_has_no_vocabulary_matrix(folders, label: str) -> None:
    model = adapted(folders[label])
    add_task(model, "t", "lora")
    state = model.task_state("t")
    assert state and all(key.startswith(("lora.", "layer_norms.")) for key in state)
    assert all(VOCAB not in t.shape for t in state.values())
    own = sum(t.numel() for t in state.values())
    assert own == sum(p.numel() for p in model.trainable_parameters("t"))
    fresh = adapted(folders[label])
    fresh.load_task(
        "t", state, num_outputs=0, adapter=get_method("lora").config(OPTIONS["lora"]), head="lm"
    )
    ids, mask = prompts()
    model.activate("t")
    fresh.activate("t")
    with torch.no_grad():
        assert torch.equal(fresh.lm_logits(ids, mask), model.lm_logits(ids, mask))


def test_the_tied_projection_is_the_input_embedding_matrix(folders) -> None:
    model = adapted(folders["gpt2"])
    add_task(model, "t", "houlsby")
    assert model.output_projection().weight is model.backbone.get_input_embeddings().weight
    assert bb.load(str(folders["gpt2"])).output_embeddings is None


@pytest.mark.parametrize("shard", [None, "20KB"])
def test_an_untied_projection_is_read_from_the_folders_safetensors(tmp_path, shard) -> None:
    save = {} if shard is None else {"max_shard_size": shard}
    folder = save_causal_backbone(tmp_path / "llama", "llama", **save)
    assert (folder / "model.safetensors.index.json").is_file() == (shard is not None)
    loaded = bb.load(str(folder))
    weights = loaded.output_embeddings()
    assert torch.equal(weights.weight, reference(folder).lm_head.weight)
    assert weights.bias is None
    before = loaded.fingerprint
    model = AdaptedModel(loaded.model, output_embeddings=loaded.output_embeddings)
    add_task(model, "t", "lora")
    assert torch.equal(model.output_projection().weight, weights.weight)
    assert bb.fingerprint(loaded.model) == before  # the backbone's fingerprint as it was
    half = bb.load(str(folder), "bfloat16").output_embeddings()
    assert half.weight.dtype == torch.bfloat16
    model.double()  # the projection moves with the model, as a buffer (never in its state)
    assert model.output_projection().weight.dtype == torch.float64
    assert not any("lm_output" in key for key in model.state_dict())


def test_a_base_model_folder_without_an_lm_head_refuses_generation(tmp_path) -> None:
    folder = save_family_backbone(tmp_path / "llama", "llama")  # saved from AutoModel
    loaded = bb.load(str(folder))
    model = AdaptedModel(loaded.model, output_embeddings=loaded.output_embeddings)
    with pytest.raises(BackboneError, match="holds no lm_head.weight") as caught:
        add_task(model, "t", "lora")
    assert "\n" not in str(caught.value) and "AutoModelForCausalLM" in str(caught.value)
    assert "t" not in model.tasks
    model.add_task("c", num_outputs=2, adapter=get_method("lora").config({}))  # classifies
    bare = AdaptedModel(bb.load(str(folder)).model)  # nothing handed over
    with pytest.raises(BackboneError, match="unties its output projection"):
        bare.lm_logits(*prompts())


def test_an_encoder_backbone_refuses_generation_in_one_line(tiny_backbone) -> None:
    model = AdaptedModel(bb.load(str(tiny_backbone)).model)
    with pytest.raises(UnsupportedArchitecture, match="use a decoder backbone") as caught:
        model.add_task("t", num_outputs=0, adapter=None, head="lm")
    assert "\n" not in str(caught.value)
    assert "t" not in model.tasks
    with pytest.raises(UnsupportedArchitecture, match="an encoder has no causal"):
        model.lm_logits(*prompts())


def test_a_classification_task_does_not_generate(folders) -> None:
    model = adapted(folders["llama"])
    model.add_task("c", num_outputs=2, adapter=get_method("lora").config({}))
    model.activate("c")
    with pytest.raises(ConfigError, match="task 'c' has no language-model head"):
        generate(model, *prompts(), greedy(2))


# -- a low-precision backbone ----------------------------------------------------------------


@pytest.mark.parametrize("label", FAMILIES)
def test_a_bf16_backbone_generates_with_and_without_the_cache_alike(folders, label) -> None:
    model = adapted(folders[label], "bfloat16")
    add_task(model, "t", "lora")
    model.activate("t")
    ids, mask = prompts()
    assert model.lm_logits(ids, mask).dtype == torch.float32
    cached = generate(model, ids, mask, greedy(6))
    assert torch.equal(cached, generate(model, ids, mask, greedy(6, use_cache=False)))
    assert (cached >= 0).all()
