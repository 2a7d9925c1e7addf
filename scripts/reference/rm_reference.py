"""Reference reward-model loop and scores for the RM parity tests, in
PyTorch + HF `transformers` (pinned in requirements.txt), written to
tests/fixtures/trainer/rm_reference.json:

1. `steps`: the first 10 steps of the RM parity trial (parity_rm.toml) as
   open-instruct's `reward_modeling.py` takes them:
   `LlamaForSequenceClassification(num_labels=1)` from the tiny model, its
   `score` re-initialised as `layer_init(model.score, std=1/sqrt(hidden+1))`
   after `torch.manual_seed(seed)`, rewards read by transformers' own
   pooling (rightmost token != pad), loss `-logsigmoid(r_c - r_r).mean()`,
   each micro-batch's loss divided by the micro-batches of the step
   (accelerate), torch.optim.AdamW and the linear warmup schedule of
   `transformers.get_scheduler`. The micro-batches are smolsweep's, dumped
   with the hidden flag `train --dump-batches`.
2. `export`: smolsweep trains an RM from a copy of the tiny model whose pad
   is its EOS (as SmolLM2 ships), under the tulu template (a conversation
   ends with the EOS); `AutoModelForSequenceClassification` loads the
   export unchanged and scores 8 conversations in one right-padded batch
   (fp32, CPU). Also the scores the same weights get when the config keeps
   pad == eos: what the export's pad avoids.
3. `rewardbench`: RewardBench's `calculate_scores_per_section`
   (rewardbench/utils.py) with its EXAMPLE_COUNTS and SUBSET_MAPPING
   (rewardbench/constants.py), pip `rewardbench` installed with --no-deps,
   on a table of per-subset accuracies, and the leaderboard's average
   (analysis/get_benchmark_results.py, `get_average_over_rewardbench`:
   sections weighed 2 each, the prior sets 1).

    .venv/bin/pip install -r scripts/reference/requirements.txt
    .venv/bin/pip install --no-deps rewardbench==0.1.4   # or a scratch venv with --system-site-packages
    .venv/bin/python scripts/reference/rm_reference.py target/release/smolsweep
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer, LlamaForSequenceClassification

FIX = "tests/fixtures/trainer"
STEPS = 10

CONVERSATIONS = [
    [{"role": "user", "content": "2+2=?"}, {"role": "assistant", "content": "4"}],
    [{"role": "user", "content": "2+2=?"}, {"role": "assistant", "content": "7"}],
    [{"role": "user", "content": "3+4=?"}, {"role": "assistant", "content": "7"}],
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue, or perhaps green."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+5=?"},
     {"role": "assistant", "content": "6"}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
     {"role": "user", "content": "0+1=?"}, {"role": "assistant", "content": "1"}],
    [{"role": "user", "content": "6+2=?"}, {"role": "assistant", "content": "the answer is 8"}],
    [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}],
]


def lr_lambda(warmup, total):
    def f(step):
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return f


def trial_text(cfg_path, tmp, extra=""):
    text = open(cfg_path).read()
    text = text.replace('output_dir = "out-rm"', f'output_dir = "{tmp}/out"')
    return text + extra + f'cache_dir = "{tmp}/cache"\n'


def smolsweep_train(binary, text, tmp, dump=None):
    cfg = os.path.join(FIX, ".tmp-rm.toml")
    open(cfg, "w").write(text)
    args = [binary, "train", "--config", cfg, "--no-progress"]
    if dump:
        args += ["--dump-batches", dump, "--dump-steps", str(STEPS)]
    try:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    finally:
        os.remove(cfg)
    return os.path.join(tmp, "out", "final")


def rewards(model, side):
    ids = torch.tensor(side["ids"])
    pos = torch.tensor(side["positions"])
    return model(input_ids=ids, position_ids=pos).logits.squeeze(-1).float()


def replay(cfg_path, batches_path):
    cfg = tomllib.load(open(cfg_path, "rb"))
    model = LlamaForSequenceClassification.from_pretrained(
        os.path.join(FIX, "tiny-model"), num_labels=1, dtype=torch.float32)
    # open-instruct: layer_init(model.score, std=1 / np.sqrt(hidden_size + 1)).
    torch.manual_seed(cfg["seed"])
    torch.nn.init.normal_(model.score.weight, std=1 / np.sqrt(model.config.hidden_size + 1))
    score_init = model.score.weight.detach().flatten().tolist()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0, foreach=False)
    total = cfg["max_steps"]
    warmup = int(total * cfg["warmup_ratio"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup, total))
    steps = {}
    for line in open(batches_path):
        b = json.loads(line)
        steps.setdefault(b["step"], []).append(b)
    names = ["loss", "rm/accuracy", "rm/reward_margin", "rm/chosen_rewards", "rm/rejected_rewards"]
    out = {k: [] for k in names}
    for s in sorted(steps):
        mbs = steps[s]
        acc = {k: 0.0 for k in names}
        pairs = 0
        for b in mbs:
            rc = rewards(model, b["chosen"])
            rr = rewards(model, b["rejected"])
            loss = -F.logsigmoid(rc - rr).mean() / len(mbs)
            loss.backward()
            acc["loss"] += loss.item()
            pairs += len(b["pairs"])
            acc["rm/accuracy"] += (rc > rr).float().sum().item()
            acc["rm/reward_margin"] += (rc - rr).sum().item()
            acc["rm/chosen_rewards"] += rc.sum().item()
            acc["rm/rejected_rewards"] += rr.sum().item()
        opt.step()
        sched.step()
        opt.zero_grad()
        for k in names:
            out[k].append(acc[k] if k == "loss" else acc[k] / pairs)
    out["score_init"] = score_init
    return out


def pad_is_eos_model(tmp):
    """The tiny model as SmolLM2 ships: pad token == EOS."""
    dst = os.path.join(tmp, "pad-is-eos")
    shutil.copytree(os.path.join(FIX, "tiny-model"), dst)
    tc = json.load(open(os.path.join(dst, "tokenizer_config.json")))
    tc["pad_token"] = tc["eos_token"]
    json.dump(tc, open(os.path.join(dst, "tokenizer_config.json"), "w"), indent=2)
    c = json.load(open(os.path.join(dst, "config.json")))
    c["pad_token_id"] = c["eos_token_id"]
    json.dump(c, open(os.path.join(dst, "config.json"), "w"), indent=2)
    return dst


def score_export(binary):
    with tempfile.TemporaryDirectory() as tmp:
        base = pad_is_eos_model(tmp)
        text = trial_text(os.path.join(FIX, "parity_rm.toml"), tmp)
        text = text.replace('model = "tiny-model"', f'model = "{base}"')
        text = text.replace('chat_template = "chatml"', 'chat_template = "tulu"')
        text = text.replace('data = ["dpo_pairs.jsonl"]', f'data = ["{os.path.abspath(FIX)}/dpo_pairs.jsonl"]')
        export = smolsweep_train(binary, text, tmp)
        tok = AutoTokenizer.from_pretrained(export)
        model = AutoModelForSequenceClassification.from_pretrained(export, dtype=torch.float32).eval()
        texts = [tok.apply_chat_template(c, tokenize=False) for c in CONVERSATIONS]
        ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        tok.padding_side = "right"
        batch = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        with torch.no_grad():
            scores = model(**batch).logits.squeeze(-1).tolist()
            model.config.pad_token_id = model.config.eos_token_id
            wrong = model(**batch).logits.squeeze(-1).tolist()
        cfg = json.load(open(os.path.join(export, "config.json")))
        return {
            "ids": ids,
            "scores": scores,
            "scores_if_pad_is_eos": wrong,
            "pad_token_id": cfg["pad_token_id"],
            "eos_token_id": cfg["eos_token_id"],
            "num_labels": model.config.num_labels,
        }


def rewardbench_functions():
    """EXAMPLE_COUNTS, SUBSET_MAPPING and calculate_scores_per_section from
    the installed `rewardbench` package, read from its files: the package's
    __init__ imports fastchat and the model zoo, which --no-deps leaves out,
    and the two pieces needed here import nothing."""
    import ast
    import importlib.util

    root = os.path.dirname(importlib.util.find_spec("rewardbench").submodule_search_locations[0] + "/")
    consts = {}
    exec(compile(open(os.path.join(root, "constants.py")).read(), "constants.py", "exec"), consts)
    tree = ast.parse(open(os.path.join(root, "utils.py")).read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "calculate_scores_per_section")
    scope = {}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "utils.py", "exec"), scope)
    return consts["EXAMPLE_COUNTS"], consts["SUBSET_MAPPING"], scope["calculate_scores_per_section"]


def rewardbench_sections():
    EXAMPLE_COUNTS, SUBSET_MAPPING, calculate_scores_per_section = rewardbench_functions()

    # A fixed table of per-subset accuracies, every subset different.
    rng = np.random.default_rng(0)
    subsets = sorted(EXAMPLE_COUNTS)
    metrics = {s: float(round(rng.uniform(0.3, 1.0), 6)) for s in subsets}
    sections = calculate_scores_per_section(EXAMPLE_COUNTS, SUBSET_MAPPING, metrics)
    prior = {"anthropic_helpful": 0.61, "anthropic_hhh": 0.72, "shp": 0.55, "summarize": 0.58}
    # get_average_over_rewardbench: sections weighed 2, "Prior Sets (0.5
    # weight)" (the mean of the four prior sets) 1, a missing one masked.
    prior_mean = float(np.nanmean(list(prior.values())))
    vals = [sections[k] for k in SUBSET_MAPPING] + [prior_mean]
    leaderboard = float(np.average(vals, weights=[2, 2, 2, 2, 1]))
    masked = np.ma.masked_array(vals[:4] + [np.nan], np.isnan(vals[:4] + [np.nan]))
    leaderboard_no_prior = float(np.ma.average(masked, weights=[2, 2, 2, 2, 1]))
    return {
        "metrics": metrics,
        "prior_sets": prior,
        "sections": sections,
        "leaderboard_average": leaderboard,
        "leaderboard_average_without_prior_sets": leaderboard_no_prior,
        "example_counts": EXAMPLE_COUNTS,
        "version": __import__("importlib.metadata").metadata.version("rewardbench"),
    }


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/smolsweep"
    cfg = os.path.join(FIX, "parity_rm.toml")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "batches.jsonl")
        smolsweep_train(binary, trial_text(cfg, tmp), tmp, dump)
        out["steps"] = replay(cfg, dump)
    print("rm", out["steps"]["loss"][:5], file=sys.stderr)
    out["export"] = score_export(binary)
    print("export", out["export"]["scores"], file=sys.stderr)
    out["rewardbench"] = rewardbench_sections()
    out["versions"] = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
    with open(os.path.join(FIX, "rm_reference.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
