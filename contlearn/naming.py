"""Task names: one name ties a task's modules, artifact folder and ledger rows."""

from __future__ import annotations

import re

from .errors import InvalidTaskName

TASK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
AUTO = "auto"  # not a task: where a task is named, routing chooses each row's (predict, serve)


def check_task_name(name: str) -> str:
    """Return ``name`` if it is a valid task name, else raise :class:`InvalidTaskName`."""
    if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
        raise InvalidTaskName(
            f"invalid task name {name!r}: use 1-64 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    if name == AUTO:
        raise InvalidTaskName(
            f"the task name {AUTO!r} is reserved: it asks routing to choose each row's task; "
            "pick another name"
        )
    return name
