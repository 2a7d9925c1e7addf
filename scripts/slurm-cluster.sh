#!/usr/bin/env bash
# A real single-node Slurm for the tests (DESIGN.md section 12): munge,
# slurmctld and slurmd from Debian's packages, started without systemd
# with everything (config, state, logs, sockets, pid files) under DIR.
# Two partitions (`debug`, default, and `high`, a higher PriorityTier that
# preempts it by requeue) and two fake GPUs as GRES.
#
#   scripts/slurm-cluster.sh install      apt-get the packages if missing
#   scripts/slurm-cluster.sh start DIR [PID]
#                                         start; prints `export SLURM_CONF=...`;
#                                         with PID, it stops by itself once PID exits
#                                         (and removes DIR)
#   scripts/slurm-cluster.sh stop DIR     stop whatever start started
#
# Clients find the cluster through SLURM_CONF=DIR/etc/slurm.conf.
set -euo pipefail

cmd=${1:-}
self=$(realpath "$0")
need() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null; }

case "$cmd" in
install)
    if need; then exit 0; fi
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "slurm-cluster: cannot install slurmctld slurmd slurm-client munge (not root, or no apt-get)" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null
    ;;
start)
    dir=$(realpath -m "${2:?usage: slurm-cluster.sh start DIR}")
    need || { echo "slurm-cluster: Slurm is not installed (scripts/slurm-cluster.sh install)" >&2; exit 1; }
    mkdir -p "$dir"/{etc,state,spool,log,run,munge,dev}
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
    # Ports from the directory, so that clusters of parallel runs differ.
    base=$(( 20000 + $(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 20000 ))
    [ -e "$dir/munge/munge.key" ] || { head -c 1024 /dev/urandom > "$dir/munge/munge.key"; chmod 400 "$dir/munge/munge.key"; }
    for i in 0 1; do [ -e "$dir/dev/gpu$i" ] || mknod "$dir/dev/gpu$i" c 1 3; done
    cat > "$dir/etc/slurm.conf" <<CONF
ClusterName=smolsweep-test
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmctldPort=$base
SlurmdPort=$((base + 1))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
MinJobAge=300
KillWait=5
ReturnToService=2
MpiDefault=none
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=high Nodes=$host MaxTime=INFINITE State=UP PriorityTier=10
CONF
    echo "Name=gpu File=$dir/dev/gpu[0-1]" > "$dir/etc/gres.conf"
    export SLURM_CONF="$dir/etc/slurm.conf"
    munged -f --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
    (setsid slurmctld -D -i -f "$SLURM_CONF" >>"$dir/log/slurmctld.out" 2>&1 & echo $! > "$dir/run/slurmctld.bg")
    (setsid slurmd -D -f "$SLURM_CONF" >>"$dir/log/slurmd.out" 2>&1 & echo $! > "$dir/run/slurmd.bg")
    for _ in $(seq 100); do
        if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
            if [ -n "${3:-}" ]; then
                # Stopped whatever happens to the process that started it.
                setsid bash -c "while kill -0 $3 2>/dev/null; do sleep 1; done; '$self' stop '$dir'; rm -rf '$dir'" \
                    </dev/null >/dev/null 2>&1 &
            fi
            echo "export SLURM_CONF=$SLURM_CONF"
            exit 0
        fi
        sleep 0.1
    done
    echo "slurm-cluster: the node did not become idle in 10 s; logs in $dir/log" >&2
    tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    "$0" stop "$dir"
    exit 1
    ;;
stop)
    dir=$(realpath -m "${2:?usage: slurm-cluster.sh stop DIR}")
    export SLURM_CONF="$dir/etc/slurm.conf"
    [ -f "$SLURM_CONF" ] && scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for f in slurmd.bg slurmctld.bg munged.pid; do
        [ -f "$dir/run/$f" ] || continue
        pid=$(cat "$dir/run/$f")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/run/$f"
    done
    ;;
*)
    echo "usage: $0 install | start DIR | stop DIR" >&2
    exit 2
    ;;
esac
