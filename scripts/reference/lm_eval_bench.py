"""Examples/s of `smolsweep eval` beside lm-evaluation-harness's HF backend,
same machine, same run, same fixture data (tests/fixtures/evals/data, made
by lm_eval_fixtures.py), fp32 on the CPU.

For each benchmark it times lm-eval's `simple_evaluate` (model already
loaded, so only the evaluation is timed) and `smolsweep eval` (its
results.json `wall_s`, which also excludes loading the model), and prints
a table. Run from the repository root after `cargo build --release`:

    .venv/bin/python scripts/reference/lm_eval_bench.py [models/SmolLM2-135M-Instruct] [--gsm8k-limit 4]

`--binary PATH` (repeatable) times other smolsweep binaries too, in the
same run (e.g. a build from before a change): one column each.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lm_eval_fixtures as fx  # noqa: E402
from lm_eval import simple_evaluate  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402


def smolsweep(binary, model, task, limit, batch):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        cmd = [binary, "eval", "--model", model,
               "--device", "cpu", "--data-dir", fx.DATA, "--task", task, "--out", out, "--batch-size", batch]
        if limit:
            cmd += ["--limit", str(limit)]
        t = time.time()
        subprocess.run(cmd, check=True, env={**os.environ, "SMOLSWEEP_LOG": "warn"})
        total = time.time() - t
        r = json.load(open(out))["tasks"][task]
        return r["n"], r["wall_s"], total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=os.path.join(fx.ROOT, "models", "SmolLM2-135M-Instruct"))
    ap.add_argument("--tasks", default="hellaswag,arc_easy,gsm8k")
    ap.add_argument("--gsm8k-limit", type=int, default=4)
    ap.add_argument("--batch-size", default="8")
    ap.add_argument("--binary", action="append", default=[])
    a = ap.parse_args()
    binaries = [os.path.join(fx.ROOT, "target", "release", "smolsweep")] + a.binary
    model = os.path.abspath(a.model)
    tm = TaskManager(include_path=fx.task_yaml_dir())
    lm = HFLM(pretrained=model, device="cpu", dtype="float32", batch_size=int(a.batch_size))
    rows = []
    for task in a.tasks.split(","):
        limit = a.gsm8k_limit if task == "gsm8k" else None
        t = time.time()
        out = simple_evaluate(model=lm, tasks=[f"fx_{task}"], task_manager=tm, limit=limit, log_samples=False)
        lm_secs = time.time() - t
        n_lm = out["n-samples"][f"fx_{task}"]["effective"]
        runs = []
        for b in binaries:
            n, wall, total = smolsweep(b, model, task, limit, a.batch_size)
            assert n == n_lm, (n, n_lm)
            runs.append((n / wall, wall, total))
        rows.append((task, n_lm, n_lm / lm_secs, lm_secs, runs))
    heads = "".join(f" {b} (ex/s, s) | speed-up | incl. model load (s) |" for b in binaries)
    print(f"| task | n | lm-eval HF (ex/s, s) |{heads}")
    print("|---|---|---|" + "---|---|---|" * len(binaries))
    for task, n, lm_rate, lm_secs, runs in rows:
        cells = "".join(f" {rate:.2f} ({wall:.1f} s) | {rate / lm_rate:.2f}x | {total:.1f} |" for rate, wall, total in runs)
        print(f"| {task} | {n} | {lm_rate:.2f} ({lm_secs:.1f} s) |{cells}")


if __name__ == "__main__":
    main()
