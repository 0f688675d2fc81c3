"""contlearn: a continual-learning task manager for NLP models.

Each task gets its own parameter-efficient adapter on one frozen shared backbone; a ledger
records the task sequence, every run, artifact and evaluation, and proves that training a new
task leaves every earlier task's predictions bit-identical.

Layout (dependencies point down): ``cli`` and ``api`` (the ``Workspace``) on top; ``ops``, the
use cases; ``ledger``, ``data``, ``model``, ``train``, ``eval`` and ``report`` below them; and
``config``, ``artifacts``, ``files``, ``validation``, ``errors`` and ``version`` at the bottom.
"""

from typing import TYPE_CHECKING

from .version import __version__

if TYPE_CHECKING:
    from .api import Workspace

__all__ = ["Workspace", "__version__"]


def __getattr__(name: str):
    """``contlearn.Workspace``, imported on first use so that ``import contlearn`` stays cheap."""
    if name == "Workspace":
        from .api import Workspace

        return Workspace
    raise AttributeError(f"module 'contlearn' has no attribute {name!r}")
