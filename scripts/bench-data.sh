#!/usr/bin/env bash
# Benchmark of a trial's data loading (a measurement, not a test): wall time
# and peak memory of
#   miss  one trial tokenising DATA into an empty cache (cache miss);
#   hit1  one trial on the cache it left, start to end (max_steps = 1);
#   hit4  four trials started together on that cache.
# Each trial is a tiny model (`smolsweep init-model`) on the CPU taking one
# step, so the figures are the data path's. Two memory figures per trial:
# max_rss_kb (VmHWM, as /usr/bin/time reports it) counts the cache pages a trial has
# mapped, which the trials of a node share in the page cache; peak_anon_kb
# (RssAnon, sampled every 50 ms) is the memory the trial holds alone.
#
# usage: scripts/bench-data.sh BIN DATA WORKDIR [MAX_SEQ_LEN]
#   e.g. python3 gen_sft.py 100000 /tmp/sft.jsonl
#        scripts/bench-data.sh target/release/smolsweep /tmp/sft.jsonl /tmp/bench-new
# Prints one line per trial: phase, trial, seconds, max_rss_kb, peak_anon_kb.
set -euo pipefail

BIN=$(realpath "$1")
DATA=$(realpath "$2")
WORK=$3
SEQ=${4:-1024}

rm -rf "$WORK"
mkdir -p "$WORK"
"$BIN" init-model --out "$WORK/model" --weights >/dev/null

# trial NAME: writes $WORK/NAME/trial.toml (all trials share one cache).
trial() {
    mkdir -p "$WORK/$1"
    cat >"$WORK/$1/trial.toml" <<EOF
model = "$WORK/model"
init = "pretrained"
data = ["$DATA"]
chat_template = "chatml"
max_seq_len = $SEQ
lr = 1e-3
batch_size = 1
micro_batch_size = 1
max_steps = 1
warmup_ratio = 0.0
seed = 1
output_dir = "$WORK/$1/out"
cache_dir = "$WORK/cache"
device = "cpu"
dtype = "f32"
EOF
}

# start NAME: runs the trial in the background, its pid in NAME/pid.
start() {
    local name=$1
    trial "$name"
    date +%s.%N >"$WORK/$name/start"
    "$BIN" train --config "$WORK/$name/trial.toml" --no-progress \
        >"$WORK/$name/events.jsonl" 2>"$WORK/$name/stderr.txt" &
    echo $! >"$WORK/$name/pid"
}

# sample NAME: samples the trial's memory until it exits (a zombie's status
# has no memory lines), then writes its figures.
sample() {
    local name=$1 pid anon=0 hwm=0 a h
    pid=$(cat "$WORK/$name/pid")
    while :; do
        read -r a h < <(awk '/^RssAnon:/{a=$2} /^VmHWM:/{h=$2} END{print a+0, h+0}' \
            "/proc/$pid/status" 2>/dev/null || echo "0 0")
        [ "$h" -eq 0 ] && break
        [ "$a" -gt "$anon" ] && anon=$a
        [ "$h" -gt "$hwm" ] && hwm=$h
        sleep 0.05
    done
    local secs
    secs=$(echo "$(date +%s.%N) - $(cat "$WORK/$name/start")" | bc)
    echo "seconds=$secs max_rss_kb=$hwm peak_anon_kb=$anon" >"$WORK/$name/figures"
}

# finish NAME...: the exit status of each (the parent shell waits).
finish() {
    local n rc
    for n in "$@"; do
        rc=0
        wait "$(cat "$WORK/$n/pid")" || rc=$?
        echo "$n rc=$rc $(cat "$WORK/$n/figures")" >"$WORK/$n/result"
    done
}

report() {
    local phase=$1
    shift
    for n in "$@"; do
        printf '%-5s %s\n' "$phase" "$(cat "$WORK/$n/result")"
    done
}

start miss
sample miss
finish miss
report miss miss

start hit1
sample hit1
finish hit1
report hit1 hit1

for i in 1 2 3 4; do start "hit4-$i"; done
for i in 1 2 3 4; do sample "hit4-$i" & done
wait_samplers() { while [ "$(ls "$WORK"/hit4-*/figures 2>/dev/null | wc -l)" -lt 4 ]; do sleep 0.1; done; }
wait_samplers
finish hit4-1 hit4-2 hit4-3 hit4-4
report hit4 hit4-1 hit4-2 hit4-3 hit4-4

du -b "$WORK"/cache/* | sed 's/^/cache /'
