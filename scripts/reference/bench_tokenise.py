#!/usr/bin/env python3
"""Tokenisation speed of open-instruct's SFT pipeline, for comparison with
`smolsweep prepare` on the same data, machine and run (a benchmark, not a
test; pinned versions in requirements.txt).

The open-instruct way: `transformers` `apply_chat_template` with the fast
tokenizer, labels masked on every non-assistant span by re-rendering the
conversation prefix (open_instruct/dataset_transformation.py,
`sft_tulu_tokenize_and_truncate_v1`), mapped over the rows by
`datasets.map(num_proc=CORES)`.

usage: bench_tokenise.py MODEL_DIR DATA.jsonl MAX_SEQ_LEN CORES
prints one JSON line: conversations, tokens, label tokens, seconds, rates.
Rates per core are given by wall time (seconds x CORES) and by CPU time
(user + system of this process and its `datasets.map` workers, which have
exited and been reaped when the map returns): on a shared machine the CPU
figure is the one to compare with `smolsweep bench tokenise`'s.
"""
import json
import resource
import sys
import time

import datasets
from transformers import AutoTokenizer


def ids(tok, messages, max_len, gen):
    out = tok.apply_chat_template(
        conversation=messages, tokenize=True, padding=False, truncation=True,
        max_length=max_len, add_generation_prompt=gen, return_dict=False,
    )
    return out


def encode(row, tok, max_len):
    messages = row["messages"]
    input_ids = ids(tok, messages, max_len, False)
    labels = list(input_ids)
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            continue
        start = 0 if i == 0 else len(ids(tok, messages[:i], max_len, False))
        gen = i < len(messages) - 1 and messages[i + 1]["role"] == "assistant"
        end = len(ids(tok, messages[: i + 1], max_len, gen))
        for j in range(start, min(end, len(labels))):
            labels[j] = -100
        if end >= max_len:
            break
    return {"input_ids": input_ids, "labels": labels}


def main():
    model, data, max_len, cores = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    tok = AutoTokenizer.from_pretrained(model)
    ds = datasets.load_dataset("json", data_files=data, split="train")
    def cpu():
        return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                     resource.getrusage(resource.RUSAGE_CHILDREN)))

    start, cpu0 = time.time(), cpu()
    out = ds.map(encode, fn_kwargs={"tok": tok, "max_len": max_len}, num_proc=cores,
                 remove_columns=ds.column_names, load_from_cache_file=False)
    secs, cpu_secs = time.time() - start, cpu() - cpu0
    tokens = sum(len(x) for x in out["input_ids"])
    labels = sum(sum(1 for t in x if t != -100) for x in out["labels"])
    n = len(out)
    print(json.dumps({
        "pipeline": "open-instruct (transformers apply_chat_template + datasets.map)",
        "transformers": __import__("transformers").__version__, "datasets": datasets.__version__,
        "conversations": n, "tokens": tokens, "label_tokens": labels, "seconds": round(secs, 2),
        "conversations_per_s_per_core": round(n / secs / cores, 1),
        "tokens_per_s_per_core": round(tokens / secs / cores),
        "cpu_seconds": round(cpu_secs, 2),
        "conversations_per_cpu_s": round(n / cpu_secs, 1),
        "tokens_per_cpu_s": round(tokens / cpu_secs),
    }))


if __name__ == "__main__":
    main()
