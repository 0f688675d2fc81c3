"""What a backbone's modules are called outside contlearn: the parameter names a
``transformers`` model with a head (``BertForSequenceClassification``, AdapterHub's
``BertAdapterModel``) gives them, ``{base_model_prefix}.{layers}.{i}.{site path}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model.families import Family


@dataclass(frozen=True)
class Naming:
    """family: the backbone's family (where its layers and sites are); prefix: the base model's
    attribute in a model with a head (``bert``, ``roberta``); model_type, model_class (the bare
    model's class, e.g. ``BertModel``), hidden_size, num_layers: as the backbone's config says."""

    family: Family
    prefix: str
    model_type: str
    model_class: str
    hidden_size: int
    num_layers: int

    def layer(self, i: int) -> str:
        """Layer ``i``'s module path, e.g. ``bert.encoder.layer.0``."""
        return f"{self.prefix}.{self.family.layers}.{i}"

    def module(self, kind: str, i: int) -> str:
        """Site ``kind`` of layer ``i``, e.g. ``bert.encoder.layer.0.attention.output.dense``."""
        return f"{self.layer(i)}.{self.family.path(kind)}"

    def owner(self, kind: str, i: int) -> str:
        """The module that holds site ``kind`` (AdapterHub adds its adapters there)."""
        return self.module(kind, i).rpartition(".")[0]

    def site_of(self, path: str, kinds: tuple[str, ...]) -> tuple[str, int] | None:
        """(kind, layer) of module path ``path`` among sites ``kinds``, or None (the layer may
        be one this backbone lacks: the caller checks)."""
        found = re.fullmatch(
            rf"{re.escape(self.prefix)}\.{re.escape(self.family.layers)}"
            rf"\.(\d+)\.(.+)",
            path,
        )
        if found is None:
            return None
        for kind in kinds:
            if self.family.path(kind) == found.group(2):
                return kind, int(found.group(1))
        return None


def naming(model: Any) -> Naming:
    """The naming of an :class:`~contlearn.model.adapted.AdaptedModel`'s backbone."""
    backbone = model.backbone
    return Naming(
        family=model.family,
        prefix=backbone.base_model_prefix,
        model_type=str(backbone.config.model_type),
        model_class=type(backbone).__name__,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
    )
