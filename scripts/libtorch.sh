#!/usr/bin/env bash
# Prints the libtorch directory smolsweep builds against (a torch/ folder
# with include/ and lib/), installing torch==2.11.0 from PyPI into the
# project's .venv when no compatible one is found. Progress goes to stderr,
# the path alone to stdout.
#
# Order: $LIBTORCH if set; the active Python environment (VIRTUAL_ENV /
# CONDA_PREFIX) if it has torch 2.11; the project's .venv; else create
# .venv and install torch there (about 4.6 GB with its CUDA libraries).
set -euo pipefail
WANT=2.11.0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${SMOLSWEEP_VENV:-$root/.venv}

if [ -n "${LIBTORCH:-}" ]; then
  if [ ! -d "$LIBTORCH/lib" ]; then
    echo "LIBTORCH=$LIBTORCH has no lib/ directory" >&2
    exit 1
  fi
  echo "$LIBTORCH"
  exit 0
fi

# Finds torch without importing it (importing takes seconds) and prints its
# directory when the version is $WANT.
torch_dir() {
  "$1" - "$WANT" <<'PY' 2>/dev/null
import importlib.util, os, re, sys
spec = importlib.util.find_spec("torch")
if spec and spec.submodule_search_locations:
    d = list(spec.submodule_search_locations)[0]
    try:
        text = open(os.path.join(d, "version.py")).read()
    except OSError:
        sys.exit(0)
    m = re.search(r"__version__\s*=\s*['\"]([^'\"+]+)", text)
    if m and m.group(1) == sys.argv[1] and os.path.isdir(os.path.join(d, "lib")):
        print(d)
PY
}

for env in "${VIRTUAL_ENV:-}" "${CONDA_PREFIX:-}"; do
  if [ -n "$env" ] && [ -x "$env/bin/python" ]; then
    d=$(torch_dir "$env/bin/python" || true)
    if [ -n "$d" ]; then echo "$d"; exit 0; fi
  fi
done

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  python3 -m venv "$venv" >&2
fi
d=$(torch_dir "$venv/bin/python" || true)
if [ -z "$d" ]; then
  echo "installing torch==$WANT into $venv (libtorch for tch 0.24)" >&2
  "$venv/bin/pip" install --quiet "torch==$WANT" >&2
  d=$(torch_dir "$venv/bin/python" || true)
fi
if [ -z "$d" ]; then
  echo "torch==$WANT did not install into $venv" >&2
  exit 1
fi
# crates/kernels compiles its CUDA-graph calls against ATen/cuda/CUDAGraph.h,
# which includes the CUDA runtime headers; pip's nvidia-cuda-runtime (a torch
# dependency) has cuda_runtime_api.h but not the crt/ headers it includes.
# They come, headers only (166 kB), in nvidia-cuda-crt, pinned to torch
# 2.11's CUDA 13.0. Without them the shim is built without CUDA graphs.
inc=$(dirname "$d")/nvidia/cu13/include
if [ -f "$inc/cuda_runtime_api.h" ] && [ ! -f "$inc/crt/host_defines.h" ]; then
  echo "installing nvidia-cuda-crt==13.0.88 into $venv (CUDA headers for CUDA graphs)" >&2
  "$venv/bin/pip" install --quiet --no-deps "nvidia-cuda-crt==13.0.88" >&2 ||
    echo "nvidia-cuda-crt did not install: smolsweep builds without CUDA graphs" >&2
fi
echo "$d"
