#!/usr/bin/env bash
# The container image for GPU nodes (docker/Dockerfile), tagged
# smolsweep:VERSION and smolsweep:latest, and its check. Needs DOCKER_HOST
# to reach a daemon: the Makefile runs it under scripts/dockerd.sh.
#
#   scripts/docker-image.sh build BIN LIBTORCH   stage the context, build the image
#   scripts/docker-image.sh check BIN LIBTORCH   build, then inside the image (no network):
#                                                `smolsweep info` loads the image's own libtorch
#                                                and libtorch_cuda, every bundled library's
#                                                dependencies resolve, and a tiny model trains
#
# BIN is the release binary (make build), LIBTORCH the torch/ folder it was
# built against (scripts/libtorch.sh): pip's torch==2.11.0, whose CUDA
# libraries are the nvidia-* wheels beside it in site-packages.
#
# Why patchelf: the binary's rpath names the host's venv. The staged copy
# gets `$ORIGIN/../lib/torch/lib` instead, as DT_RPATH, which the loader
# searches before LD_LIBRARY_PATH. So the image always runs its own libtorch
# whatever environment a launcher passes in (pyxis and apptainer pass the
# job's LD_LIBRARY_PATH through), the binary needs no variables, and
# /opt/smolsweep copied out of the image still runs where it lands.
set -euo pipefail

cmd=${1:-}
bin=${2:-}
libtorch=${3:-}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
stage=$root/target/docker
ctx=$stage/context

usage() {
    echo "usage: $0 build|check BIN LIBTORCH" >&2
    exit 2
}
[ -n "$bin" ] && [ -n "$libtorch" ] || usage
[ -x "$bin" ] || { echo "docker-image: $bin is not an executable (make build)" >&2; exit 1; }
[ -f "$libtorch/lib/libtorch_cpu.so" ] || { echo "docker-image: $libtorch/lib has no libtorch_cpu.so" >&2; exit 1; }
command -v docker >/dev/null || { echo "docker-image: no docker client" >&2; exit 1; }

if ! command -v patchelf >/dev/null; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "docker-image: patchelf is missing and cannot be installed (not root, or no apt-get)" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends patchelf >/dev/null
fi

libtorch=$(realpath "$libtorch")
version=$("$bin" --version | awk '{print $2}')
revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
image=smolsweep:$version

# The binary must be the one built against this libtorch: the image
# would otherwise pair it with libraries of another version.
rpath=$(patchelf --print-rpath "$bin")
case ":$rpath:" in
*":$libtorch/lib:"*) ;;
*)
    echo "docker-image: $bin was linked against libtorch in '$rpath', not $libtorch/lib" >&2
    exit 1
    ;;
esac

# Hard links where the filesystem allows (no 4 GB copy), else copies.
link() { ln -f "$1" "$2" 2>/dev/null || cp -a "$1" "$2"; }

stage_context() {
    rm -rf "$ctx"
    mkdir -p "$ctx/bin" "$ctx/lib/torch/lib"
    cp "$bin" "$ctx/bin/smolsweep"
    patchelf --force-rpath --set-rpath '$ORIGIN/../lib/torch/lib' "$ctx/bin/smolsweep"
    # Shared libraries only: not the headers, and not libtorch_python.so
    # (Python's bindings; it needs a libpython the image does not have).
    local f
    for f in "$libtorch"/lib/*.so*; do
        case "$(basename "$f")" in libtorch_python.so) continue ;; esac
        link "$f" "$ctx/lib/torch/lib/"
    done
    local nvidia=$libtorch/../nvidia n=0 d
    if [ -d "$nvidia" ]; then
        for d in "$nvidia"/*/lib; do
            [ -d "$d" ] || continue
            mkdir -p "$ctx/lib/nvidia/$(basename "$(dirname "$d")")/lib"
            for f in "$d"/*.so*; do
                link "$f" "$ctx/lib/nvidia/$(basename "$(dirname "$d")")/lib/"
                n=$((n + 1))
            done
        done
    elif [ -f "$libtorch/lib/libtorch_cuda.so" ]; then
        # A libtorch archive (not pip's) has its CUDA libraries in lib/.
        :
    else
        echo "docker-image: $libtorch has no libtorch_cuda.so and no nvidia/ beside it: the image would be CPU-only" >&2
    fi
    echo "docker-image: context $(du -sh --apparent-size "$ctx" | cut -f1): binary, $(ls "$ctx/lib/torch/lib" | wc -l) libtorch and $n CUDA libraries" >&2
}

build() {
    local t0
    t0=$(date +%s)
    "$root/scripts/docker-base.sh"
    stage_context
    # The legacy builder: the Debian daemon has no buildx, and no stage
    # here needs BuildKit. The base is local; nothing is pulled.
    if ! DOCKER_BUILDKIT=0 docker build -f "$root/docker/Dockerfile" \
        --build-arg VERSION="$version" --build-arg REVISION="$revision" \
        -t "$image" -t smolsweep:latest "$ctx" >"$stage/build.log" 2>&1; then
        tail -20 "$stage/build.log" >&2
        echo "docker-image: docker build failed (log: $stage/build.log)" >&2
        exit 1
    fi
    rm -rf "$ctx"
    # Images of earlier builds that lost their tags to this one.
    docker image prune -f --filter label=smolsweep.image=1 >/dev/null
    echo "docker-image: built $image and smolsweep:latest in $(($(date +%s) - t0)) s ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.1f GB", $1 / 1e9}'))" >&2
}

fail() {
    echo "docker-image check: FAILED: $*" >&2
    exit 1
}

check() {
    local t0 err
    # Whether containers can run here at all (namespaces, cgroups): if
    # not, the check is skipped (77), which a failure of the image is not.
    "$root/scripts/docker-base.sh"
    if ! err=$(docker run --rm --network none smolsweep-base:bookworm true 2>&1); then
        echo "docker-image: containers cannot run here: $err" >&2
        exit 77
    fi
    build
    t0=$(date +%s)
    work=$(mktemp -d "${TMPDIR:-/tmp}/smolsweep-docker-check.XXXXXX")
    trap 'rm -rf "${work:-}"' EXIT
    # --network none: whatever runs must need nothing from outside.
    local run=(docker run --rm --network none -v "$work:/data" -e SMOLSWEEP_CACHE=/data/cache)

    "${run[@]}" "$image" info >"$work/info.txt" 2>"$work/info.err" ||
        fail "smolsweep info exited $? in the image: $(cat "$work/info.err")"
    sed 's/^/  | /' "$work/info.txt" >&2
    grep -q '^libtorch path   /opt/smolsweep/lib/torch/lib/libtorch_cpu.so$' "$work/info.txt" ||
        fail "smolsweep info did not load the image's libtorch (/opt/smolsweep/lib/torch/lib)"
    grep -q '^libtorch_cuda   loaded (/opt/smolsweep/lib/torch/lib/libtorch_cuda.so)$' "$work/info.txt" ||
        fail "libtorch_cuda.so (and the CUDA libraries it needs) did not load in the image"

    # Every bundled library's dependencies are in the image (each library
    # looked up as the process finds it: its siblings already loaded),
    # except the driver's, which the runtime mounts on a GPU node, and the
    # cluster fabric's (InfiniBand, MPI, PMIx, UCX, libfabric) that
    # NVSHMEM's and cuFile's optional transport plugins open only where it
    # exists, as in any pip install of torch.
    "${run[@]}" --entrypoint bash "$image" -c '
        LD_LIBRARY_PATH=$(ls -d /opt/smolsweep/lib/torch/lib /opt/smolsweep/lib/nvidia/*/lib | paste -sd:) \
            find /opt/smolsweep -type f -name "*.so*" -exec ldd {} + |
            awk "/not found/ {print \$1}" | sort -u' >"$work/ldd.txt" ||
        fail "ldd over the bundled libraries did not run in the image"
    local missing
    missing=$(grep -Evx 'lib(cuda|nvidia-ml|mlx5|ibverbs|rdmacm|mpi|oshmem|pmix|fabric|ucp|ucs)\.so\.[0-9]+' "$work/ldd.txt" || true)
    [ -z "$missing" ] || fail "libraries missing in the image: $(echo "$missing" | tr "\n" " ")"

    # A tiny model trained for a few steps, on the CPU.
    "${run[@]}" "$image" init-model --out /data/model --seed 0 >/dev/null 2>"$work/init.err" ||
        fail "init-model: $(tail -3 "$work/init.err")"
    "${run[@]}" "$image" demo-data --out /data/data --seed 0 >/dev/null 2>"$work/data.err" ||
        fail "demo-data: $(tail -3 "$work/data.err")"
    cat >"$work/trial.toml" <<'TOML'
model = "model"
init = "random"
data = ["data/sft/train.jsonl"]
max_seq_len = 128
lr = 1e-3
batch_size = 4
micro_batch_size = 4
max_steps = 3
output_dir = "out"
device = "cpu"
dtype = "f32"
TOML
    "${run[@]}" "$image" train --config /data/trial.toml >"$work/events.jsonl" 2>"$work/train.err" ||
        fail "train exited non-zero in the image: $(tail -5 "$work/train.err")"
    grep -q '"event": *"done", *"step": *3' "$work/events.jsonl" ||
        fail "train wrote no done event at step 3: $(tail -2 "$work/events.jsonl")"
    [ -s "$work/out/final/model.safetensors" ] || fail "train left no export in out/final"
    echo "docker-image check: ok ($image: info, libraries, 3 training steps; $(($(date +%s) - t0)) s of runs)" >&2
}

case "$cmd" in
build) build ;;
check) check ;;
*) usage ;;
esac
