#!/usr/bin/env bash
# The GPU device check: one prepared run on a GPU machine that prints one
# table. It runs a smolsweep binary built elsewhere (on a CPU machine)
# against the GPU machine's own libtorch (pip torch==2.11.0), builds
# nothing, and is sized to finish in under 8 minutes on one H100/H200:
#
#   info        smolsweep info: CUDA seen, the SDPA backend of the masked path
#   attention   varlen flash vs masked SDPA, one layer fwd+bwd at 8x2048:
#               relative error of output and gradients, ms each
#   train       SmolLM2-135M packed 2048, micro-batch 8/16/32, per attention
#               variant (and the per-tensor optimizer at 16): tokens/s, MFU,
#               peak GPU memory
#   dtype       bf16 vs f32 losses over 20 steps (same batch, same init)
#   graphs      `smolsweep train` at micro-batch 2 with cuda_graphs off and
#               on: tokens/s after the warm-up and capture, losses compared
#   sweep       a 4-trial sweep at 1, 2 and 4 slots per GPU and "auto" (packed
#               by measured memory): trials/hour, most trials at once
#   eval        HellaSwag examples/s, GSM8K generated tokens/s
#
# Usage (from the repository root):
#   scripts/device-check.sh [--bin target/release/smolsweep] [--model DIR] [--out DIR]
#   scripts/device-check.sh --dry-run     # CPU, tiny sizes, well under a minute
#
# The dry run uses a tiny random model on the CPU and the demo data, so the
# script can be checked where there is no GPU (`make device-check-dry`).
# Full JSON of every step goes to OUT/*.jsonl, logs to OUT/*.log.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$root/target/release/smolsweep
MODEL=$root/models/SmolLM2-135M-Instruct
OUT=${TMPDIR:-/tmp}/smolsweep-device-check
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run | --cpu) DRY=1 ;;
    --bin) BIN=$2; shift ;;
    --model) MODEL=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "device-check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
rm -rf "$OUT" && mkdir -p "$OUT"
TABLE=$OUT/table.txt
: >"$TABLE"
started=$(date +%s)

# The GPU machine's libtorch: the binary was linked against another
# machine's path, so point the loader at this one's pip torch.
if [ -z "${SMOLSWEEP_TORCH_LIB:-}" ]; then
  SMOLSWEEP_TORCH_LIB=$(python3 - <<'PY' 2>/dev/null
import importlib.util, os
s = importlib.util.find_spec("torch")
print(os.path.join(s.submodule_search_locations[0], "lib") if s else "")
PY
)
fi
[ -n "$SMOLSWEEP_TORCH_LIB" ] && export LD_LIBRARY_PATH=$SMOLSWEEP_TORCH_LIB:${LD_LIBRARY_PATH:-}
export SMOLSWEEP_LOG=${SMOLSWEEP_LOG:-warn}

if [ "$DRY" = 1 ]; then
  DEVICE=cpu DTYPE=f32 SEQ=128 MBS="2 4" STEPS=2 LOSS_SHAPE=2x64 LOSS_STEPS=3
  ATTN_SHAPE=2x128 LENS=16:64 ATTN_ITERS=2 SWEEP_STEPS=2 SWEEP_SLOTS="2 auto"
  HS_LIMIT=8 GSM_LIMIT=4 GSM_NEW=8 GSM_BATCH=2 PEAK=(--peak-tflops 1)
  MODEL=$OUT/tiny
  "$BIN" init-model --out "$MODEL" --seed 0 >/dev/null 2>"$OUT/init.log"
  INIT=(--random-init) SWEEP_INIT=random
else
  DEVICE=cuda DTYPE=bf16 SEQ=2048 MBS="8 16 32" STEPS=5 LOSS_SHAPE=8x1024 LOSS_STEPS=20
  ATTN_SHAPE=8x2048 LENS=64:1024 ATTN_ITERS=10 SWEEP_STEPS=20 SWEEP_SLOTS="1 2 4 auto"
  HS_LIMIT=400 GSM_LIMIT=64 GSM_NEW=256 GSM_BATCH=64 PEAK=()
  INIT=() SWEEP_INIT=pretrained
fi
"$BIN" demo-data --out "$OUT/data" --seed 0 >/dev/null 2>"$OUT/data.log"

row() { printf '%s|%s|%s\n' "$1" "$2" "$3" >>"$TABLE"; }
# The last JSON line of a file, fields picked by a Python expression over `d`.
pick() { python3 -c "import json,sys; d=[json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')][-1]; print($2)" "$1" 2>/dev/null || echo "n/a"; }
# Runs a step with a time limit, its stdout to OUT/NAME.jsonl.
step() {
  local name=$1 limit=$2; shift 2
  timeout "$limit" "$@" >"$OUT/$name.jsonl" 2>"$OUT/$name.log"
}

# info
"$BIN" info >"$OUT/info.txt" 2>&1
row info "cuda available" "$(awk '/^cuda available/{print $3}' "$OUT/info.txt")"
row info "cuda devices" "$(awk '/^cuda devices/{print $3}' "$OUT/info.txt")"
row info "gpu" "$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1 || echo none)"
row info "libtorch" "$(awk '/^libtorch  /{print $2}' "$OUT/info.txt")"
row info "sdpa causal" "$(awk '/^sdpa backend/{print $3}' "$OUT/info.txt")"
row info "sdpa masked (packed SDPA path)" "$(awk '/^sdpa masked/{print $3}' "$OUT/info.txt")"

# attention: one layer, varlen vs masked
if step attention 120 "$BIN" bench attention --device "$DEVICE" --shape "$ATTN_SHAPE" --sample-lens "$LENS" --iters "$ATTN_ITERS"; then
  f=$OUT/attention.jsonl
  row attention "masked SDPA ($(pick "$f" 'd["masked_sdpa_backend"]')) fwd+bwd ms/layer" "$(pick "$f" 'round(d["masked_ms"],3)')"
  row attention "varlen flash fwd+bwd ms/layer" "$(pick "$f" 'round(d["varlen_ms"],3) if d["varlen_ms"] else "unavailable: "+d["varlen_unavailable"]')"
  row attention "varlen speed-up" "$(pick "$f" '"%.2fx" % d["varlen_speedup"] if d["varlen_speedup"] else "-"')"
  row attention "rel err out / dq / dk / dv" "$(pick "$f" '" / ".join("%.1e" % d["rel_err"][k] for k in ("out","grad_q","grad_k","grad_v")) if d["rel_err"] else "-"')"
else
  row attention "bench attention" "FAILED (see $OUT/attention.log)"
fi

# train: tokens/s, MFU, peak memory per variant
train_row() {
  local name=$1 label=$2; shift 2
  if step "$name" 150 "$BIN" bench train --model "$MODEL" "${INIT[@]}" --device "$DEVICE" --dtype "$DTYPE" \
      --packed --sample-lens "$LENS" --steps "$STEPS" "${PEAK[@]}" "$@"; then
    row train "$label" "$(pick "$OUT/$name.jsonl" '"%.0f tok/s, MFU %s, peak %s MiB (%s)" % (d["tokens_per_s"], "%.1f%%" % (100*d["mfu"]) if d["mfu"] is not None else "n/a", "%.0f" % d["peak_gpu_allocated_mib"] if d["peak_gpu_allocated_mib"] is not None else "-", d["attention"])')"
  else
    row train "$label" "FAILED (see $OUT/$name.log; OOM?)"
  fi
}
for mb in $MBS; do
  for attn in varlen sdpa; do
    [ "$DRY" = 1 ] && [ "$attn" = varlen ] && continue
    train_row "train-$attn-$mb" "mb $mb x $SEQ, $attn, fused AdamW" --shape "${mb}x$SEQ" --attention "$attn"
  done
done
mid=$(echo $MBS | awk '{print $2}')
train_row "train-pertensor-$mid" "mb $mid x $SEQ, auto, per-tensor AdamW" --shape "${mid}x$SEQ" --attention auto --optimizer per-tensor
row train "flops/token" "$(pick "$OUT/train-sdpa-$mid.jsonl" 'd["flops_formula"]')"

# dtype: bf16 vs f32 over the same steps
if [ "$DRY" = 0 ]; then
  step loss-bf16 120 "$BIN" bench train --model "$MODEL" --device "$DEVICE" --dtype bf16 --shape "$LOSS_SHAPE" --steps "$LOSS_STEPS" --optimizer fused
  step loss-f32 120 "$BIN" bench train --model "$MODEL" --device "$DEVICE" --dtype f32 --shape "$LOSS_SHAPE" --steps "$LOSS_STEPS" --optimizer fused
else
  step loss-bf16 60 "$BIN" bench train --model "$MODEL" "${INIT[@]}" --device cpu --dtype bf16 --shape "$LOSS_SHAPE" --steps "$LOSS_STEPS"
  step loss-f32 60 "$BIN" bench train --model "$MODEL" "${INIT[@]}" --device cpu --dtype f32 --shape "$LOSS_SHAPE" --steps "$LOSS_STEPS"
fi
row dtype "loss f32 first -> last ($LOSS_STEPS+1 steps)" "$(pick "$OUT/loss-f32.jsonl" '"%.4f -> %.4f" % (d["losses"][0], d["losses"][-1])')"
row dtype "loss bf16 first -> last" "$(pick "$OUT/loss-bf16.jsonl" '"%.4f -> %.4f" % (d["losses"][0], d["losses"][-1])')"
row dtype "max abs(bf16 - f32) over steps" "$(python3 -c "
import json,sys
a,b=[[json.loads(l) for l in open(p) if l.startswith('{')][-1]['losses'] for p in sys.argv[1:3]]
print('%.4f' % max(abs(x-y) for x,y in zip(a,b)))" "$OUT/loss-bf16.jsonl" "$OUT/loss-f32.jsonl" 2>/dev/null || echo n/a)"

# graphs: the trainer itself (not the bench's step) at a small micro-batch,
# where launching kernels one by one costs most, with cuda_graphs off/on.
if [ "$DRY" = 1 ]; then GRAPH_STEPS=4; else GRAPH_STEPS=40; fi
for graphs in false true; do
  g=$OUT/graphs-$graphs
  mkdir -p "$g"
  cat >"$g/trial.toml" <<EOF
model = "$MODEL"
init = "$SWEEP_INIT"
data = ["$OUT/data/sft/train.jsonl"]
chat_template = "chatml"
output_dir = "$g/out"
max_seq_len = $SEQ
packing = true
lr = 1e-5
batch_size = 8
micro_batch_size = 2
max_steps = $GRAPH_STEPS
checkpoint_every_steps = 1000
keep_checkpoints = 1
device = "$DEVICE"
dtype = "$DTYPE"
cuda_graphs = $graphs
EOF
  if ! timeout 180 env SMOLSWEEP_LOG=info "$BIN" train --config "$g/trial.toml" >"$g/events.jsonl" 2>"$g/train.log"; then
    row graphs "train, cuda_graphs = $graphs" "FAILED (see $g/train.log)"
  fi
done
# Steps 1-5 hold the warm-up and the captures: the median of the rest.
row graphs "tokens/s, cuda_graphs off / on (median after step 5)" "$(python3 -c "
import json, statistics, sys
def rate(p):
    s = [e for e in (json.loads(l) for l in open(p) if l.startswith('{')) if 'tokens_per_s' in e]
    return statistics.median([e['tokens_per_s'] for e in (s[5:] or s)])
a, b = rate(sys.argv[1]), rate(sys.argv[2])
print('%.0f / %.0f (%.2fx)' % (a, b, b / a))" "$OUT/graphs-false/events.jsonl" "$OUT/graphs-true/events.jsonl" 2>/dev/null || echo n/a)"
row graphs "max abs loss difference, off vs on" "$(python3 -c "
import json, sys
def losses(p):
    return [e['loss'] for e in (json.loads(l) for l in open(p) if l.startswith('{')) if 'tokens_per_s' in e]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
print('%.2e over %d steps' % (max(abs(x - y) for x, y in zip(a, b)), min(len(a), len(b))))" "$OUT/graphs-false/events.jsonl" "$OUT/graphs-true/events.jsonl" 2>/dev/null || echo n/a)"
row graphs "micro-batches (cuda_graphs = true)" "$(grep 'micro-batches by how they ran' "$OUT/graphs-true/train.log" | grep -Eo '(captured|replayed|warmup|eager)=[0-9]+' | tr '\n' ' ')$(grep -o 'cuda_graphs is on but unused.*' "$OUT/graphs-true/train.log" | head -1 | cut -c1-90)"

# sweep: 4 trials at 1, 2, 4 slots per GPU, and packed by memory ("auto")
for slots in $SWEEP_SLOTS; do
  slots_toml=$slots
  [ "$slots" = auto ] && slots_toml='"auto"'

  sw=$OUT/sweep-$slots
  mkdir -p "$sw"
  cat >"$sw/sweep.toml" <<EOF
[sweep]
name = "device-check-$slots"
output_dir = "$sw/run"
[train]
model = "$MODEL"
init = "$SWEEP_INIT"
data = ["$OUT/data/sft/train.jsonl"]
chat_template = "chatml"
max_seq_len = $SEQ
packing = true
max_steps = $SWEEP_STEPS
micro_batch_size = "auto"
checkpoint_every_steps = 1000
keep_checkpoints = 1
device = "$DEVICE"
dtype = "$DTYPE"
[grid]
lr = [1e-5, 3e-5]
batch_size = [8, 16]
[eval]
tasks = ["arc_easy"]
data_dir = "$OUT/data"
limit = 8
device = "$DEVICE"
[resources]
gpus = "$( [ "$DRY" = 1 ] && echo '[]' || echo auto)"
slots_per_gpu = $slots_toml
max_retries = 0
EOF
  sed -i 's/^gpus = "\[\]"/gpus = []/; s/^gpus = "auto"/gpus = "auto"/' "$sw/sweep.toml"
  t0=$(date +%s.%N)
  if timeout 240 "$BIN" run "$sw/sweep.toml" --no-progress >"$sw/run.log" 2>&1; then
    t1=$(date +%s.%N)
    # Most trials at once: from the record's claim and finish times.
    row sweep "4 trials, $slots slot(s)/GPU" "$(python3 -c "
import sqlite3, sys
s = float(sys.argv[2]) - float(sys.argv[1])
c = sqlite3.connect(sys.argv[3])
rows = c.execute(\"SELECT e.at, e.kind FROM events e WHERE e.kind IN ('claimed', 'finished', 'requeued_out_of_memory') ORDER BY e.id\").fetchall()
now = most = 0
for _, k in rows:
    now += 1 if k == 'claimed' else -1
    most = max(most, now)
ooms = sum(1 for _, k in rows if k == 'requeued_out_of_memory')
print('%.1f s, %.0f trials/hour, at most %d at once%s' % (s, 4*3600/s, most, ', %d out of memory retried' % ooms if ooms else ''))
" "$t0" "$t1" "$sw/run/sweep.db" 2>/dev/null || echo n/a)"
  else
    row sweep "4 trials, $slots slot(s)/GPU" "FAILED (see $sw/run.log)"
  fi
done

# eval throughput (the dry run's random model has no weights file: it
# evaluates a trial's export instead)
if [ "$DRY" = 1 ]; then
  MODEL=$(dirname "$(find "$OUT"/sweep-*/run/trials -path '*/out/final/model.safetensors' | head -1)")
fi
if timeout 120 "$BIN" eval --model "$MODEL" --device "$DEVICE" --task hellaswag --data-dir "$OUT/data" \
    --limit "$HS_LIMIT" --out "$OUT/hellaswag.json" >"$OUT/hellaswag.log" 2>&1; then
  row eval "HellaSwag examples/s" "$(python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['tasks']['hellaswag']; print('%.1f (n=%d, %.1f s)' % (r['n']/r['wall_s'], r['n'], r['wall_s']))" "$OUT/hellaswag.json" 2>/dev/null || echo n/a)"
else
  row eval "HellaSwag examples/s" "FAILED (see $OUT/hellaswag.log)"
fi
if step gsm8k 150 "$BIN" bench generate --model "$MODEL" --device "$DEVICE" --task gsm8k --data-dir "$OUT/data" \
    --limit "$GSM_LIMIT" --batch-size "$GSM_BATCH" --max-new-tokens "$GSM_NEW" --engine both; then
  f=$OUT/gsm8k.jsonl
  row eval "GSM8K generated tok/s, continuous" "$(python3 -c "import json,sys; d=[json.loads(l) for l in open(sys.argv[1])]; print(' '.join('%.0f' % x['generated_tokens_per_s'] for x in d if x.get('engine')=='continuous'))" "$f")"
  row eval "GSM8K generated tok/s, static batches" "$(python3 -c "import json,sys; d=[json.loads(l) for l in open(sys.argv[1])]; print(' '.join('%.0f' % x['generated_tokens_per_s'] for x in d if x.get('engine')=='static'))" "$f")"
else
  row eval "GSM8K generated tok/s" "FAILED (see $OUT/gsm8k.log)"
fi

row total "wall time" "$(($(date +%s) - started)) s ($([ "$DRY" = 1 ] && echo 'dry run, CPU, tiny sizes' || echo "$DEVICE"))"
echo
echo "== smolsweep device check =="
awk -F'|' '{printf "%-10s %-52s %s\n", $1, $2, $3}' "$TABLE"
# Failure rows make the exit status 1 (the table is printed either way).
! grep -q FAILED "$TABLE"
