#!/usr/bin/env bash
# MMLU-Pro (MCF) and BBH examples/s: `smolsweep eval` beside
# lm-evaluation-harness 0.4.13's HF backend on the same model and items, in
# one run (scripts/reference/mmlu_bbh_bench.py). PYTHON: a venv with
# lm_eval==0.4.13 and accelerate (see scripts/reference/mmlu_bbh_reference.py).
#
#   PYTHON=.venv/bin/python scripts/bench-mmlu-bbh.sh [models/SmolLM2-135M-Instruct] [--tasks bbh_smollm2,mmlu_pro] [--bbh-limit 8]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PYTHON:=python3}"
cargo build --release --locked -p smolsweep
exec "$PYTHON" scripts/reference/mmlu_bbh_bench.py "$@"
