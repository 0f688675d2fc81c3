"""The base reference set: what a workspace on a generative backbone measures its base model on.

A few paragraphs of general English text (public-domain passages and plain encyclopedia-style
sentences), whose perplexity the base model is measured by, and a few general instructions it
answers greedily through the backbone's chat template, at most ``max_new_tokens`` tokens each.
The built-in set ships as ``base_reference.json`` beside this module; a ``base_reference.json``
in the workspace folder, of the same form, replaces it. The set is recorded whole with the
reference, so later checks replay what was recorded whatever the files say then.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import BadData

FILE = "base_reference.json"
BUILT_IN = Path(__file__).with_name(FILE)
MAX_NEW_TOKENS = 1024


@dataclass(frozen=True)
class BaseSet:
    """texts: the paragraphs scored by perplexity; instructions: the prompts answered greedily;
    max_new_tokens: how many tokens an answer may have."""

    texts: tuple[str, ...]
    instructions: tuple[str, ...]
    max_new_tokens: int = 24

    def __post_init__(self) -> None:
        for name in ("texts", "instructions"):
            values = getattr(self, name)
            if not values or not all(isinstance(v, str) and v.strip() for v in values):
                raise BadData(f"base reference set: {name} must be a non-empty list of texts")
            object.__setattr__(self, name, tuple(values))
        count = self.max_new_tokens
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 1 <= count <= MAX_NEW_TOKENS
        ):
            raise BadData(
                f"base reference set: max_new_tokens must be 1-{MAX_NEW_TOKENS}, got {count!r}"
            )

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def from_dict(raw: Any, where: str = "base reference set") -> BaseSet:
    """A set from its JSON form; a one-line :class:`BadData` naming what is wrong."""
    if not isinstance(raw, dict):
        raise BadData(f"{where}: must be a JSON object with texts and instructions")
    unknown = sorted(set(raw) - {"texts", "instructions", "max_new_tokens"})
    if unknown or "texts" not in raw or "instructions" not in raw:
        raise BadData(
            f"{where}: give texts and instructions (lists of strings) and optionally "
            f"max_new_tokens{'; unknown key(s): ' + ', '.join(unknown) if unknown else ''}"
        )
    if not isinstance(raw["texts"], list) or not isinstance(raw["instructions"], list):
        raise BadData(f"{where}: texts and instructions must be lists of strings")
    try:
        return BaseSet(raw["texts"], raw["instructions"], raw.get("max_new_tokens", 24))
    except BadData as exc:
        raise BadData(f"{where}: {str(exc).removeprefix('base reference set: ')}") from None


def read(path: Path) -> BaseSet:
    """The set in the JSON file ``path``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadData(f"{path}: cannot read the base reference set ({exc})") from None
    return from_dict(raw, str(path))


def for_workspace(root: Path) -> BaseSet:
    """The workspace's own ``base_reference.json`` if it has one, else the built-in set."""
    own = root / FILE
    return read(own if own.is_file() else BUILT_IN)
