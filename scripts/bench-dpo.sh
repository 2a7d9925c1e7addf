#!/usr/bin/env bash
# Benchmark of DPO training (a measurement, not a test): per optimizer step
# the real tokens/s, wall and CPU seconds (user + sys: the machine may be
# shared), the process's peak RSS, and the reference log-prob cache build
# time, for
#   smolsweep  forward = "separate"      (the paper's, two forwards a step)
#   smolsweep  forward = "concatenated"  (chosen and rejected as one batch)
#   trl        DPOTrainer, loss_type sigmoid_norm (TRL always concatenates)
# on the same model, pairs, batch, max length and beta, in one run, one
# after the other, each with a fresh cache. Both use dpo_norm / sigmoid_norm
# (the same loss), fp32 on the CPU, no gradient checkpointing, the
# reference log-probs precomputed before the first step and no reference
# model kept. The first step of each is a warm-up, left out of the medians.
#
# usage: scripts/bench-dpo.sh [BIN] [MODEL] [WORKDIR]
#   defaults: target/release/smolsweep, models/SmolLM2-135M-Instruct, /tmp/bench-dpo
#   env: PAIRS (32), BATCH (4), MAX_LEN (256), STEPS (6), BETA (5), PYTHON (.venv/bin/python,
#        with scripts/reference/requirements.txt installed: trl, transformers, datasets)
# Prints one JSON object per configuration, then a table.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$(realpath "${1:-$root/target/release/smolsweep}")
MODEL=$(realpath "${2:-$root/models/SmolLM2-135M-Instruct}")
WORK=${3:-/tmp/bench-dpo}
PAIRS=${PAIRS:-32}
BATCH=${BATCH:-4}
MAX_LEN=${MAX_LEN:-256}
STEPS=${STEPS:-6}
BETA=${BETA:-5}
PYTHON=${PYTHON:-$root/.venv/bin/python}
ref=$root/scripts/reference/bench_dpo_trl.py

rm -rf "$WORK"
mkdir -p "$WORK"
"$PYTHON" "$ref" data "$MODEL" "$WORK/pairs.jsonl" --pairs "$PAIRS"
common=(--batch "$BATCH" --max-len "$MAX_LEN" --steps "$STEPS" --beta "$BETA" --loss sigmoid_norm)
{
    for fwd in separate concatenated; do
        "$PYTHON" "$ref" smolsweep "$MODEL" "$WORK/pairs.jsonl" --bin "$BIN" --forward "$fwd" \
            --work "$WORK/smolsweep" "${common[@]}"
    done
    TQDM_DISABLE=1 "$PYTHON" "$ref" trl "$MODEL" "$WORK/pairs.jsonl" "${common[@]}" 2>"$WORK/trl.stderr"
} | grep --line-buffered "^{\"impl\"" | tee "$WORK/results.jsonl"
"$PYTHON" - "$WORK/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\n| impl | forward | tokens/step | tokens/s | wall s/step | CPU s/step | peak RSS MiB | ref cache s |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    ref = "-" if r["ref_cache_s"] is None else f'{r["ref_cache_s"]:.1f}'
    print(f'| {r["impl"]} | {r["forward"]} | {r["tokens_per_step"]:.0f} | {r["tokens_per_s"]:.1f} | '
          f'{r["wall_s_per_step"]:.2f} | {r["cpu_s_per_step"]:.2f} | {r["peak_rss_mib"]:.0f} | {ref} |')
PY
