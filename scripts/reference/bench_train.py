"""Training-step throughput and peak RSS in PyTorch + `transformers`,
measured like `smolsweep bench train`: random tokens, one warm-up step,
median of N steps of forward + cross-entropy + backward + AdamW.

    .venv/bin/python scripts/reference/bench_train.py MODEL_DIR --shape 8x256 [--random-init]
"""

import argparse
import json
import resource
import time

import torch
from transformers import AutoConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--shape", default="8x256")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--random-init", action="store_true")
    a = ap.parse_args()
    b, t = (int(x) for x in a.shape.split("x"))
    torch.manual_seed(0)
    if a.random_init:
        model = LlamaForCausalLM(AutoConfig.from_pretrained(a.model)).float()
    else:
        model = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0, foreach=False)
    x = torch.randint(model.config.vocab_size, (b, t + 1))
    ids, y = x[:, :-1], x[:, 1:].reshape(-1)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def step():
        s = time.perf_counter()
        logits = model(input_ids=ids).logits.float()
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return time.perf_counter() - s

    step()
    times = sorted(step() for _ in range(max(1, a.steps)))
    med = times[len(times) // 2]
    print(json.dumps({"impl": f"transformers {__import__('transformers').__version__}", "bench": "train",
                      "params": sum(p.numel() for p in model.parameters()), "batch": b, "seq": t,
                      "median_s": med, "tokens_per_s": b * t / med,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_steps_mib": rss_before, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
