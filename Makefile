# ds2bench — the Makefile only forwards to `python -m harness` / `python -m results`.
# Set-up (venv, pinned dependencies, embedded corpus) happens on first use.
PY      := .venv/bin/python
BENCH   ?= tiny
CARDS   ?= 1
RUNS    ?= runs
SEED    ?=
REPEAT  ?= 1
SET     ?=
RESUME  ?=
DEVICE  ?= auto
NNODES  ?= 1
NODE_RANK ?= 0
RDZV_ENDPOINT ?=
LOG     ?= $(RUNS)
MANIFEST ?= data/embedded/dev.jsonl
LIBRISPEECH ?= $(PYTORCH_TRAIN_DATASET)
PYTEST_ARGS ?=
SEEDCMP ?=
DIVISION ?=
RCP_BATCHES ?= 8 16
COMPAT_TORCH ?= 2.1.2 2.4.1
COMPAT_NUMPY ?= 1.26.4

export PYTHONUNBUFFERED := 1

BENCH_FLAGS = --benchmark $(BENCH) --cards $(CARDS) --runs $(RUNS) --device $(DEVICE) \
  --nnodes $(NNODES) --node-rank $(NODE_RANK) --repeat $(REPEAT) \
  $(if $(SEED),--seed $(SEED)) $(if $(DIVISION),--division $(DIVISION)) $(if $(RDZV_ENDPOINT),--rdzv-endpoint $(RDZV_ENDPOINT)) \
  $(foreach s,$(SET),--set $(s))

.PHONY: help setup bench doctor device-check scaling check results test test-all verify data corpus eval perf seed-cmp seed-cmp-setup rcp test-compat compat-envs clean-compat clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

setup: .venv/.ds2bench-ready ## virtual env + dependencies (reuses the torch/numpy of the system or the active venv)

.venv/.ds2bench-ready: requirements.txt constraints.txt scripts/setup_env.sh scripts/effective_constraints.py
	bash scripts/setup_env.sh

corpus: setup ## generate + verify the embedded speech corpus (data/embedded)
	$(PY) -m harness data --out data/embedded

bench: setup ## run BENCH (default tiny) on CARDS cards; RESUME=<run dir> continues a run
ifeq ($(RESUME),)
	$(PY) -m harness bench $(BENCH_FLAGS)
else
	$(PY) -m harness bench --resume $(RESUME) --cards $(CARDS) --device $(DEVICE)
endif

doctor: setup ## the stack a run would use (torch, vendor stack, devices, backend, precision, threads, disk, deps); non-zero with the fix
	$(PY) -m harness doctor --device $(DEVICE) --cards $(CARDS) --runs $(RUNS)

device-check: setup ## <= 5 min on one GPU: CPU/GPU parity, NCCL+DDP, AMP dtypes, LSTM 3x2560 speed, e2e bench + check; without one: its CPU part
	$(PY) scripts/device_check.py --runs $(RUNS)

scaling: setup ## the same benchmark for each card count: make scaling CARDS="1 2 4"
	$(PY) -m harness scaling $(filter-out --cards $(CARDS),$(BENCH_FLAGS)) --sweep "$(CARDS)"

check: setup ## MLPerf compliance of every mlperf.log under LOG (file or dir, default RUNS); several runs are judged as a set
	$(PY) -m harness check --log $(LOG)

verify: setup ## decode and check every utterance of MANIFEST, write MANIFEST.verified
	$(PY) -m harness verify --manifest $(MANIFEST)

data: setup ## verified LibriSpeech manifests from a local copy: make data LIBRISPEECH=/path (else the embedded corpus)
ifeq ($(strip $(LIBRISPEECH)),)
	$(PY) -m harness data --out data/embedded
else
	$(PY) -m harness data --librispeech $(LIBRISPEECH) --out data/librispeech
endif

rcp: setup ## reference convergence points of BENCH: REPEAT seeds (default 5) at global batches RCP_BATCHES
	$(PY) -m harness rcp run --benchmark $(BENCH) --seeds $(if $(filter 1,$(REPEAT)),5,$(REPEAT)) --batches $(RCP_BATCHES) --runs $(RUNS)/rcp

results: setup ## tables + plots of every run under RUNS (RUNS/report/)
	$(PY) -m results --runs $(RUNS)

perf: setup ## performance ratios: throughput, MFU, data-pipeline and logging overheads
	$(PY) -m harness perf

seed-cmp-setup: setup .venv-seed-libs/.ready ## librosa for the seed's data loader, in .venv-seed-libs (not the project venv)

.venv-seed-libs/.ready: requirements-seed.txt
	$(PY) -m pip install -q --target .venv-seed-libs -r requirements-seed.txt
	touch $@

seed-cmp: seed-cmp-setup corpus ## the seed's trainer vs ds2bench, same data and model: make seed-cmp SEED_TRAINER=<checkout>
	$(PY) -m harness seedcmp --runs $(RUNS) $(if $(SEED_TRAINER),--seed-trainer $(SEED_TRAINER)) $(SEEDCMP)

test: setup ## the test suite (fast tests + one real end-to-end run)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-all: setup ## every test, the slow end-to-end ones included
	$(PY) -m pytest -q -m "slow or not slow" $(PYTEST_ARGS)

test-compat: ## the suite on real torch 2.1.2 / 2.4.1 + NumPy 1.26 image-like venvs (.venv-compat/, docs/COMPAT.md)
	COMPAT_TORCH="$(COMPAT_TORCH)" COMPAT_NUMPY=$(COMPAT_NUMPY) PYTEST_ARGS="$(PYTEST_ARGS)" bash scripts/test_compat.sh

compat-envs: ## only build the image-like venvs of test-compat (about 4.7 GB each)
	for t in $(COMPAT_TORCH); do bash scripts/compat_image.sh $$t $(COMPAT_NUMPY) || exit 1; done

clean-compat: ## remove the test-compat venvs (.venv-compat/)
	rm -rf .venv-compat

clean: ## remove runs and caches (keeps the venv and the corpus)
	rm -rf $(RUNS) .pytest_cache
