"""Reference training loop for the trainer parity test: the same SFT steps
in PyTorch + HF `transformers`, from the same initial weights and the same
micro-batches, with torch.optim.AdamW and a LambdaLR schedule built the way
`transformers.get_scheduler` builds it.

smolsweep writes the micro-batches of the first steps (token ids, targets,
positions) with the hidden flag `train --dump-batches`; this script replays
them and records each step's loss. The Rust test then trains again and
compares its losses with these (relative 1e-4, CPU fp32).

    .venv/bin/pip install -r scripts/reference/requirements.txt
    .venv/bin/python scripts/reference/trainer_reference.py target/release/smolsweep

writes tests/fixtures/trainer/reference_losses.json.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import tomllib

import torch
from transformers import LlamaForCausalLM

FIX = "tests/fixtures/trainer"


def lr_lambda_factory(kind, warmup, total):
    def f(step):
        if step < warmup:
            return step / max(1, warmup)
        if kind == "linear":
            return max(0.0, (total - step) / max(1, total - warmup))
        if kind == "cosine":
            p = (step - warmup) / max(1, total - warmup)
            return max(0.0, 0.5 * (1 + math.cos(math.pi * p)))
        return 1.0
    return f


def replay(cfg_path, batches_path):
    cfg = tomllib.load(open(cfg_path, "rb"))
    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(os.path.join(FIX, "tiny-model"), dtype=torch.float32)
    model.train()
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if ("norm" in n or "embed_tokens" in n or n.startswith("lm_head")) else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.get("weight_decay", 0.0)},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg["lr"], betas=(cfg.get("adam_beta1", 0.9), cfg.get("adam_beta2", 0.999)),
        eps=cfg.get("adam_eps", 1e-8), foreach=False)
    total = cfg["max_steps"]
    warmup = int(total * cfg.get("warmup_ratio", 0.03))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda_factory(cfg.get("schedule", "linear"), warmup, total))
    steps = {}
    for line in open(batches_path):
        b = json.loads(line)
        steps.setdefault(b["step"], []).append(b)
    losses = []
    reduction = cfg.get("loss_reduction", "sum")
    for s in sorted(steps):
        mbs = steps[s]
        step_labels = sum(sum(1 for t in b["targets"] if t != -100) for b in mbs)
        step_loss = 0.0
        for b in mbs:
            ids = torch.tensor(b["ids"])
            pos = torch.tensor(b["positions"])
            tgt = torch.tensor(b["targets"])
            n_lab = int((tgt != -100).sum())
            if n_lab == 0:
                continue
            logits = model(input_ids=ids, position_ids=pos).logits.float()
            ce = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), tgt, ignore_index=-100, reduction="sum")
            scale = 1.0 / step_labels if reduction == "sum" else 1.0 / (n_lab * len(mbs))
            loss = ce * scale
            loss.backward()
            step_loss += loss.item()
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(step_loss)
    return losses


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/smolsweep"
    out = {}
    for name in ["sum", "mean"]:
        cfg = os.path.join(FIX, f"parity_{name}.toml")
        with tempfile.TemporaryDirectory() as tmp:
            dump = os.path.join(tmp, "batches.jsonl")
            # The trial writes into its output_dir; point it at a scratch copy.
            text = open(cfg).read().replace('output_dir = "out-' + name + '"', f'output_dir = "{tmp}/out"')
            tcfg = os.path.join(FIX, f".tmp-{name}.toml")
            open(tcfg, "w").write(text)
            try:
                subprocess.run([binary, "train", "--config", tcfg, "--dump-batches", dump, "--dump-steps", "20",
                                "--no-progress"], check=True, stdout=subprocess.DEVNULL)
            finally:
                os.remove(tcfg)
            out[name] = replay(cfg, dump)
        print(name, out[name][:5], file=sys.stderr)
    out["versions"] = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
    with open(os.path.join(FIX, "reference_losses.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
