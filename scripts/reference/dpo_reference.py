"""Reference DPO loop for the DPO parity test: the same steps in PyTorch +
HF `transformers`, from the same initial weights and the same micro-batches,
with open-instruct's `dpo_loss` and `_get_batch_logps` (open_instruct/
dpo_utils.py, Tulu 3 era) written out below, torch.optim.AdamW and the
linear warmup schedule of `transformers.get_scheduler`.

smolsweep writes the micro-batches of the first steps (pair indices, and for
chosen and rejected: token ids, next-token targets, positions) with the
hidden flag `train --dump-batches`; this script replays them. The reference
log-probs are computed here too, independently: the initial policy, no grad,
on the same micro-batches, before any step (as `dpo_tune_cache.py` caches
them). It records each step's loss and logged metrics, and the Rust test
(tests/it/dpo_parity.rs) trains again and compares (relative 1e-4, CPU fp32).

    .venv/bin/pip install -r scripts/reference/requirements.txt
    .venv/bin/python scripts/reference/dpo_reference.py target/release/smolsweep

writes tests/fixtures/trainer/dpo_reference.json.
"""

import copy
import json
import os
import subprocess
import sys
import tempfile
import tomllib

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

FIX = "tests/fixtures/trainer"
STEPS = 10


def _get_batch_logps(logits, labels, average_log_prob):
    """open-instruct's: labels are input ids with -100 where masked; the
    logit at position t predicts token t+1."""
    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :]
    loss_mask = labels != -100
    labels[labels == -100] = 0
    per_token_logps = torch.gather(logits.log_softmax(-1), dim=2, index=labels.unsqueeze(2)).squeeze(2)
    if average_log_prob:
        return (per_token_logps * loss_mask).sum(-1) / loss_mask.sum(-1)
    return (per_token_logps * loss_mask).sum(-1)


def dpo_loss(pc, pr, rc, rr, beta, label_smoothing=0.0):
    """open-instruct's dpo_loss."""
    pi_logratios = pc - pr
    ref_logratios = rc - rr
    logits = pi_logratios - ref_logratios
    losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    chosen_rewards = beta * (pc - rc).detach()
    rejected_rewards = beta * (pr - rr).detach()
    return losses, chosen_rewards, rejected_rewards


def labels_of(side):
    """The dumped next-token targets (target[t] = token t+1 or -100) as
    open-instruct's unshifted labels: label[t+1] = target[t]."""
    tgt = torch.tensor(side["targets"]).view(len(side["ids"]), -1)
    labels = torch.full_like(tgt, -100)
    labels[:, 1:] = tgt[:, :-1]
    return labels


def logps(model, side, average):
    ids = torch.tensor(side["ids"])
    pos = torch.tensor(side["positions"])
    logits = model(input_ids=ids, position_ids=pos).logits.float()
    return _get_batch_logps(logits, labels_of(side), average)


def lr_lambda(warmup, total):
    def f(step):
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return f


def replay(cfg_path, batches_path):
    cfg = tomllib.load(open(cfg_path, "rb"))
    average = cfg["dpo_loss"] == "dpo_norm"
    beta = cfg["beta"]
    ls = cfg.get("label_smoothing", 0.0)
    model = LlamaForCausalLM.from_pretrained(os.path.join(FIX, "tiny-model"), dtype=torch.float32)
    model.train()
    reference = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0, foreach=False)
    total = cfg["max_steps"]
    warmup = int(total * cfg["warmup_ratio"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup, total))
    steps = {}
    for line in open(batches_path):
        b = json.loads(line)
        steps.setdefault(b["step"], []).append(b)
    # The reference log-probs first, by pair, before any update.
    ref = {}
    with torch.no_grad():
        for s in sorted(steps):
            for b in steps[s]:
                rc = logps(reference, b["chosen"], average)
                rr = logps(reference, b["rejected"], average)
                for k, i in enumerate(b["pairs"]):
                    ref[i] = (rc[k], rr[k])
    del reference
    out = {k: [] for k in ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracy",
                           "rewards/margin", "logps/chosen", "logps/rejected"]}
    for s in sorted(steps):
        mbs = steps[s]
        acc = {k: 0.0 for k in out}
        pairs = 0
        for b in mbs:
            pc = logps(model, b["chosen"], average)
            pr = logps(model, b["rejected"], average)
            rc = torch.stack([ref[i][0] for i in b["pairs"]])
            rr = torch.stack([ref[i][1] for i in b["pairs"]])
            losses, cr, rj = dpo_loss(pc, pr, rc, rr, beta, ls)
            # accelerate's gradient accumulation: each micro-batch's mean
            # loss divided by the number of micro-batches.
            loss = losses.mean() / len(mbs)
            loss.backward()
            acc["loss"] += loss.item()
            n = len(b["pairs"])
            pairs += n
            acc["rewards/chosen"] += cr.sum().item()
            acc["rewards/rejected"] += rj.sum().item()
            acc["rewards/accuracy"] += (cr > rj).float().sum().item()
            acc["rewards/margin"] += (cr - rj).sum().item()
            acc["logps/chosen"] += pc.detach().sum().item()
            acc["logps/rejected"] += pr.detach().sum().item()
        opt.step()
        sched.step()
        opt.zero_grad()
        for k in out:
            out[k].append(acc[k] if k == "loss" else acc[k] / pairs)
    return out


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/smolsweep"
    out = {}
    for name in ["dpo_norm", "dpo"]:
        cfg = os.path.join(FIX, f"parity_{name}.toml")
        with tempfile.TemporaryDirectory() as tmp:
            dump = os.path.join(tmp, "batches.jsonl")
            text = open(cfg).read().replace(f'output_dir = "out-{name}"', f'output_dir = "{tmp}/out"')
            text += f'cache_dir = "{tmp}/cache"\n'
            tcfg = os.path.join(FIX, f".tmp-{name}.toml")
            open(tcfg, "w").write(text)
            try:
                subprocess.run([binary, "train", "--config", tcfg, "--dump-batches", dump,
                                "--dump-steps", str(STEPS), "--no-progress"], check=True,
                               stdout=subprocess.DEVNULL)
            finally:
                os.remove(tcfg)
            out[name] = replay(cfg, dump)
        print(name, out[name]["loss"][:5], file=sys.stderr)
    out["versions"] = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
    with open(os.path.join(FIX, "dpo_reference.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
