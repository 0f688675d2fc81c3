"""The ``contlearn`` command line: parse, call one Workspace method, print a table or JSON.

``app`` holds the command group, ``options`` the options several commands share (as
decorators, as in sqlite-utils) and the one-line error handling, ``output`` the table and JSON
printing; each other module holds the commands of one part of a task's life. Nothing here
imports torch; the commands that train or evaluate import it through the library.
"""

from . import (  # noqa: F401
    checking,
    comparing,
    history,
    interop,
    maintenance,
    predicting,
    routing,
    serving,
    tasks,
    training,
)
from .app import main

__all__ = ["main"]
