"""contlearn's version, and the versions of the libraries a run or artifact records.

Library code reads the version here rather than from the package, so that no module below the
API has to import ``contlearn`` itself (whose lazy ``Workspace`` leads to the API).
"""

from __future__ import annotations

import platform

__version__ = "0.2.0.dev0"


def library_versions() -> dict[str, str]:
    """Python, torch, transformers and safetensors versions, with contlearn's."""
    import safetensors
    import torch
    import transformers

    return {
        "contlearn": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
    }
