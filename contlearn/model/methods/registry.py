"""The methods contlearn knows, by name. A new method is one module plus one line here.

Runs and artifacts record the method's name; an artifact written before methods had names
(release 0.1) was made with ``houlsby``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import ConfigError
from . import fusion, head, houlsby, ia3, lora, parallel, pfeiffer, topk
from .base import Method

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        houlsby.METHOD,
        pfeiffer.METHOD,
        parallel.METHOD,
        lora.METHOD,
        ia3.METHOD,
        topk.METHOD,
        head.METHOD,
        fusion.METHOD,
    )
}
DEFAULT_METHOD = houlsby.METHOD.name
UNNAMED = houlsby.METHOD.name  # what an artifact without a method key was made with


def get_method(name: str) -> Method:
    """The method registered as ``name``; raises :class:`ConfigError` naming the known ones."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}: choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def default_config() -> Any:
    """The default method's config with its defaults."""
    return get_method(DEFAULT_METHOD).config_cls()


def method_config(name: str, values: Mapping[str, Any]) -> Any:
    """Method ``name``'s validated config from ``values``."""
    return get_method(name).config(values)
