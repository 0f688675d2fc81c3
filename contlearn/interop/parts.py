"""What both formats share: a task's LayerNorm copies under the backbone's own module names
(the documented extra file), the order of a head's outputs, the checks of a converted state,
and the warning for a folder whose recorded base model is not the workspace's backbone."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from ..errors import InteropError
from .names import Naming

NORM_KINDS = ("attention_norm", "ffn_norm")
# contlearn's head layers per head type (contlearn.model.heads): what a converted head must hold
HEAD_LAYERS = {"pooled": ("dense", "out"), "token": ("out",)}
# what a head's outputs are, per role (contlearn.kinds: a kind's head type, or "span")
HEAD_NAMES = {
    "pooled": "one output row per text",
    "token": "one output row per token",
    "span": "a start and an end logit per token",
}
ONE_PER_LAYER = ("pfeiffer", "parallel")  # their copies: slot i is layer i's ffn_norm


def norm_site(method: str, slot: int) -> tuple[str, int]:
    """(norm kind, layer) of a method's ``layer_norms.{slot}``."""
    if method in ONE_PER_LAYER:
        return "ffn_norm", slot
    return NORM_KINDS[slot % 2], slot // 2


def norm_slot(method: str, kind: str, layer: int) -> int:
    return layer if method in ONE_PER_LAYER else 2 * layer + NORM_KINDS.index(kind)


def norms_out(state: dict[str, Any], method: str, naming: Naming) -> dict[str, Any]:
    """The task's ``layer_norms.{slot}.{param}`` keyed as the backbone's norms are, e.g.
    ``bert.encoder.layer.0.attention.output.LayerNorm.weight``."""
    found = {}
    for key, tensor in state.items():
        if key.startswith("layer_norms."):
            _, slot, param = key.split(".", 2)
            kind, layer = norm_site(method, int(slot))
            found[f"{naming.module(kind, layer)}.{param}"] = tensor
    return found


def norms_in(norms: dict[str, Any], method: str, naming: Naming) -> dict[str, Any]:
    """The extra file's tensors back as ``layer_norms.{slot}.{param}``."""
    state = {}
    for key, tensor in norms.items():
        path, _, param = key.rpartition(".")
        site = naming.site_of(path, NORM_KINDS)
        if site is None:
            raise unmapped(key, "a LayerNorm of this backbone")
        state[f"layer_norms.{norm_slot(method, *site)}.{param}"] = tensor
    return state


def unmapped(key: str, what: str) -> InteropError:
    return InteropError(
        f"key {key!r} does not map to {what}: the folder was saved for another model or "
        "method; export it again from the backbone this workspace uses"
    )


def label_order(theirs: Sequence[str] | None, ours: Sequence[str] | None, where: str) -> list[int]:
    """For each of our labels, the index of the head output that scores it: the folder's own
    order when it names the same labels, else (unnamed outputs) the same position."""
    if ours is None or theirs is None or set(theirs) != set(ours):
        return list(range(len(ours or [None])))
    return [list(theirs).index(label) for label in ours]


def reorder(tensor: Any, order: list[int]) -> Any:
    """A head output layer's weight or bias with its rows in our labels' order."""
    if order == list(range(len(order))):
        return tensor
    return tensor[order].contiguous()


def check_outputs(count: int, labels: Sequence[str] | None, where: str, kind: Any) -> None:
    """The head's output count fits the task's data (``kind``: the task's kind)."""
    if count != kind.num_outputs(labels):
        raise InteropError(
            f"{where}'s head has {count} outputs, but the task's data has "
            f"{kind.describe_outputs(labels)}: import it with the data it was trained on"
        )


def check_fit(naming: Naming, hidden: int | None, model_type: str | None, where: str) -> None:
    """The folder was made for a backbone of this hidden size and model type."""
    if hidden is not None and hidden != naming.hidden_size:
        raise InteropError(
            f"{where} was made for a backbone of hidden size {hidden}, but this workspace's "
            f"backbone has {naming.hidden_size}: import it into a workspace on its base model"
        )
    if model_type is not None and model_type != naming.model_type:
        raise InteropError(
            f"{where} was made for a {model_type!r} backbone, but this workspace's is "
            f"{naming.model_type!r}: import it into a workspace on its base model"
        )


def check_layer(layer: int, naming: Naming, key: str) -> None:
    if layer >= naming.num_layers:
        raise InteropError(
            f"{key} is for layer {layer}, but this workspace's backbone has {naming.num_layers} "
            "layers: import it into a workspace on its base model"
        )


def ordered_head(
    state: dict[str, Any],
    names: Sequence[str] | None,
    labels: Sequence[str] | None,
    where: str,
    kind: Any,
) -> dict[str, Any]:
    """A converted head checked (its layers are those of ``kind``'s head, its output count fits
    the task's data) and its output rows put in the task's label order (``names``: the folder's
    labels in output order, if it has them; a kind whose labels do not name its outputs, such
    as QA's start and end, keeps the folder's order)."""
    if set(state) != {
        f"head.{layer}.{p}" for layer in HEAD_LAYERS[kind.head] for p in ("weight", "bias")
    }:
        raise InteropError(
            f"{where}'s head lacks weights (found {sorted(state)}): re-save it with its head"
        )
    count = state["head.out.weight"].shape[0]
    check_outputs(count, labels, where, kind)
    order = label_order(names, labels, where) if kind.labels_name_outputs else list(range(count))
    for param in ("weight", "bias"):
        state[f"head.out.{param}"] = reorder(state[f"head.out.{param}"], order)
    return state


def check_head_type(found: Any, holds: dict[str, str], kind: Any, where: str) -> None:
    """The folder's head type (``found``, in its format's words) is the one that format gives
    ``kind``'s head (``holds``: contlearn head type -> the format's name for it)."""
    wanted = holds.get(kind.role)
    if wanted is None:
        raise InteropError(
            f"{where} cannot become {a(kind.name)} task: its format has no head for that kind "
            f"(it holds {', '.join(holds.values())} heads)"
        )
    if found is not None and found != wanted:
        theirs = {v: k for k, v in holds.items()}.get(found)
        what = f"a {found} head" + (f" ({HEAD_NAMES[theirs]})" if theirs else "")
        raise InteropError(
            f"{where} has {what}, but the task's data makes {a(kind.name)} task, whose head is "
            f"{wanted}: import it with the data it was trained on"
        )


def a(word: str) -> str:
    """``word`` with its indefinite article: "a tagging", "an extractive-qa"."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def base_model_warnings(recorded: Any, identity: str) -> list[str]:
    """A one-line warning when a folder's recorded base model is empty or names another model
    than the workspace's backbone ``identity`` (its shapes and module names fit, or the import
    was refused before): the same name, folder or last path component counts as the same."""
    if not isinstance(recorded, str) or not recorded.strip():
        return [
            f"the adapter records no base model: imported onto this workspace's backbone "
            f"{identity!r}, which its shapes fit; check it was trained on that model"
        ]
    if _names(recorded) & _names(identity):
        return []
    return [
        f"the adapter was trained on {recorded!r}, not this workspace's backbone {identity!r}: "
        "imported, as its shapes fit; check its dev scores before relying on it"
    ]


def _names(model: str) -> set[str]:
    """What a model name or folder may be called: as given, its folder resolved, its last
    path component."""
    from ..errors import BackboneError
    from ..model.backbone import resolve

    given = model.strip().rstrip("/")
    names = {given, given.rpartition("/")[2].lower()}
    with suppress(BackboneError, OSError):  # a folder without config.json: compared by name
        names.add(resolve(given))  # an existing folder, resolved
    return names
