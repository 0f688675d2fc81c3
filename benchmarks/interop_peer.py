"""AdapterHub's side of ``make interop-check``: load a folder contlearn exported into
``AutoAdapterModel`` with ``load_adapter`` (its head too), apply the LayerNorm file if there is
one, and write the dev logits. Run it with the peer's own interpreter (benchmarks/peer/.venv).

Example:
    benchmarks/peer/.venv/bin/python benchmarks/interop_peer.py --backbone DIR \\
        --adapter ./rte-adapter --texts texts.json --max-length 64 --out logits.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

NORMS = "contlearn_layer_norms.safetensors"


def load(backbone: str, adapter: Path):
    """The backbone with flexible heads, the exported adapter and head loaded and active."""
    from adapters import AutoAdapterModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model = AutoAdapterModel.from_pretrained(backbone)
    name = model.load_adapter(str(adapter), use_safetensors=True, set_active=True)
    if (adapter / NORMS).is_file():  # the task's own LayerNorms (export --include-norms)
        model.load_state_dict(load_file(adapter / NORMS), strict=False)
    model.active_head = name
    return model.eval()


def logits(model, tokenizer, texts: list[str], max_length: int, batch: int = 32) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            enc = tokenizer(
                texts[start : start + batch],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            out.append(model(**enc).logits)
    return torch.cat(out)


def main(argv: list[str] | None = None) -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--adapter", type=Path, required=True)
    parser.add_argument("--texts", type=Path, required=True, help="A JSON list of strings.")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = load(args.backbone, args.adapter)
    tokenizer = AutoTokenizer.from_pretrained(args.backbone)
    texts = json.loads(args.texts.read_text())
    save_file({"logits": logits(model, tokenizer, texts, args.max_length)}, args.out)


if __name__ == "__main__":
    main()
