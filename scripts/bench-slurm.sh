#!/usr/bin/env bash
# Load of the Slurm backend: a sweep of N trials (default 200) of the
# tests' stand-in trial program on the single-node test cluster
# (scripts/slurm-cluster.sh). Prints the wall time, the squeue and sacct
# calls the orchestrator made (counted by wrappers on PATH) per minute,
# and the orchestrator's CPU time.
#
#   scripts/bench-slurm.sh [N]     (after `cargo build --release`)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-200}
bin=$PWD/target/release/smolsweep
work=$(mktemp -d /tmp/smolsweep-bench-slurm.XXXXXX)
scripts/slurm-cluster.sh start "$work/cluster" $$ >/dev/null
export SLURM_CONF=$work/cluster/etc/slurm.conf
trap 'scripts/slurm-cluster.sh stop "$work/cluster"; rm -rf "$work"' EXIT

# Wrappers that count the calls, then run the real command.
mkdir -p "$work/bin"
for c in squeue sacct; do
    real=$(command -v "$c")
    printf '#!/bin/sh\necho "$(date +%%s.%%N) %s" >> %q\nexec %q "$@"\n' "$c" "$work/calls" "$real" > "$work/bin/$c"
    chmod +x "$work/bin/$c"
done

fixtures=$PWD/tests/fixtures/sweeps
keys=$(grep -oE '^    [a-z_0-9]+:' crates/config/src/trial.rs | tr -d ' :' | paste -sd, -)
python=$(python3 -c 'import sys; print(sys.executable)')
printf '#!/bin/sh\nSTANDIN_TRIAL_KEYS=%s exec %q %q "$@"\n' "$keys" "$python" "$fixtures/standin/smolsweep-standin.py" > "$work/standin"
chmod +x "$work/standin"
lrs=$(python3 -c "print(', '.join(f'{1e-5 * (i + 1):.1e}' for i in range($n // 10)))")
cat > "$work/sweep.toml" <<TOML
[sweep]
name = "bench"
[train]
model = "$fixtures/tiny/model"
data = ["$fixtures/tiny/data/train.jsonl"]
max_steps = 20
checkpoint_every_steps = 10
device = "cpu"
max_seq_len = 64
chat_template = "chatml"
[grid]
lr = [$lrs]
batch_size = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
[resources]
backend = "slurm"
[resources.slurm]
gpus_per_trial = 0
max_concurrent = $n
TOML

start=$(date +%s.%N)
PATH=$work/bin:$PATH SMOLSWEEP_TRIAL_PROGRAM=$work/standin STANDIN_STEP_SECONDS=0.05 \
    /usr/bin/time -f '%U %S' -o "$work/cpu" "$bin" run "$work/sweep.toml" --no-progress 2> "$work/run.log" \
    || { tail -5 "$work/run.log"; exit 1; }
end=$(date +%s.%N)
read -r user sys < "$work/cpu"
python3 - "$start" "$end" "$user" "$sys" "$work/calls" "$n" <<'PY'
import sys
start, end, user, sys_, calls, n = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
lines = [l.split() for l in open(calls)]
minutes = (end - start) / 60
for c in ("squeue", "sacct"):
    k = sum(1 for l in lines if l[1] == c)
    print(f"{c}: {k} calls, {k / minutes:.1f} per minute")
print(f"{n} trials in {end - start:.1f} s; orchestrator CPU {user + sys_:.2f} s ({100 * (user + sys_) / (end - start):.1f}% of one core)")
PY
