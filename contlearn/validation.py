"""Checks that frozen config dataclasses run in ``__post_init__``: types, then values.

Every failure raises :class:`~contlearn.errors.ConfigError` with a one-line message.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .errors import ConfigError

TYPE_WORDS = {"int": "an integer", "float": "a float", "str": "a str", "bool": "true or false"}


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def _has_type(value: Any, kind: str) -> bool | None:
    """Whether ``value`` is a ``kind`` (ints are not bools; floats accept ints); None for kinds
    this check does not cover."""
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    return None


def check_types(obj: Any) -> None:
    """Every field of the dataclass ``obj`` holds its declared type."""
    for f in fields(obj):
        value, kind = getattr(obj, f.name), str(f.type)
        ok = _has_type(value, kind)
        if ok is not None:
            check(ok, f"{f.name} must be {TYPE_WORDS[kind]}, got {value!r}")
