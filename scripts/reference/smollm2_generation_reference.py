"""Reference generations for the `smollm2` convention: lighteval at commit
ea46419a93fb390e8f694f7c6c64c1e684487c9d, its vLLM backend's own
`VLLMModel.greedy_until` / `_generate` (src/lighteval/models/vllm_model.py)
run as is, with only the engine replaced: `vllm.LLM.generate` and
`vllm.SamplingParams` are a stand-in ([`StandInLLM`]) that decodes greedily
with plain `transformers` (fp32, CPU, the real SmolLM2-135M-Instruct
weights) and applies vLLM's own rules for what it returns. vLLM itself
cannot run here (its PyPI wheels need a CUDA GPU).

What the stand-in does, and where vLLM does it (vLLM 0.6.x, the engine of
lighteval@ea46419a's day, November 2024; the v0 engine that `LLM.generate`
ran then):

- greedy: `temperature=0.0` is argmax of the last position's logits
  (vllm/sampling_params.py: `SamplingType.GREEDY` when temperature is below
  1e-5; the sampler takes `torch.argmax`, the first index of a tie);
- after each token, incremental detokenisation with
  `skip_special_tokens=True` (the SamplingParams default): the text of
  `tokens[prefix_offset:]` less that of `tokens[prefix_offset:read_offset]`,
  held back while it ends in U+FFFD (an unfinished UTF-8 sequence),
  starting from the last prompt tokens (vllm/transformers_utils/
  detokenizer_utils.py, `convert_prompt_ids_to_tokens` and
  `detokenize_incrementally`; detokenizer.py `decode_sequence_inplace`);
- then the stop checks, in vLLM's order (vllm/engine/output_processor/
  stop_checker.py, `StopChecker.maybe_stop_sequence`): the eos token
  (unless `ignore_eos`; its text, empty once special tokens are skipped,
  removed) -> finish_reason "stop", stop_reason None; a `stop_token_ids`
  id; the stop strings, each in list order looked for in the text the new
  characters could complete (`output_text.find(stop, -new_chars -
  len(stop))`), the text cut before the match
  (`include_stop_str_in_output=False`) -> "stop", stop_reason the string;
  prompt plus output longer than `max_model_len` -> "length"; `max_tokens`
  output tokens -> "length";
- `max_tokens=None` (BBH) leaves the max_model_len check as the only cap:
  `seq.get_len() > max_model_len`, after the new token is appended, so a
  prompt of n tokens gets up to max_model_len + 1 - n (smolsweep's
  `MaxNew::Window`; vLLM's v1 engine, 0.8 on, would give max_model_len - n);
- `logprobs=0` returns the chosen token's log-probability per step, which
  `greedy_until` reads.

lighteval builds the requests (`create_requests_from_tasks`, the chat
template, GSM8K's `Random(42)` shot draws, BBH's balanced sampler), adds
the eos text to the stop strings, tokenises and left-truncates
(`greedy_until`), and scores with the pipeline's own
`get_metric_method_from_category` -> `apply_generative_metric` and each
task's metrics (GSM8K `quasi_exact_match_gsm8k`, BBH `exact_match`, IFEval
`ifeval_metric`). The documents (written under
tests/fixtures/evals/smollm2/generation/data/):

- gsm8k/main/{train,test}.jsonl: the smollm2 fixture's train split and
  test questions GSM8K_TEST of its test split, then GSM8K_EXTRA, written
  for this fixture so that some answers end on a stop string (5-shot);
- ifeval/train.jsonl: IFEVAL rows (google/IFEval schema) whose greedy
  answers end well before the 1280-token cap;
- bbh/: BBH_SUBTASKS of tests/fixtures/evals/mmlu_bbh/data/bbh, each
  evaluated on its first BBH_DOCS rows with the whole split as the
  few-shot pool (smolsweep's `limit`; in lighteval a split of those rows
  to evaluate and the whole split as `few_shots_split`).

Writes tests/fixtures/evals/smollm2/generations.json: per task, per
document (file order), the prompt token ids the engine received, the stop
strings and max_tokens, the generated token ids, the returned text,
finish_reason / stop_reason, the smallest top-1 minus top-2 logit margin
over the generated tokens (and where), and lighteval's metric values.

Regenerate (about 30 s on 2 cores) in the venv of smollm2_reference.py's
docstring (lighteval@ea46419a --no-deps, the project venv's torch 2.11.0 /
transformers 5.24.0 on its path; step by step in crates/evals/data/README.md):

    HF_HUB_OFFLINE=1 /tmp/lv/bin/python scripts/reference/smollm2_generation_reference.py models/SmolLM2-135M-Instruct
"""

import json
import os
import random
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smollm2_reference as base  # noqa: E402  (imports lighteval with the network stubbed)

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import lighteval.models.vllm_model as vllm_model  # noqa: E402
from lighteval.metrics.metrics import MetricCategory, Metrics  # noqa: E402
from lighteval.tasks.lighteval_task import LightevalTask, LightevalTaskConfig, create_requests_from_tasks  # noqa: E402
from lighteval.tasks.requests import Doc, RequestType  # noqa: E402

ROOT = base.ROOT
OUT = os.path.join(ROOT, "tests", "fixtures", "evals", "smollm2")
GEN_DATA = os.path.join(OUT, "generation", "data")
MAX_MODEL_LENGTH = base.MAX_MODEL_LENGTH

# Rows of tests/fixtures/evals/smollm2/data/gsm8k/main/test.jsonl.
GSM8K_TEST = [0, 2]
# GSM8K-schema rows written for this fixture, whose greedy answers end on
# the stop string `Question` (at the first token, and after a few words):
# none of the rows above or the BBH and IFEval documents does (all end at
# the eos token), and without them dropping the stop strings would pass.
# Picked from a scan of candidates capped at 80 tokens.
GSM8K_EXTRA = [
    {"question": "Write a new question about apples for a math quiz. Begin it with the word Question.", "answer": "#### 0"},
    {"question": "What is the next question in this list? Question 1: 2 + 2. Question 2: 3 + 3. Question 3: 4 + 4.", "answer": "#### 0"},
]
BBH_SUBTASKS = ["boolean_expressions", "causal_judgement"]
BBH_DOCS = 2
# google/IFEval rows (key, prompt, instruction_id_list, kwargs): key 1001 of
# the lm-eval fixture and short-answer prompts of the same kind.
IFEVAL_EXTRA = [
    {"key": 2001, "prompt": "Write a title for a story about a lost dog. The title must be wrapped in double angular brackets, such as <<my title>>.",
     "instruction_id_list": ["detectable_format:title"], "kwargs": [{}]},
    {"key": 2002, "prompt": "Describe a sunny day in one short paragraph. Do not use any commas in your response.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
]


# ---------------------------------------------------------------- the engine


class Logprob(SimpleNamespace):
    """vllm.sequence.Logprob: logprob, rank, decoded_token."""


class SamplingParams:
    """The vllm.SamplingParams fields `_generate` sets, with vLLM's
    defaults for the rest (vllm/sampling_params.py)."""

    def __init__(self, n=1, temperature=1.0, max_tokens=16, stop=None, logprobs=None, prompt_logprobs=None,
                 detokenize=True, ignore_eos=False, skip_special_tokens=True, spaces_between_special_tokens=True,
                 include_stop_str_in_output=False, min_tokens=0, stop_token_ids=None):
        assert n == 1 and temperature < 1e-5, "greedy only"
        assert detokenize and prompt_logprobs is None, "the generation path only"
        self.max_tokens = max_tokens
        # __post_init__: None -> [], a string -> [string].
        self.stop = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
        self.logprobs = logprobs
        self.ignore_eos = ignore_eos
        self.skip_special_tokens = skip_special_tokens
        self.include_stop_str_in_output = include_stop_str_in_output
        self.min_tokens = min_tokens
        self.stop_token_ids = list(stop_token_ids or [])


class Detokenizer:
    """vLLM's incremental detokenisation of one sequence (the algorithm of
    detokenizer_utils.py, fast-tokenizer branch), written out here."""

    OFFSET = 5  # INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET

    def __init__(self, tok, prompt_ids, skip_special_tokens):
        self.tok = tok
        self.skip = skip_special_tokens
        # The prompt's last OFFSET + 2 tokens give the decoder its context.
        self.tokens = tok.convert_ids_to_tokens(prompt_ids[-self.OFFSET - 2:], skip_special_tokens=self.skip)
        self.tokens = [t if t is not None else "" for t in self.tokens]
        self.read = len(self.tokens)
        self.prefix = max(self.read - self.OFFSET, 0)

    def push(self, token_id):
        """Returns the characters token_id adds to the output text."""
        new = self.tok.convert_ids_to_tokens([token_id], skip_special_tokens=self.skip)
        new = [new] if isinstance(new, str) else list(new)
        all_tokens = self.tokens + new
        prefix_text = self.tok.convert_tokens_to_string(all_tokens[self.prefix:self.read])
        new_text = self.tok.convert_tokens_to_string(all_tokens[self.prefix:])
        self.tokens = all_tokens
        if len(new_text) <= len(prefix_text) or new_text.endswith("\ufffd"):
            return ""
        self.prefix, self.read = self.read, len(all_tokens)
        return new_text[len(prefix_text):]


class StandInLLM:
    """`vllm.LLM` for `generate(prompt_token_ids=..., sampling_params=...)`."""

    def __init__(self, model, tok, max_model_len):
        self.model = model
        self.tok = tok
        self.max_model_len = max_model_len
        self.eos_token_id = tok.eos_token_id
        # (prompt ids, how it ended) per call, for the fixture.
        self.calls = []

    def generate(self, prompt_token_ids, sampling_params, use_tqdm=True):
        return [self._one(list(p), sampling_params) for p in prompt_token_ids]

    @torch.no_grad()
    def _one(self, prompt, sp):
        assert len(prompt) <= self.max_model_len, "vLLM refuses a prompt longer than max_model_len"
        detok = Detokenizer(self.tok, prompt, sp.skip_special_tokens)
        out_ids, logprobs, text = [], [], ""
        finish, stop_reason = None, None
        min_margin = (float("inf"), -1)
        past = None
        feed = torch.tensor([prompt])
        while finish is None:
            # transformers 5.24 names the KV cache `cache` (in and out).
            res = self.model(feed, cache=past, use_cache=True)
            past = res.cache
            logits = res.logits[0, -1].float()
            top = torch.topk(logits, 2)
            tok_id = int(torch.argmax(logits))
            margin = float(top.values[0] - top.values[1])
            if margin < min_margin[0]:
                min_margin = (margin, len(out_ids))
            lp = float(torch.log_softmax(logits, -1)[tok_id])
            out_ids.append(tok_id)
            logprobs.append({tok_id: Logprob(logprob=lp, rank=1, decoded_token=None)})
            new_text = detok.push(tok_id)
            text += new_text
            n_new = len(new_text)
            feed = torch.tensor([[tok_id]])
            # StopChecker.maybe_stop_sequence, in its order.
            if len(out_ids) < sp.min_tokens:
                continue
            if not sp.ignore_eos and tok_id == self.eos_token_id:
                if n_new and not sp.include_stop_str_in_output:
                    text = text[:-n_new]
                finish = "stop"
                break
            if tok_id in sp.stop_token_ids:
                if n_new and not sp.include_stop_str_in_output:
                    text = text[:-n_new]
                finish, stop_reason = "stop", tok_id
                break
            if n_new:
                for s in sp.stop:
                    at = text.find(s, -n_new - len(s))
                    if at == -1:
                        continue
                    if sp.include_stop_str_in_output:
                        at += len(s)
                    text = text[:at]
                    finish, stop_reason = "stop", s
                    break
                if finish:
                    break
            if len(prompt) + len(out_ids) > self.max_model_len:
                finish = "length"
                break
            if sp.max_tokens is not None and len(out_ids) == sp.max_tokens:
                finish = "length"
                break
        print(f"  {len(prompt)} prompt tokens -> {len(out_ids)} generated, {finish} {stop_reason!r}", file=sys.stderr, flush=True)
        self.calls.append((prompt, {"finish_reason": finish, "stop_reason": stop_reason,
                                    "min_logit_margin": round(min_margin[0], 4), "min_margin_at": min_margin[1]}))
        completion = SimpleNamespace(index=0, text=text, token_ids=out_ids, logprobs=logprobs,
                                     finish_reason=finish, stop_reason=stop_reason)
        return SimpleNamespace(prompt_token_ids=prompt, outputs=[completion])


def vllm_model_of(tok, engine):
    """lighteval's VLLMModel as `VLLMModel.__init__` sets it up for
    SmolLM2's model_args (dtype, max_model_length=2048; the config's
    use_chat_template stays False on this path, add_special_tokens True),
    with the stand-in engine in place of `LLM(**model_args)`."""
    vllm_model.SamplingParams = SamplingParams
    m = object.__new__(vllm_model.VLLMModel)
    cfg = vllm_model.VLLMModelConfig(pretrained="SmolLM2-135M-Instruct", max_model_length=MAX_MODEL_LENGTH)
    m._config = cfg
    m.use_chat_template = cfg.use_chat_template
    m.data_parallel_size = int(cfg.data_parallel_size)
    m._add_special_tokens = cfg.add_special_tokens if cfg.add_special_tokens is not None else False
    tok.pad_token = tok.eos_token  # _create_auto_tokenizer
    m._tokenizer = tok
    m._max_length = int(cfg.max_model_length)
    m.model = engine
    m.pairwise_tokenization = cfg.pairwise_tokenization
    return m


# ---------------------------------------------------------------- the tasks


# huggingface/smollm evaluation/tasks.py at 4428a69: bbh_prompt and the BBH
# task config (a module of that repo, so copied rather than imported).
def bbh_prompt(line, task_name: str = None):
    return Doc(task_name=task_name, query="Question: " + line["input"] + "\nAnswer: ", choices=[line["target"]], gold_index=0)


def bbh_config(subset):
    return LightevalTaskConfig(name=f"bbh:{subset}", prompt_function=bbh_prompt, suite=["custom"], hf_repo="lighteval/big_bench_hard",
                               hf_subset=subset, metric=[Metrics.exact_match], hf_avail_splits=["test", "train"],
                               evaluation_splits=["test"], few_shots_split="train", stop_sequence=["Question:", "Question"])


def write_data():
    train = base.read_jsonl(os.path.join(OUT, "data", "gsm8k", "main", "train.jsonl"))
    test_all = base.read_jsonl(os.path.join(OUT, "data", "gsm8k", "main", "test.jsonl"))
    test = [test_all[i] for i in GSM8K_TEST] + GSM8K_EXTRA
    base.write_jsonl(os.path.join(GEN_DATA, "gsm8k", "main", "train.jsonl"), train)
    base.write_jsonl(os.path.join(GEN_DATA, "gsm8k", "main", "test.jsonl"), test)
    # Key 1000 (the sea poem) runs to the 1280-token cap, as did an all-capitals
    # "capital of France" prompt: left out (the test would take minutes).
    ifeval = [r for r in base.read_jsonl(os.path.join(base.DATA, "ifeval", "train.jsonl")) if r["key"] != 1000] + IFEVAL_EXTRA
    base.write_jsonl(os.path.join(GEN_DATA, "ifeval", "train.jsonl"), ifeval)
    bbh = {}
    src = os.path.join(ROOT, "tests", "fixtures", "evals", "mmlu_bbh", "data", "bbh")
    for name in BBH_SUBTASKS:
        bbh[name] = base.read_jsonl(os.path.join(src, name, "train-00000-of-00001.jsonl"))
    return {"gsm8k": {"train": train, "test": test}, "ifeval": {"train": ifeval},
            **{f"bbh:{n}": {"test": rows[:BBH_DOCS], "train": rows} for n, rows in bbh.items()}}


def main():
    model_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct"))
    # One thread: on a shared 2-core machine more threads thrash (20x slower).
    torch.set_num_threads(1)
    tok = base.tokenizer_of(model_dir)
    rows = write_data()
    configs = {"gsm8k": base.CONFIGS["gsm8k"], "ifeval": base.CONFIGS["ifeval"], **{f"bbh:{n}": bbh_config(n) for n in BBH_SUBTASKS}}
    fewshot = {"gsm8k": [(5, True)], "ifeval": [(0, False)], **{f"bbh:{n}": [(3, True)] for n in BBH_SUBTASKS}}
    tasks = {}
    for name, cfg in configs.items():
        t = LightevalTask(name, cfg)
        t.dataset = datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in rows[name].items()})
        tasks[name] = t
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    engine = StandInLLM(model, tok, MAX_MODEL_LENGTH)
    lm = vllm_model_of(tok, engine)
    tracker = SimpleNamespace(task_config_logger=SimpleNamespace(log_num_docs=lambda *a: None), versions_logger=SimpleNamespace(log=lambda *a: None))
    # As the pipeline does: every task's requests at once (SmolLM2's
    # `--use_chat_template`), then one greedy_until call for all of them.
    reqs, docs = create_requests_from_tasks(tasks, fewshot, 1, lm, None, tracker, True, None)
    greedy = reqs[RequestType.GREEDY_UNTIL]
    responses = lm.greedy_until(greedy)
    assert len(engine.calls) == len(greedy)
    out = {}
    for task_name, t in tasks.items():
        file_docs = list(t.eval_docs())
        order = list(range(len(file_docs)))
        r = random.Random()
        r.seed(42)
        r.shuffle(order)
        per_doc = [None] * len(order)
        for q, resp in zip(greedy, responses):
            # create_requests_from_tasks names requests "{task}|{shots}".
            if q.task_name.rsplit("|", 1)[0] != task_name:
                continue
            pos = int(q.sample_index.split("_")[0])
            file_index = order[pos]
            uid = next(k for k in docs if k.task_name == q.task_name and k.doc_id_seed == q.sample_index)
            doc = docs[uid]
            assert doc.query == file_docs[file_index].query
            fn = t.get_metric_method_from_category(MetricCategory.GENERATIVE)
            metrics = [m for m in t.metrics if m.category == MetricCategory.GENERATIVE]
            score = fn(sample_ids=[q.sample_index], responses=[[resp]], formatted_docs=[doc], metrics=metrics)[0]
            gen = resp.generated_tokens[0]
            per_doc[file_index] = {
                "index": file_index,
                "context": q.context,
                "stop": list(q.stop_sequence),
                "max_new_tokens": q.generation_size,
                "prompt_ids": list(resp.input_tokens),
                "generated_ids": list(gen),
                "text": resp.result[0],
                "score": {k: float(v) if not isinstance(v, list) else [bool(x) for x in v] for k, v in score.items()},
            }
        out[task_name] = [d for d in per_doc if d is not None]
    # Finish reasons and margins, matched by prompt (each prompt is unique).
    for task_docs in out.values():
        for d in task_docs:
            k = next(i for i, call in enumerate(engine.calls) if call[0] == d["prompt_ids"])
            d.update(engine.calls[k][1])
    n_gen = sum(len(d["generated_ids"]) for ds in out.values() for d in ds)
    meta = {"lighteval": "ea46419a93fb390e8f694f7c6c64c1e684487c9d", "engine": "stand-in for vllm.LLM.generate: transformers greedy, fp32, CPU",
            "transformers": transformers.__version__, "torch": torch.__version__, "model": os.path.relpath(model_dir, ROOT),
            "max_model_length": MAX_MODEL_LENGTH, "generated_tokens": n_gen}
    with open(os.path.join(OUT, "generations.json"), "w") as f:
        json.dump({"meta": meta, "tasks": out}, f, indent=1, ensure_ascii=False)
    print(f"{n_gen} generated tokens", file=sys.stderr)


if __name__ == "__main__":
    main()
