#!/usr/bin/env python3
"""SFT labels the way open-instruct computes them, on tricky conversations:
the fixture tests/fixtures/reference/sft_labels.json that
tests/it/sft_labels_reference.rs checks `smolsweep`'s tokenisation against
(token ids and label mask, per conversation, template and max length).

open-instruct's `sft_tulu_tokenize_and_truncate_v1`
(open_instruct/dataset_transformation.py): `apply_chat_template` of the
whole conversation (truncation to max_seq_length keeping the start), then,
for every non-assistant message, labels -100 from the token count of the
conversation before it to that of the conversation through it, with the
generation prompt when an assistant message follows; it stops once a
message ends past max_seq_length. The tokenizer is SmolLM2-135M-Instruct's
tokenizer.json loaded as is (transformers 5.x `AutoTokenizer` drops its
digit split), with its tokenizer_config.json's chat template and special
tokens. Pinned versions: scripts/reference/requirements.txt.

usage: .venv/bin/python scripts/reference/sft_labels_reference.py models/SmolLM2-135M-Instruct
"""
import json
import os
import sys

import transformers
from transformers import PreTrainedTokenizerFast

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "reference", "sft_labels.json")

# open-instruct's CHAT_TEMPLATES["tulu"] and SmolLM2's ChatML without its
# default system prompt: the built-ins of crates/model/src/chat.rs.
TULU = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'assistant' %}{% if not loop.last %}"
    "{{ '<|assistant|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% else %}{{ '<|assistant|>\\n' + message['content'] + eos_token }}{% endif %}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    "{% endfor %}"
)
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def u(c):
    return {"role": "user", "content": c}


def a(c):
    return {"role": "assistant", "content": c}


def s(c):
    return {"role": "system", "content": c}


# Where re-tokenising a prefix could differ from cutting the whole: text
# running across a template boundary (whitespace that starts or ends a
# message), added tokens inside content, digits, non-ASCII, empty turns.
CONVERSATIONS = [
    [u("What is 2+2?"), a("4")],
    [u("Hi"), a("\n\nHello there!")],
    [u("Hi"), a("   leading spaces"), u("again  "), a("\ttab-led")],
    [s("You are terse."), u("Count: 1234567890"), a("12 345 6789.")],
    [u("trailing newlines\n\n"), a("\n"), u("\n"), a(" ")],
    [u("literal <|im_end|> and <|im_start|>user inside"), a("<|im_end|> echoed")],
    [u(""), a("")],
    [u("émoji 😀 and ünïcödé — “quotes”"), a("日本語の答え。")],
    [u("first"), u("second user in a row"), a("one answer"), a("two answers")],
    [a("assistant speaks first"), u("then the user"), a("and again")],
    [s("sys"), u("q1"), a("a1"), u("q2"), a("a2"), u("q3 without an answer")],
    [u("code:\n```python\ndef f(x):\n    return x  \n```\n"), a("    indented\n\n\n\nmany newlines   ")],
    [{"role": "tool", "content": "tool output 42"}, u("use it"), a("ok: 42")],
    [u("x" * 300), a("y " * 200)],
    # Whitespace that a prefix ends in and the next message's text follows
    # in the whole (Tulu's `<|user|>` is plain text to SmolLM2's tokenizer):
    # cutting the whole at its last token before the prefix's end is wrong
    # here, cutting at its last added token is right.
    [s("system ends\n\n"), u("user ends\n\n\n"), u("again\n\n"), a("fine")],
    [u("a\n\n"), {"role": "tool", "content": "  \n\n"}, u("b"), a("c")],
]


def ids(tok, template, messages, max_len, gen):
    return tok.apply_chat_template(
        conversation=messages, chat_template=template, tokenize=True, padding=False,
        truncation=True, max_length=max_len, add_generation_prompt=gen, return_dict=False,
    )


def encode(tok, template, messages, max_len):
    input_ids = ids(tok, template, messages, max_len, False)
    labels = list(input_ids)
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            continue
        start = 0 if i == 0 else len(ids(tok, template, messages[:i], max_len, False))
        gen = i < len(messages) - 1 and messages[i + 1]["role"] == "assistant"
        end = len(ids(tok, template, messages[: i + 1], max_len, gen))
        for j in range(start, min(end, len(labels))):
            labels[j] = -100
        if end >= max_len:
            break
    return input_ids, [0 if x == -100 else 1 for x in labels]


def main():
    model = sys.argv[1]
    cfg = json.load(open(os.path.join(model, "tokenizer_config.json")))
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model, "tokenizer.json"))
    for k in ("bos_token", "eos_token", "pad_token", "unk_token"):
        v = cfg.get(k)
        if isinstance(v, dict):
            v = v.get("content")
        if v is not None:
            setattr(tok, k, v)
    templates = {"model": cfg["chat_template"], "chatml": CHATML, "tulu": TULU}
    cases = []
    for name, template in templates.items():
        for max_len in (4096, 24):
            for c, messages in enumerate(CONVERSATIONS):
                input_ids, mask = encode(tok, template, messages, max_len)
                cases.append({"template": name, "max_seq_len": max_len, "conversation": c,
                              "ids": input_ids, "mask": mask})
    json.dump({
        "generated_by": "scripts/reference/sft_labels_reference.py",
        "transformers": transformers.__version__,
        "tokenizers": __import__("tokenizers").__version__,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }, open(OUT, "w"), ensure_ascii=False)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
