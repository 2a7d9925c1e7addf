"""Examples/s of `smolsweep eval` on MMLU-Pro (MCF, the `smollm2`
convention) and BBH (`bbh_cot_fewshot`, the `lm-eval` convention) beside
lm-evaluation-harness 0.4.13's HF backend: same model, same items (the
fixture data of tests/fixtures/evals/mmlu_bbh, written by
mmlu_bbh_reference.py), same machine, same run, fp32 on the CPU.

- MMLU-Pro MCF: lm-eval has no MCF MMLU-Pro task, so a `multiple_choice`
  task is declared here with SmolLM2's query (`mmlu_pro_mc_prompt`), the
  bare letters as choices and `apply_chat_template=True`: the same
  chat-wrapped contexts and letters smolsweep scores.
- BBH, `--tasks bbh_smollm2` (the paper's convention): 3-shot answer-only,
  chat-wrapped, stops `Question:`/`Question`/`<|im_end|>`, no cap but the
  context. lm-eval has no such task, so a `generate_until` task is
  declared here whose prompt is, per document, the exact text lighteval's
  code built (the `smollm2.bbh` prompts of the fixture's reference.json,
  written by mmlu_bbh_reference.py from lighteval's own sampler) and whose
  stop strings are the same; smolsweep with `--convention smollm2 --limit`
  on the same files builds the same prompts itself (tested in
  tests/it/mmlu_bbh_reference.rs). The first `--bbh-limit` items of each of
  the 27 subtasks.
- BBH, `--tasks bbh` (lm-eval's convention): lm-eval's own
  `bbh_cot_fewshot_*` tasks (datasets pointed at the fixture files);
  smolsweep with `--convention lm-eval --limit` on the same files. Its
  chain-of-thought generations run to 1024 tokens after ~1.5k-token
  prompts: on a 2-core CPU even one item per subtask is hours.

lm-eval is timed around `simple_evaluate` with the model already loaded;
smolsweep by its results.json `wall_s` (which also excludes loading the
model). Run from the repository root after `cargo build --release`, with
the reference venv of mmlu_bbh_reference.py plus `accelerate` (which the
HF backend imports) (scripts/bench-mmlu-bbh.sh). On a 2-core CPU the BBH
half is slow on lm-eval's side: its batches generate until every row
stops (up to 1024 tokens after ~1.5k-token 3-shot CoT prompts):

    /tmp/ref/bin/python scripts/reference/mmlu_bbh_bench.py models/SmolLM2-135M-Instruct [--mmlu-limit N] [--bbh-limit 1]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "fixtures", "evals", "mmlu_bbh", "data")
MMLU_TEST = os.path.join(DATA, "mmlu_pro", "data", "test-00000-of-00001.jsonl")

# SmolLM2's mmlu_pro_mc_prompt (see mmlu_bbh_reference.py), as an lm-eval
# `!function`.
UTILS = '''
def doc_to_text(line):
    topic = line["category"].replace("_", " ")
    query = f"The following are multiple choice questions (with answers) about {topic}.\\n\\n"
    query += line["question"] + "\\n"
    query += "".join([f"{chr(65 + i)}. {c}\\n" for i, c in enumerate(line["options"])])
    return query + "Answer:"


def doc_to_choice(line):
    return [chr(65 + i) for i in range(len(line["options"]))]
'''

YAML = f"""task: bench_mmlu_pro_mcf
dataset_path: json
dataset_kwargs:
  data_files:
    test: {MMLU_TEST}
test_split: test
output_type: multiple_choice
doc_to_text: !function utils.doc_to_text
doc_to_choice: !function utils.doc_to_choice
doc_to_target: answer_index
target_delimiter: ""
metric_list:
  - metric: acc
"""

BBH_PROMPTS = os.path.join(ROOT, "tests", "fixtures", "evals", "mmlu_bbh", "reference.json")
BBH_YAML = """task: bench_bbh_smollm2
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: target
target_delimiter: ""
generation_kwargs:
  until: ["Question:", "Question", "<|im_end|>"]
  do_sample: false
  max_gen_toks: {max_gen}
metric_list:
  - metric: exact_match
"""


def write_bbh_smollm2(inc, limit):
    """The first `limit` documents of each BBH subtask (file order, as
    `smolsweep eval --limit` keeps them) with lighteval's prompt for each,
    as one JSONL lm-eval reads; returns the prompts' longest length in
    characters, for the generation cap."""
    ref = json.load(open(BBH_PROMPTS))["smollm2"]["bbh"]
    path = os.path.join(inc, "bbh_smollm2.jsonl")
    with open(path, "w") as f:
        for sub in sorted(ref):
            rows = [json.loads(l) for l in open(os.path.join(DATA, "bbh", sub, "train-00000-of-00001.jsonl"))]
            for row, prompt in list(zip(rows, ref[sub]["prompts"]))[:limit]:
                f.write(json.dumps({"prompt": prompt, "target": row["target"]}) + "\n")
    return path


def smolsweep(model, task, convention, limit, batch):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        cmd = [os.path.join(ROOT, "target", "release", "smolsweep"), "eval", "--model", model, "--device", "cpu",
               "--convention", convention, "--task", f"{task}={os.path.join(DATA, task)}", "--out", out,
               "--batch-size", batch]
        if limit:
            cmd += ["--limit", str(limit)]
        t, c = time.time(), cpu(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, env={**os.environ, "SMOLSWEEP_LOG": "warn"})
        total, cpu_s = time.time() - t, cpu(resource.RUSAGE_CHILDREN) - c
        r = json.load(open(out))["tasks"][task]
        return r["n"], r["wall_s"], total, cpu_s


def cpu(who):
    """User + system seconds of this process's threads (RUSAGE_SELF) or of
    its reaped children (RUSAGE_CHILDREN): on a shared machine, CPU seconds
    are the fair "per core" measure."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct"))
    ap.add_argument("--mmlu-limit", type=int, default=None, help="the first N MMLU-Pro questions")
    ap.add_argument("--bbh-limit", type=int, default=1, help="items per BBH subtask (27 subtasks)")
    ap.add_argument("--batch-size", default="8")
    ap.add_argument("--tasks", default="mmlu_pro,bbh_smollm2", help="mmlu_pro, bbh_smollm2, bbh (CoT, hours here)")
    a = ap.parse_args()
    model = os.path.abspath(a.model)

    import datasets
    import lm_eval.api.task as lm_task
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    real_load = datasets.load_dataset

    def local_load_dataset(path=None, name=None, **kwargs):
        if path in ("SaylorTwift/bbh", "lukaemon/bbh"):
            f = os.path.join(DATA, "bbh", name, "train-00000-of-00001.jsonl")
            return real_load("json", data_files={"test": f})
        return real_load(path, name, **kwargs)

    lm_task.datasets.load_dataset = local_load_dataset
    inc = tempfile.mkdtemp()
    with open(os.path.join(inc, "utils.py"), "w") as f:
        f.write(UTILS)
    with open(os.path.join(inc, "bench_mmlu_pro_mcf.yaml"), "w") as f:
        f.write(YAML)
    if "bbh_smollm2" in a.tasks.split(","):
        data = write_bbh_smollm2(inc, a.bbh_limit)
        # No cap but the context (2048) in smolsweep; lm-eval keeps
        # max_length - max_gen_toks of the context, so the cap leaves room
        # for the longest fixture prompt (a few hundred tokens).
        with open(os.path.join(inc, "bench_bbh_smollm2.yaml"), "w") as f:
            f.write(BBH_YAML.format(data=data, max_gen=1536))
    tm = TaskManager(include_path=inc)
    lm = HFLM(pretrained=model, device="cpu", dtype="float32", batch_size=int(a.batch_size))

    rows = []
    for task in a.tasks.split(","):
        if task == "mmlu_pro":
            label, lm_tasks, limit, chat, conv = "mmlu_pro (MCF, smollm2)", ["bench_mmlu_pro_mcf"], a.mmlu_limit, True, "smollm2"
        elif task == "bbh_smollm2":
            # The prompts are chat-rendered already: no template on top.
            label, lm_tasks, limit, chat, conv = "bbh (3-shot, smollm2)", ["bench_bbh_smollm2"], None, False, "smollm2"
        else:
            label, lm_tasks, limit, chat, conv = "bbh (cot_fewshot, lm-eval)", ["bbh_cot_fewshot"], a.bbh_limit, False, "lm-eval"
        t, c = time.time(), cpu(resource.RUSAGE_SELF)
        out = simple_evaluate(model=lm, tasks=lm_tasks, task_manager=tm, limit=limit, log_samples=False,
                              apply_chat_template=chat)
        lm_secs, lm_cpu = time.time() - t, cpu(resource.RUSAGE_SELF) - c
        n_lm = sum(v["effective"] for v in out["n-samples"].values())
        n, wall, total, cpu_s = smolsweep(model, "bbh" if task == "bbh_smollm2" else task, conv,
                                          a.bbh_limit if task == "bbh_smollm2" else limit, a.batch_size)
        assert n == n_lm, (task, n, n_lm)
        rows.append((label, n, lm_secs, lm_cpu, wall, total, cpu_s))
        print(rows[-1], file=sys.stderr, flush=True)
    # smolsweep's CPU seconds are the whole process's (model load included),
    # lm-eval's exclude loading: the per-CPU-second ratio favours lm-eval.
    print("| task | n | lm-eval HF: ex/s (s) | smolsweep eval: ex/s (s) | speed-up by wall | "
          "lm-eval ex per CPU-s (CPU s) | smolsweep ex per CPU-s, whole process (CPU s) | speed-up per CPU-s |")
    print("|---|---|---|---|---|---|---|---|")
    for label, n, lm_secs, lm_cpu, wall, total, cpu_s in rows:
        print(f"| {label} | {n} | {n / lm_secs:.3f} ({lm_secs:.1f}) | {n / wall:.3f} ({wall:.1f}) | "
              f"{lm_secs / wall:.2f}x | {n / lm_cpu:.4f} ({lm_cpu:.1f}) | {n / cpu_s:.4f} ({cpu_s:.1f}) | "
              f"{lm_cpu / cpu_s:.2f}x |")


if __name__ == "__main__":
    main()
