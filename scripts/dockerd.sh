#!/usr/bin/env bash
# A Docker daemon for the duration of one command (DESIGN.md section 12):
# the one already running if there is one ($DOCKER_HOST, the system's
# socket, or one this script started for another command that is still
# running), else dockerd started by hand, without systemd, with its state
# under DIR. The last command to leave a daemon this script started stops
# it, so one `make test` starts at most one and never leaves it behind.
#
#   scripts/dockerd.sh install          apt-get docker.io if dockerd is missing
#   scripts/dockerd.sh run CMD ARGS...  run CMD with DOCKER_HOST set; its exit status
#
# DIR is $SMOLSWEEP_DOCKERD_DIR, default /var/lib/smolsweep-docker: one per
# machine, not per checkout, so the images (4 GB with libtorch's CUDA
# libraries) and the build cache are shared, and apart from the data of a
# system docker.service that may start later.
#
# Exit status 77 (the automake convention for "skipped") means no daemon
# can run here, with the reason on stderr: not root, no dockerd, or a
# dockerd that does not come up (no kernel support). Callers decide whether
# that is a skip (the CI check) or an error (`make docker`).
set -euo pipefail

cmd=${1:-}
dir=${SMOLSWEEP_DOCKERD_DIR:-/var/lib/smolsweep-docker}
sock=$dir/docker.sock

skip() {
    echo "dockerd: $*" >&2
    exit 77
}

# True when a daemon answers at the given DOCKER_HOST (empty: the client's default).
answers() {
    DOCKER_HOST=$1 timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# Starts our dockerd and waits until it answers. Called under start.lock.
start_daemon() {
    [ "$(id -u)" -eq 0 ] || skip "cannot start dockerd: not root (and no running Docker daemon answered)"
    command -v dockerd >/dev/null || skip "cannot start dockerd: not installed (scripts/dockerd.sh install)"
    mkdir -p "$dir/root" "$dir/exec"
    # No iptables and no bridge: these machines have neither, and nothing
    # smolsweep runs needs a network (images build with --pull=never).
    setsid dockerd --data-root "$dir/root" --exec-root "$dir/exec" -H "unix://$sock" \
        --pidfile "$dir/dockerd.pid" --iptables=false --ip6tables=false --bridge=none \
        </dev/null >>"$dir/dockerd.log" 2>&1 8>&- 9>&- &
    local pid=$!
    for _ in $(seq 150); do
        if answers "unix://$sock"; then
            echo "$pid" >"$dir/started"
            echo "dockerd: started (pid $pid, state in $dir)" >&2
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill "$pid" 2>/dev/null || true
    tail -5 "$dir/dockerd.log" >&2 || true
    skip "dockerd did not come up in 30 s (log: $dir/dockerd.log)"
}

stop_daemon() {
    local pid
    pid=$(cat "$dir/started")
    rm -f "$dir/started"
    kill "$pid" 2>/dev/null || return 0
    # dockerd stops its containers and its containerd; give it time.
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || { echo "dockerd: stopped (pid $pid)" >&2; return 0; }
        sleep 0.2
    done
    echo "dockerd: pid $pid did not stop in 30 s; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
}

case "$cmd" in
install)
    if command -v dockerd >/dev/null && command -v docker >/dev/null; then exit 0; fi
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        skip "cannot install docker.io (not root, or no apt-get)"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >/dev/null ||
        skip "apt-get install docker.io failed"
    ;;
run)
    shift
    [ $# -gt 0 ] || { echo "usage: $0 run CMD ARGS..." >&2; exit 2; }
    command -v docker >/dev/null || skip "no docker client (scripts/dockerd.sh install)"
    # A daemon the caller or the system already runs is used as it is.
    if answers "${DOCKER_HOST:-}"; then
        exec "$@"
    fi
    [ "$(id -u)" -eq 0 ] || skip "no Docker daemon answers and only root can start one"
    mkdir -p "$dir"
    # users.lock is held shared by every command using our daemon;
    # start.lock orders starting and stopping, so a command never finds a
    # daemon that is about to stop.
    exec 8>"$dir/start.lock" 9>"$dir/users.lock"
    flock 8
    flock -s 9
    if ! answers "unix://$sock"; then
        rm -f "$dir/started"
        start_daemon
    fi
    flock -u 8
    export DOCKER_HOST=unix://$sock
    # Leaving, however CMD ends (Ctrl-C included): the last user of a
    # daemon this script started stops it.
    leave() {
        flock 8
        flock -u 9
        if [ -f "$dir/started" ] && flock -x -n 9; then
            stop_daemon
        fi
    }
    trap leave EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    "$@" 8>&- 9>&-
    ;;
*)
    echo "usage: $0 install | run CMD ARGS..." >&2
    exit 2
    ;;
esac
