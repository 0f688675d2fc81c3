"""contlearn: a continual-learning task manager for NLP models.

Each task gets its own Houlsby bottleneck adapter on one frozen shared backbone; a ledger
records the task sequence, every run, artifact and evaluation, and proves that training a new
task leaves every earlier task's predictions bit-identical.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = ["Workspace", "__version__"]


def __getattr__(name: str):
    """``contlearn.Workspace``, imported on first use so that ``import contlearn`` stays cheap."""
    if name == "Workspace":
        from .workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'contlearn' has no attribute {name!r}")
