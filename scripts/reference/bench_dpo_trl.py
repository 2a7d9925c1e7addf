"""DPO training-step speed and memory, smolsweep beside TRL's DPOTrainer,
measured the same way (scripts/bench-dpo.sh runs every configuration in
one go, on the same model, data, batch and max length):

- per optimizer step (the first one is a warm-up and left out): wall
  seconds, CPU seconds (user + sys of the whole process: on a shared
  machine wall time alone says little), and real (non-pad) tokens of
  chosen plus rejected, hence tokens/s;
- peak RSS of the process (getrusage's ru_maxrss);
- the reference log-prob cache build: smolsweep's "reference log-probs
  computed" log line, TRL's `_precompute_ref_logps` (both over every pair,
  no grad, before the first step; neither keeps a reference model).

    python bench_dpo_trl.py data MODEL_DIR OUT.jsonl --pairs 32
    python bench_dpo_trl.py trl MODEL_DIR DATA.jsonl --batch 4 --max-len 256 --steps 6
    python bench_dpo_trl.py smolsweep MODEL_DIR DATA.jsonl --bin target/release/smolsweep \
        --forward separate --batch 4 --max-len 256 --steps 6 --work DIR

Each measuring mode prints one JSON object. Versions: requirements.txt
(trl 1.16.0, transformers 5.24.0, torch 2.11.0).
"""

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

WORDS = (
    "the model answers each question with care and checks the sum twice before it writes "
    "a short reason that a reader can follow step by step until the result is clear"
).split()


def cmd_data(a):
    """Pairs as full message lists (both read them): a question, a chosen
    answer and a rejected one of a few dozen to a hundred words."""
    rng = random.Random(0)
    with open(a.out, "w") as f:
        for i in range(a.pairs):
            x, y = rng.randrange(100), rng.randrange(100)
            q = f"Question {i}: what is {x} + {y}? " + " ".join(rng.choices(WORDS, k=20))
            good = f"{x} + {y} = {x + y}. " + " ".join(rng.choices(WORDS, k=rng.randrange(40, 100)))
            bad = f"{x} + {y} = {x + y + 1}. " + " ".join(rng.choices(WORDS, k=rng.randrange(40, 100)))
            user = {"role": "user", "content": q}
            f.write(json.dumps({
                "chosen": [user, {"role": "assistant", "content": good}],
                "rejected": [user, {"role": "assistant", "content": bad}],
            }) + "\n")


def summary(impl, forward, walls, cpus, tokens, peak_kib, ref_s, threads):
    # Step 1 is a warm-up (allocator, first-touch); the rest are measured.
    w, c, t = walls[1:], cpus[1:], tokens[1:]
    return {
        "impl": impl,
        "forward": forward,
        "threads": threads,
        "steps_measured": len(w),
        "tokens_per_step": statistics.median(t),
        "wall_s_per_step": statistics.median(w),
        "cpu_s_per_step": statistics.median(c),
        "tokens_per_s": statistics.median(tk / s for tk, s in zip(t, w)),
        "peak_rss_mib": peak_kib / 1024.0,
        "ref_cache_s": ref_s,
    }


def cmd_trl(a):
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="bench-dpo-trl-"))
    # A fresh datasets cache: TRL caches reference log-probs there, and
    # a reused file would hide the build.
    ds = load_dataset("json", data_files=a.data, split="train", cache_dir=str(work / "hf"))
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    ref_s = []
    orig = DPOTrainer._precompute_ref_logps

    def timed(self, *args, **kw):
        t = time.perf_counter()
        out = orig(self, *args, **kw)
        ref_s.append(time.perf_counter() - t)
        return out

    DPOTrainer._precompute_ref_logps = timed
    walls, cpus, tokens, pending = [], [], [], [0]

    class Steps(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            walls.append(time.perf_counter() - self.t)
            cpus.append(time.process_time() - self.c)
            tokens.append(pending[0])
            pending[0] = 0

    class Counting(DPOTrainer):
        def training_step(self, model, inputs, *args, **kw):
            pending[0] += int(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, *args, **kw)

    cfg = DPOConfig(
        output_dir=str(work / "out"),
        loss_type=[a.loss],
        beta=a.beta,
        max_length=a.max_len,
        truncation_mode="keep_start",
        per_device_train_batch_size=a.batch,
        gradient_accumulation_steps=1,
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=a.batch,
        max_steps=a.steps,
        learning_rate=5e-7,
        lr_scheduler_type="linear",
        warmup_steps=0.1,
        weight_decay=0.0,
        optim="adamw_torch",
        # smolsweep keeps every activation; so does this run.
        gradient_checkpointing=False,
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Counting(model=model, args=cfg, train_dataset=ds, processing_class=tok, callbacks=[Steps()])
    trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(summary("trl", "concatenated", walls, cpus, tokens, peak,
                             ref_s[0] if ref_s else None, torch.get_num_threads())))


def proc_cpu_s(pid):
    """User + sys seconds of a live process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3; utime and stime are 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cmd_smolsweep(a):
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / f"trial-{a.forward}.toml"
    out, cache = work / f"out-{a.forward}", work / f"cache-{a.forward}"
    keys = {
        "stage": '"dpo"',
        "model": json.dumps(str(Path(a.model).resolve())),
        "data": json.dumps([str(Path(a.data).resolve())]),
        "chat_template": '"model"',
        "dpo_loss": '"dpo_norm"' if a.loss == "sigmoid_norm" else '"dpo"',
        "beta": repr(a.beta),
        "forward": json.dumps(a.forward),
        "max_seq_len": str(a.max_len),
        "batch_size": str(a.batch),
        "micro_batch_size": str(a.batch),
        "max_steps": str(a.steps),
        "lr": "5e-7",
        "device": '"cpu"',
        "dtype": '"f32"',
        "checkpoint_every_steps": "100000",
        "seed": "0",
        "output_dir": json.dumps(str(out)),
        # A fresh cache: the reference log-probs are built in this run.
        "cache_dir": json.dumps(str(cache)),
    }
    cfg.write_text("".join(f"{k} = {v}\n" for k, v in keys.items()))
    env = dict(os.environ, SMOLSWEEP_LOG="info")
    p = subprocess.Popen([a.bin, "train", "--config", str(cfg), "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    err = []
    t = threading.Thread(target=lambda: err.extend(p.stderr), daemon=True)
    t.start()
    walls, cpus, tokens = [], [], []
    last = (0.0, proc_cpu_s(p.pid), 0)
    for line in p.stdout:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") != "step":
            continue
        now = (e["elapsed_s"], proc_cpu_s(p.pid), e["tokens"])
        walls.append(now[0] - last[0])
        cpus.append(now[1] - last[1])
        tokens.append(now[2] - last[2])
        last = now
    _, status, usage = os.wait4(p.pid, 0)
    t.join()
    text = "".join(err)
    if status != 0:
        sys.exit(f"smolsweep train failed ({status}):\n{text}")
    m = re.search(r'secs="?([0-9.]+)"?\s+reference log-probs computed|reference log-probs computed.*?secs="?([0-9.]+)', text)
    ref = None
    if m:
        ref = float(m.group(1) or m.group(2))
    threads = re.search(r"threads[=: ]+(\d+)", text)
    print(json.dumps(summary("smolsweep", a.forward, walls, cpus, tokens, usage.ru_maxrss, ref,
                             int(threads.group(1)) if threads else None)))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("model")
    d.add_argument("out")
    d.add_argument("--pairs", type=int, default=32)
    for name in ("trl", "smolsweep"):
        s = sub.add_parser(name)
        s.add_argument("model")
        s.add_argument("data")
        s.add_argument("--batch", type=int, default=4)
        s.add_argument("--max-len", type=int, default=256)
        s.add_argument("--steps", type=int, default=6)
        s.add_argument("--beta", type=float, default=5.0)
        s.add_argument("--loss", default="sigmoid_norm", choices=["sigmoid_norm", "sigmoid"])
        if name == "smolsweep":
            s.add_argument("--bin", required=True)
            s.add_argument("--forward", default="separate", choices=["separate", "concatenated"])
            s.add_argument("--work", required=True)
    a = ap.parse_args()
    {"data": cmd_data, "trl": cmd_trl, "smolsweep": cmd_smolsweep}[a.cmd](a)


if __name__ == "__main__":
    main()
