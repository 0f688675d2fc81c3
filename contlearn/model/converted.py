"""A GGUF checkpoint as a backbone: read its header, and convert it once into the workspace.

transformers reads a GGUF file (llama.cpp's format, usually quantised) with ``gguf_file=``,
dequantising every tensor; for a 135M-parameter model that takes minutes on a small CPU. So
``init`` converts it once: the dequantised weights (fp32 safetensors), the config and the
tokenizer (both rebuilt from the GGUF's metadata) become a transformers folder inside the
workspace, ``backbone/``, which every later command loads in seconds. The ledger keeps where it
came from (:class:`GgufSource`: the file's path, sha256 and quantisation); the fingerprint is
over the dequantised weights as loaded.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import BackboneError

FOLDER = "backbone"  # the converted backbone, relative to the workspace folder
SUFFIX = ".gguf"
UNQUANTISED = ("F32", "F16", "BF16")
INSTALL = "pip install gguf (or pip install 'contlearn[gguf]')"


def is_gguf(identity: str) -> bool:
    """Whether a backbone identity names a GGUF file (by its suffix, as llama.cpp names them)."""
    return identity.lower().endswith(SUFFIX)


@dataclass(frozen=True)
class GgufSource:
    """Where a converted backbone came from, as the ledger records it."""

    path: str  # the GGUF file, absolute
    sha256: str
    architecture: str  # general.architecture: llama, qwen2, ...
    file_type: str  # its quantisation, llama.cpp's name: Q4_1, Q8_0, F16, ...
    tensor_types: dict[str, int]  # how many tensors of each type it stores
    parameters: int  # the values its tensors hold (what the converted folder stores in fp32)
    folder: str = FOLDER  # the converted folder, relative to the workspace
    weights: str = "float32"  # what the converted folder stores
    format: str = "gguf"

    def record(self) -> dict[str, Any]:
        return asdict(self)


def read_source(path: Path, sha256: str) -> GgufSource:
    """The header facts of the GGUF file at ``path`` (whose sha256 the caller computed); a
    missing file, a file that is not GGUF, or no ``gguf`` package is refused in one line."""
    reader = _reader(path)
    types = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    architecture = _field(reader, "general.architecture")
    if not isinstance(architecture, str) or not types:
        raise BackboneError(f"{path} has no architecture or no tensors: give a complete GGUF model")
    return GgufSource(
        path=str(path.resolve()),
        sha256=sha256,
        architecture=architecture,
        file_type=_file_type(_field(reader, "general.file_type"), types),
        tensor_types=dict(sorted(types.items())),
        parameters=sum(int(tensor.n_elements) for tensor in reader.tensors),
    )


def check_file(path: Path) -> None:
    """Refuse a GGUF identity that names no file, before anything is read or written."""
    if not path.is_file():
        raise BackboneError(f"no GGUF file at {path}: give the path of a .gguf file")


def _reader(path: Path) -> Any:
    check_file(path)
    try:
        import gguf
    except ImportError as exc:
        raise BackboneError(f"reading a GGUF backbone needs the gguf package: {INSTALL}") from exc
    try:
        return gguf.GGUFReader(path)
    except (ValueError, OSError, IndexError, KeyError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackboneError(
            f"{path} is not a readable GGUF file ({first}): give a .gguf model file"
        ) from exc


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _file_type(code: Any, types: Counter) -> str:
    """llama.cpp's name of ``general.file_type`` (MOSTLY_Q4_1 -> Q4_1); without one, the type
    most of its tensors have."""
    import gguf

    try:
        name = gguf.LlamaFileType(int(code)).name
    except (TypeError, ValueError):
        return types.most_common(1)[0][0]
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def convert(source: GgufSource, target: Path) -> None:
    """Dequantise ``source`` with transformers and save it, with its tokenizer, as a transformers
    folder at ``target`` (written beside it, then renamed into place: never half there)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model, tokenizer = _read(source)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _save(model, staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read(source: GgufSource) -> tuple[Any, Any]:
    """The base model (every weight dequantised to fp32) and the tokenizer the GGUF holds."""
    import torch
    import transformers

    folder, name = Path(source.path).parent, Path(source.path).name
    # transformers 5 keeps a quantised weight packed where it has a kernel for it: ask for dense
    dense = {"quantization_config": transformers.GgufConfig(dequantize=True)}
    try:
        model = transformers.AutoModel.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, **dense
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (ImportError, OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BackboneError(  # ImportError: a gguf older than transformers needs
            f"transformers cannot read {source.path} ({source.architecture}, "
            f"{source.file_type}): {str(exc).splitlines()[0]}"
        ) from exc
    packed = [k for k, v in model.state_dict().items() if v.dtype != torch.float32]
    if packed:
        raise BackboneError(
            f"transformers left {len(packed)} weights of {source.path} packed ({packed[0]}, ...): "
            "convert the GGUF to a transformers folder and give that folder"
        )
    return model, tokenizer


def _save(model: Any, folder: Path) -> None:
    """The weights as safetensors and a config with no trace of the GGUF quantiser: a plain
    transformers folder, which loads without the gguf package."""
    from safetensors.torch import save_model

    folder.mkdir(parents=True)
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(model).__name__]
    config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})


def summary(source: dict[str, Any], dtype: str) -> str:
    """One line on a converted backbone: what it was, what it is now, what the fingerprint is
    over (``dtype``: what its weights are loaded in)."""
    how = "dequantised" if _quantised(source) else "converted"
    return (
        f"{how} from a {source['file_type']} GGUF ({source['path']}, sha256 "
        f"{source['sha256'][:12]}) into {source['folder']}/ ({source['weights']} safetensors, "
        f"converted once); the fingerprint is over the {how} weights as loaded ({dtype})"
    )


def _quantised(source: dict[str, Any]) -> bool:
    return any(kind not in UNQUANTISED for kind in source.get("tensor_types", {}))
