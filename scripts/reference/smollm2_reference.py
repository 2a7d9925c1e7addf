"""Reference fixtures for the `smollm2` evaluation convention: lighteval at
commit ea46419a93fb390e8f694f7c6c64c1e684487c9d, as SmolLM2's evaluation
(huggingface/smollm, evaluation/tasks.py at 4428a69, `--use_chat_template`,
the vLLM backend, max_model_length 2048) ran it.

lighteval's own code builds every prompt and scores every answer here:
`create_requests_from_tasks` (the `random.Random(42)` document shuffle and
GSM8K's few-shot draws), `PromptManager` (chat wrapping, few-shot
truncation), `LightevalModel.tok_encode_pair`, the task prompt functions,
`Metrics.loglikelihood_acc_norm_nospace` and `Metrics.quasi_exact_match_gsm8k`.
Stubbed: the network (the BLEURT model lighteval's metrics module downloads
at import), and the model engine (vLLM): its two lines that matter are
copied with file and line, and its prompt log-probabilities come from plain
`transformers` on the real SmolLM2-135M-Instruct weights in fp32.

Writes, under tests/fixtures/evals/smollm2/:

- data/gsm8k/main/{train,test}.jsonl: the lm-eval fixture's GSM8K items plus
  two long questions, so lighteval's few-shot truncation (`|5|1`) is reached
  both ways (fewer shots fit; nothing fits, which lighteval's loop leaves at
  4 shots);
- prompts.json: per task, per document (in file order), lighteval's context,
  choices, gold, (for multiple choice) each request after tok_encode_pair with
  its token ids, (for generation) the prompt's token ids after vLLM's left
  truncation, the stop strings and max new tokens vLLM received, and GSM8K's
  few-shot picks (train row indices); the shuffled document order;
- loglik.json: for arc_easy, arc_challenge, hellaswag, piqa: per request the
  summed log-probability and greedy flag from `transformers`, per document
  lighteval's acc and acc_norm on them;
- gsm8k_extract.json: lighteval's `quasi_exact_match_gsm8k` and
  `gsm8k_normalizer` on a corpus of tricky generations.

Regenerate (about a minute on 2 cores) in a scratch venv:

    python -m venv /tmp/lv   # with the project venv's packages on its path (a .pth file)
    git archive ea46419a (huggingface/lighteval) | tar -x -C /tmp/lighteval-ea46419a
    /tmp/lv/bin/pip install --no-deps --no-build-isolation /tmp/lighteval-ea46419a
    /tmp/lv/bin/pip install pycountry colorama aenum pytablewriter termcolor scipy \
        sacrebleu scikit-learn nltk rouge-score spacy langdetect
    HF_HUB_OFFLINE=1 /tmp/lv/bin/python scripts/reference/smollm2_reference.py models/SmolLM2-135M-Instruct
"""

import json
import os
import random
import sys
import typing
from types import SimpleNamespace

# torch 2.11 no longer exports T_co, which lighteval/data.py imports.
import torch.utils.data.distributed as _tud

_tud.T_co = typing.TypeVar("T_co", covariant=True)

import torch
import transformers

# The network stub: lighteval's metrics module builds a BLEURT scorer (a hub
# download) when it is imported. None of the metrics used here needs it.
class _NoDownload:
    @classmethod
    def from_pretrained(cls, *a, **k):
        return cls()

    def eval(self):
        return self


_real = (transformers.AutoTokenizer, transformers.AutoModelForSequenceClassification)
transformers.AutoTokenizer = _NoDownload
transformers.AutoModelForSequenceClassification = _NoDownload
import lighteval.metrics.metrics  # noqa: E402
import lighteval.tasks.lighteval_task  # noqa: E402
from lighteval.tasks.extended.ifeval.main import ifeval as IFEVAL_CONFIG  # noqa: E402

transformers.AutoTokenizer, transformers.AutoModelForSequenceClassification = _real

import datasets  # noqa: E402
import lighteval  # noqa: E402
import lighteval.tasks.default_prompts as prompt  # noqa: E402
from lighteval.metrics.metrics import Metrics  # noqa: E402
from lighteval.metrics.metrics_sample import LoglikelihoodAcc  # noqa: E402
from lighteval.metrics.normalizations import gsm8k_normalizer  # noqa: E402
from lighteval.models.abstract_model import LightevalModel  # noqa: E402
from lighteval.tasks.lighteval_task import LightevalTask, LightevalTaskConfig, create_requests_from_tasks  # noqa: E402
from lighteval.tasks.prompt_manager import FewShotSampler  # noqa: E402
from lighteval.tasks.requests import Doc, RequestType  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "fixtures", "evals", "data")
OUT = os.path.join(ROOT, "tests", "fixtures", "evals", "smollm2")
MAX_MODEL_LENGTH = 2048


# huggingface/smollm evaluation/tasks.py at 4428a69, lines 11-27 (it imports
# a sibling module, so the function is copied rather than imported).
def prompt_hellaswag(line, task_name: str = None):
    import re

    def preprocess(text):
        """Comes from AiHarness"""
        # text = text.strip()
        # NOTE: Brackets are artifacts of the WikiHow dataset portion of HellaSwag.
        text = text.replace(" [title]", ". ")
        text = re.sub("\\[.*?\\]", "", text)
        text = text.replace("  ", " ")
        return text

    ctx = f"{line['ctx_a']} {line['ctx_b'].capitalize()} "
    return Doc(
        task_name=task_name,
        query=preprocess(line["activity_label"] + ": " + ctx),
        choices=[" " + preprocess(ending) for ending in line["endings"]],
        gold_index=int(line["label"]) if line["label"] != "" else -1,  # -1 for test
    )


# The task configs of huggingface/smollm evaluation/tasks.py at 4428a69
# (lines 71-176), datasets replaced by the fixture files below.
NOSPACE = [Metrics.loglikelihood_acc_norm_nospace]
CONFIGS = {
    "arc_easy": LightevalTaskConfig(name="arc:easy", prompt_function=prompt.arc, suite=["custom"], hf_repo="ai2_arc", hf_subset="ARC-Easy", evaluation_splits=["test"], metric=NOSPACE),
    "arc_challenge": LightevalTaskConfig(name="arc:challenge", prompt_function=prompt.arc, suite=["custom"], hf_repo="ai2_arc", hf_subset="ARC-Challenge", evaluation_splits=["test"], metric=NOSPACE),
    "hellaswag": LightevalTaskConfig(name="hellaswag", prompt_function=prompt_hellaswag, suite=["custom"], hf_repo="Rowan/hellaswag", hf_subset="default", trust_dataset=True, metric=NOSPACE),
    "piqa": LightevalTaskConfig(name="piqa", prompt_function=prompt.piqa_harness, suite=["custom"], hf_repo="ybisk/piqa", hf_subset="plain_text", trust_dataset=True, metric=NOSPACE),
    "gsm8k": LightevalTaskConfig(name="gsm8k", prompt_function=prompt.gsm8k, suite=["custom"], hf_repo="openai/gsm8k", hf_subset="main", hf_avail_splits=["train", "test"], evaluation_splits=["test"], metric=[Metrics.quasi_exact_match_gsm8k], generation_size=256, stop_sequence=["Question:", "Question"], few_shots_select="random_sampling_from_train"),
    "ifeval": IFEVAL_CONFIG,
}
# smollm2_instruct.txt: `custom|arc|0|1`, `custom|hellaswag|0|1`,
# `custom|piqa|0|1`, `custom|gsm8k|5|1`, `extended|ifeval|0|0`.
FEWSHOT = {"arc_easy": (0, True), "arc_challenge": (0, True), "hellaswag": (0, True), "piqa": (0, True), "gsm8k": (5, True), "ifeval": (0, False)}


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def gsm8k_data():
    """The lm-eval fixture's GSM8K split plus two long questions."""
    train = read_jsonl(os.path.join(DATA, "gsm8k", "main", "train.jsonl"))
    test = read_jsonl(os.path.join(DATA, "gsm8k", "main", "test.jsonl"))
    fact = "A farmer counts 12 cows, 7 goats and 3 horses in the north field before lunch. "
    # ~1300 tokens: with 5 shots (~120 tokens each) over 1792, 2 shots fit.
    test.append({"question": fact * 60 + "How many animals are in the north field?", "answer": "12 + 7 + 3 = <<12+7+3=22>>22\n#### 22"})
    # ~2000 tokens: not even the question fits; vLLM then keeps its last 1792.
    test.append({"question": fact * 95 + "How many animals does the farmer count?", "answer": "#### 22"})
    d = os.path.join(OUT, "data", "gsm8k", "main")
    write_jsonl(os.path.join(d, "train.jsonl"), train)
    write_jsonl(os.path.join(d, "test.jsonl"), test)
    return {"train": train, "test": test}


def split_rows():
    import pyarrow.parquet as pq

    piqa = pq.read_table(os.path.join(DATA, "piqa", "data", "validation-00000-of-00001.parquet")).to_pylist()
    return {
        "arc_easy": {"test": read_jsonl(os.path.join(DATA, "arc_easy", "ARC-Easy", "test.jsonl"))},
        "arc_challenge": {"test": read_jsonl(os.path.join(DATA, "arc_challenge", "ARC-Challenge", "test.jsonl"))},
        "hellaswag": {"validation": read_jsonl(os.path.join(DATA, "hellaswag", "validation.jsonl"))},
        "piqa": {"validation": piqa},
        "gsm8k": gsm8k_data(),
        "ifeval": {"train": read_jsonl(os.path.join(DATA, "ifeval", "train.jsonl"))},
    }


class StubModel:
    """The parts of lighteval's VLLMModel that prompt building and
    tokenisation read (models/vllm_model.py:77-80: add_special_tokens
    defaults to True in VLLMModelConfig, max_length is max_model_length),
    with LightevalModel's own tok_encode and tok_encode_pair."""

    tok_encode = LightevalModel.tok_encode
    tok_encode_pair = LightevalModel.tok_encode_pair

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.add_special_tokens = True
        self.max_length = MAX_MODEL_LENGTH
        self.pairwise_tokenization = False


def tokenizer_of(model_dir):
    # transformers 5.x AutoTokenizer drops SmolLM2's Digits pre-tokenizer;
    # the 2024 stack used tokenizer.json as is.
    cfg = json.load(open(os.path.join(model_dir, "tokenizer_config.json")))
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"), eos_token=cfg.get("eos_token"), bos_token=cfg.get("bos_token"), unk_token=cfg.get("unk_token"), pad_token=cfg.get("pad_token"))
    tok.chat_template = cfg["chat_template"]
    return tok


def build(tok):
    rows = split_rows()
    lm = StubModel(tok)
    tracker = SimpleNamespace(task_config_logger=SimpleNamespace(log_num_docs=lambda *a: None), versions_logger=SimpleNamespace(log=lambda *a: None))
    # Observe which few-shot docs the sampler returns (no change to them).
    picks = {}
    orig = FewShotSampler.sample_fewshot_examples

    def observed(self, num_fewshot, variance_seed, sampler=None, formatted_doc=None):
        out = orig(self, num_fewshot=num_fewshot, variance_seed=variance_seed, sampler=sampler, formatted_doc=formatted_doc)
        if num_fewshot == 0:
            return out
        pool = self.task.fewshot_docs()
        picks[id(formatted_doc)] = [next(i for i, p in enumerate(pool) if p is x) for x in out]
        return out

    FewShotSampler.sample_fewshot_examples = observed
    out = {}
    for name, cfg in CONFIGS.items():
        task = LightevalTask(name, cfg)
        task.dataset = datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in rows[name].items()})
        docs_in_file_order = list(task.eval_docs())
        reqs, docs = create_requests_from_tasks({name: task}, {name: [FEWSHOT[name]]}, 1, lm, None, tracker, True, None)
        # create_requests_from_tasks shuffles with random.Random(42) and
        # numbers the docs in shuffled order; the same shuffle of the indices
        # maps them back to file order.
        order = list(range(len(docs_in_file_order)))
        r = random.Random()
        r.seed(42)
        r.shuffle(order)
        n_shot = FEWSHOT[name][0]
        per_doc = [None] * len(order)
        for pos, file_index in enumerate(order):
            doc = docs[next(k for k in docs if k.doc_id_seed == f"{pos}_0")]
            assert doc.query == docs_in_file_order[file_index].query
            entry = {"index": file_index, "context": doc.ctx, "choices": doc.choices, "gold": doc.gold_index, "num_effective_few_shots": doc.num_effective_few_shots}
            if n_shot:
                entry["fewshot"] = picks[id(doc)]
            per_doc[file_index] = entry
        if RequestType.LOGLIKELIHOOD in reqs:
            for q in reqs[RequestType.LOGLIKELIHOOD]:
                pos = int(q.sample_index.split("_")[0])
                entry = per_doc[order[pos]]
                ctx_ids, cont_ids = lm.tok_encode_pair(q.context, q.choice, pairwise=lm.pairwise_tokenization)
                entry.setdefault("requests", []).append({"context": q.context, "choice": q.choice, "context_ids": list(ctx_ids), "continuation_ids": list(cont_ids)})
        if RequestType.GREEDY_UNTIL in reqs:
            for q in reqs[RequestType.GREEDY_UNTIL]:
                pos = int(q.sample_index.split("_")[0])
                entry = per_doc[order[pos]]
                # models/vllm_model.py:188 (the stop list) and 202-239: the
                # model config never gets use_chat_template on the vLLM path,
                # so the task's stop strings plus the eos token are passed;
                # the prompt is left-truncated to max_length - max_new_tokens.
                stop = list(q.stop_sequence or []) + [tok.eos_token]
                ids = tok(q.context, add_special_tokens=lm.add_special_tokens)["input_ids"]
                if q.generation_size is not None and len(ids) + q.generation_size > lm.max_length:
                    ids = ids[-(lm.max_length - q.generation_size):]
                entry.update({"stop": stop, "max_new_tokens": q.generation_size, "prompt_ids": ids})
        out[name] = {"order": order, "docs": per_doc}
    FewShotSampler.sample_fewshot_examples = orig
    return out, docs_by_task_file_order(out)


def docs_by_task_file_order(out):
    return {name: [d for d in t["docs"]] for name, t in out.items()}


def loglik(model_dir, prompts):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    acc_fn = LoglikelihoodAcc().compute
    norm_fn = Metrics.loglikelihood_acc_norm_nospace.value.sample_level_fn
    res = {}
    for name in ["arc_easy", "arc_challenge", "hellaswag", "piqa"]:
        samples = []
        for d in prompts[name]["docs"]:
            lls, greedy = [], []
            for q in d["requests"]:
                ids = q["context_ids"] + q["continuation_ids"]
                with torch.no_grad():
                    logits = model(torch.tensor([ids])).logits[0].float()
                lp = torch.log_softmax(logits, -1)
                n = len(q["continuation_ids"])
                at = len(ids) - n
                tgt = torch.tensor(q["continuation_ids"])
                rows = lp[at - 1 : len(ids) - 1]
                lls.append(float(rows.gather(1, tgt[:, None]).double().sum()))
                greedy.append(bool((rows.argmax(-1) == tgt).all()))
            doc = Doc(query="", choices=d["choices"], gold_index=d["gold"])
            kw = dict(gold_ixs=[d["gold"]], choices_logprob=lls, unconditioned_logprob=None, choices_tokens=None, formatted_doc=doc)
            samples.append({"index": d["index"], "loglik": lls, "is_greedy": greedy, "acc": acc_fn(**kw), "acc_norm": norm_fn(**kw)})
        res[name] = samples
    return res


EXTRACT_CORPUS = [
    "The answer is 42.\n#### 42",
    " 12 + 7 = 19\n#### 19 ",
    "#### 1,234",
    "#### 1,234.",
    "#### $1,234",
    "So she has $1,234.50 left.\n#### 1234.50",
    "#### -7",
    "#### -7.",
    "####7",
    "#### 12 and later #### 13",
    "She had 12 apples, then 15, then 3.",
    "No numbers here at all.",
    "",
    "   ",
    "#### .5",
    "#### 5\nQuestion: next",
    "#### 3,000,000",
    "#### 072",
    "#### 22\n\n",
    "#### 2.0",
]
EXTRACT_GOLDS = [" 12 + 30 = 42\n#### 42", " #### 19", " #### 1234", " #### 1,234", " #### -7", " #### 3000000", " #### 72", " #### 22", " #### 2", " no hashes here"]


def extract():
    qem = Metrics.quasi_exact_match_gsm8k.value.sample_level_fn
    cases = []
    for pred in EXTRACT_CORPUS:
        cases.append({"prediction": pred, "normalized": gsm8k_normalizer(pred.strip()), "qem": {g: float(qem(golds=[g], predictions=[pred])) for g in EXTRACT_GOLDS}})
    return {"golds": EXTRACT_GOLDS, "gold_normalized": {g: gsm8k_normalizer(g.strip()) for g in EXTRACT_GOLDS}, "cases": cases}


def main():
    model_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct"))
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tok = tokenizer_of(model_dir)
    prompts, _ = build(tok)
    meta = {"lighteval": "ea46419a93fb390e8f694f7c6c64c1e684487c9d (" + getattr(lighteval, "__version__", "0.6.0.dev0") + ")", "smollm_tasks": "huggingface/smollm evaluation/tasks.py at 4428a69", "transformers": transformers.__version__, "torch": torch.__version__, "model": os.path.relpath(model_dir, ROOT), "max_model_length": MAX_MODEL_LENGTH}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "prompts.json"), "w") as f:
        json.dump({"meta": meta, "tasks": prompts}, f, indent=1, ensure_ascii=False)
    with open(os.path.join(OUT, "gsm8k_extract.json"), "w") as f:
        json.dump(extract(), f, indent=1, ensure_ascii=False)
    with open(os.path.join(OUT, "loglik.json"), "w") as f:
        json.dump({"meta": meta, "tasks": loglik(model_dir, prompts)}, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
