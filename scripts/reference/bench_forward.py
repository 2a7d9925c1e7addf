"""Forward tokens/s of a HF model directory in `transformers` (fp32, CPU),
measured exactly as `smolsweep bench forward` does: random token ids,
one warm-up, median of N timed full forwards (logits included).

    .venv/bin/python scripts/reference/bench_forward.py models/SmolLM2-135M-Instruct --shape 1x256 --shape 8x256
"""

import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--shape", action="append", default=[])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--attn", default="sdpa")
    a = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in (a.shape or ["1x256", "8x256"])]
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation=a.attn)
    model.eval()
    vocab = model.config.vocab_size
    print(json.dumps({"bench": "forward", "threads": torch.get_num_threads()}))
    with torch.inference_mode():
        for b, t in shapes:
            g = torch.Generator().manual_seed(0)
            x = torch.randint(vocab, (b, t), generator=g)
            def once():
                s = time.perf_counter()
                logits = model(x, use_cache=False).logits
                float(logits[:, -1].sum())
                return time.perf_counter() - s
            once()
            times = sorted(once() for _ in range(max(1, a.iters)))
            med = times[len(times) // 2]
            print(json.dumps({"impl": f"transformers {__import__('transformers').__version__} ({a.attn})",
                              "batch": b, "seq": t, "median_s": med, "min_s": times[0],
                              "max_s": times[-1], "tokens_per_s": b * t / med}))


if __name__ == "__main__":
    main()
