"""Reference fixtures for MMLU-Pro and BBH in both conventions, on
synthetic documents in the real schemas (TIGER-Lab/MMLU-Pro; BBH's
`input`/`target` per subtask folder). Writes tests/fixtures/evals/mmlu_bbh/:

- data/mmlu_pro/data/{test,validation}-00000-of-00001.jsonl,
  data/bbh/SUBTASK/train-00000-of-00001.jsonl (27 subtasks);
- reference.json:
  - lm_eval: lm-evaluation-harness 0.4.13's own `fewshot_context` for
    every MMLU-Pro (`mmlu_pro_*`) and BBH (`bbh_cot_fewshot_*`) document,
    with the bundled YAMLs and utils (datasets pointed at the files above);
    its RegexFilter + exact_match on a corpus of tricky generations;
  - smollm2: lighteval@ea46419a's prompts (copied below with file and
    lines), its balanced few-shot picks, its chat-templated contexts and
    `tok_encode_pair` tokens with the SmolLM2 tokenizer loaded from
    tokenizer.json as is, its ExactMatches(strip_strings=True) on the
    corpus; MMLU-Pro MCF per-letter log-likelihoods from `transformers`
    (fp32, CPU) on the real SmolLM2-135M-Instruct.

Regenerate (a minute on 2 cores):

    python -m venv /tmp/ref && echo $PWD/.venv/lib/python3.11/site-packages > /tmp/ref/lib/python3.11/site-packages/main.pth
    /tmp/ref/bin/pip install --no-deps lm_eval==0.4.13 && /tmp/ref/bin/pip install sacrebleu word2number pyyaml
    /tmp/ref/bin/python scripts/reference/mmlu_bbh_reference.py models/SmolLM2-135M-Instruct
"""

import json
import os
import random
import string
import sys
from collections import defaultdict
from itertools import cycle

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "evals", "mmlu_bbh")
DATA = os.path.join(OUT, "data")

SUBTASKS = [
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa",
    "dyck_languages", "formal_fallacies", "geometric_shapes", "hyperbaton",
    "logical_deduction_five_objects", "logical_deduction_seven_objects",
    "logical_deduction_three_objects", "movie_recommendation", "multistep_arithmetic_two",
    "navigate", "object_counting", "penguins_in_a_table", "reasoning_about_colored_objects",
    "ruin_names", "salient_translation_error_detection", "snarks", "sports_understanding",
    "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects",
    "web_of_lies", "word_sorting",
]

# ---------------------------------------------------------------- data


def mmlu_rows():
    cats = ["biology", "computer science", "law", "other"]
    test, val = [], []
    qid = 0
    for ci, cat in enumerate(cats):
        for j in range(5):
            n = 3 + ((ci * 5 + j) * 3) % 8  # 3..10 options
            opts = [f" option {k} of q{qid} " if k % 3 == 0 else f"choice {chr(97 + k)} ({cat})" for k in range(n)]
            ai = (qid * 7) % n
            test.append({"question_id": qid, "question": f"Test question {qid} about {cat}: what is {qid} + {j}?",
                         "options": opts, "answer": "ABCDEFGHIJ"[ai], "answer_index": ai,
                         "cot_content": "", "category": cat, "src": f"ori_mmlu-{cat}"})
            qid += 1
        for j in range(6):
            n = 4 + j % 6
            ai = j % n
            val.append({"question_id": 1000 + qid, "question": f"Solved {cat} question {j}?",
                        "options": [f"v{k} " for k in range(n)], "answer": "ABCDEFGHIJ"[ai], "answer_index": ai,
                        "cot_content": f"A: Let's think step by step. Step one for {cat} {j}. The answer is ({'ABCDEFGHIJ'[ai]}).",
                        "category": cat, "src": "cot_lib"})
            qid += 1
    # A category with an underscore (lighteval replaces it with a space).
    test.append({"question_id": 99, "question": "Underscore?", "options": ["yes", "no"], "answer": "B",
                 "answer_index": 1, "cot_content": "", "category": "computer_science", "src": "x"})
    return test, val


def bbh_rows(name, si):
    # Imbalanced targets with ties, a duplicated item, trailing spaces.
    labels = ["True", "False"] if si % 3 == 0 else ["(A)", "(B)", "(C)"] if si % 3 == 1 else ["Yes", "No", "valid", "invalid"]
    rows = []
    for j in range(6 + si % 4):
        t = labels[(j * (si + 1)) % len(labels)] if j % 4 else labels[0]
        rows.append({"input": f"{name} item {j}: decide. ", "target": t})
    rows.append(dict(rows[1]))  # an exact duplicate
    return rows


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


# ------------------------------------------------- lighteval (copied code)

# smollm text/evaluation/smollm2/tasks.py, mmlu_pro_mc_prompt (lines 38-53)
# and bbh_prompt (lines 69-75), returning the Doc fields as a dict.
def mmlu_pro_mc_prompt(line):
    options = line["options"]
    letters = [chr(ord("A") + i) for i in range(len(options))]
    topic = line["category"].replace('_', ' ')
    query = f"The following are multiple choice questions (with answers) about {topic}.\n\n"
    query += line["question"] + "\n"
    query += "".join([f"{letter}. {choice}\n" for letter, choice in zip(letters, options)])
    query += "Answer:"
    return {"query": query, "choices": letters, "gold_index": line["answer_index"],
            "instruction": f"The following are multiple choice questions (with answers) about {topic}.\n\n"}


def bbh_prompt(line):
    return {"query": "Question: " + line["input"] + "\nAnswer: ", "choices": [line["target"]], "gold_index": 0,
            "instruction": None}


# lighteval@ea46419a src/lighteval/tasks/prompt_manager.py,
# FewShotSampler._init_fewshot_sampling_balanced (lines 340-384).
def balanced(fewshotpool, num_fewshot, variance_seed):
    fewshotpool = list(fewshotpool)
    random.seed(variance_seed)
    label_to_instances = defaultdict(list)
    for instance in fewshotpool:
        target = instance["choices"][instance["gold_index"]]
        label_to_instances[target].append(instance)
    counts_to_labels = defaultdict(list)
    for label, instances in sorted(label_to_instances.items(), key=lambda kv: kv[0]):
        counts_to_labels[len(instances)].append(label)
    sorted_labels = []
    for count in sorted(counts_to_labels, reverse=True):
        labels = counts_to_labels[count]
        random.shuffle(labels)
        sorted_labels.extend(labels)
    examples = []
    num_instances_to_sample = min(len(fewshotpool), num_fewshot + 1)
    labels_iterable = cycle(sorted_labels)
    while num_instances_to_sample > 0:
        next_label = next(labels_iterable, None)
        if not next_label:
            break
        instances = label_to_instances[next_label]
        if len(instances) == 0:
            continue
        examples.append(instances.pop(random.randrange(len(instances))))
        num_instances_to_sample -= 1
    return examples


# prompt_manager.py PromptManager.get_examples, chat branch (lines 243-268),
# system_prompt None.
def get_examples_chat(tok, example, instruction, fewshot_ex):
    examples = []
    for ex in fewshot_ex:
        q = ex["query"][len(ex["instruction"] or ""):]
        examples.append({"role": "user", "content": q})
        examples.append({"role": "assistant", "content": ex["choices"][ex["gold_index"]]})
    examples.append({"role": "user", "content": example})
    examples[0]["content"] = instruction + examples[0]["content"]
    return tok.apply_chat_template(examples, tokenize=False, add_generation_prompt=True)


# src/lighteval/models/abstract_model.py tok_encode_pair (add_special_tokens=True).
def tok_encode_pair(tok, context, continuation):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole_enc = tok.encode(context + continuation, add_special_tokens=True)
    context_enc = tok.encode(context, add_special_tokens=True)
    return context_enc, whole_enc[len(context_enc):]


# src/lighteval/metrics/metrics_sample.py ExactMatches(strip_strings=True).compute_one_item
def lighteval_em(gold, pred):
    if not pred:
        return 0
    return 1 if gold.strip() == pred.strip() else 0


CORPUS = [" False", "False", "(A).", "(A)", "the answer is (B)", "the answer is (B).", "The answer is B",
          "So the answer is False.", "no match here", "the answer is C  ", "  (A)  ", "",
          "Let's think. the answer is (J) and the answer is (A).", "answer is D", "the answer is valid.\n"]


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct")
    test, val = mmlu_rows()
    write_jsonl(os.path.join(DATA, "mmlu_pro", "data", "test-00000-of-00001.jsonl"), test)
    write_jsonl(os.path.join(DATA, "mmlu_pro", "data", "validation-00000-of-00001.jsonl"), val)
    bbh = {}
    for si, name in enumerate(SUBTASKS):
        bbh[name] = bbh_rows(name, si)
        write_jsonl(os.path.join(DATA, "bbh", name, "train-00000-of-00001.jsonl"), bbh[name])

    from transformers import PreTrainedTokenizerFast
    cfg = json.load(open(os.path.join(model_dir, "tokenizer_config.json")))
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    tok.chat_template = cfg["chat_template"]

    ref = {"lm_eval_version": "0.4.13", "lighteval_commit": "ea46419a", "smollm2": {}, "lm_eval": {}}

    # ---- smollm2 MMLU-Pro
    mm = []
    for line in test:
        d = mmlu_pro_mc_prompt(line)
        ctx = get_examples_chat(tok, d["query"][len(d["instruction"]):], d["instruction"], [])
        encs = [tok_encode_pair(tok, ctx, c) for c in d["choices"]]
        mm.append({"context": ctx, "choices": d["choices"], "gold": d["gold_index"],
                   "context_ids": encs[0][0], "continuation_ids": [e[1] for e in encs]})
    # ---- smollm2 BBH
    bb = {}
    for name in SUBTASKS:
        docs = [bbh_prompt(r) for r in bbh[name]]
        pool = balanced([dict(d) for d in docs], 3, 0)
        # Positions of the picks in the split, by content (the picks are
        # copies): of a duplicated row's two copies, the first pick of
        # either is recorded as the first copy.
        chosen = []
        for p in pool:
            chosen.append(next(i for i, d in enumerate(docs) if d is not None and d == p and i not in chosen))
        prompts = []
        for d in docs:
            shots = [x for x in pool if x != d][:3]
            prompts.append(get_examples_chat(tok, d["query"], "", shots))
        bb[name] = {"chosen": chosen, "prompts": prompts}
    ref["smollm2"]["mmlu_pro"] = mm
    ref["smollm2"]["bbh"] = bb
    ref["smollm2"]["em"] = [[g, p, lighteval_em(g, p)] for p in CORPUS for g in ["False", "(A)", "B", "valid"]]

    # ---- lm-eval's own prompts
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter
    from lm_eval.tasks import TaskManager

    # The tasks load as lm-eval registers them (bundled YAMLs, includes and
    # utils); only the hub download is replaced by the local files.
    import datasets
    import lm_eval.api.task as lm_task

    mm_files = {"test": os.path.join(DATA, "mmlu_pro", "data", "test-00000-of-00001.jsonl"),
                "validation": os.path.join(DATA, "mmlu_pro", "data", "validation-00000-of-00001.jsonl")}

    real_load = datasets.load_dataset

    def local_load_dataset(path=None, name=None, **kwargs):
        if path == "json":
            return real_load(path, name, **kwargs)
        if path == "TIGER-Lab/MMLU-Pro":
            return real_load("json", data_files=mm_files)
        assert path in ("SaylorTwift/bbh", "lukaemon/bbh"), path
        f = os.path.join(DATA, "bbh", name, "train-00000-of-00001.jsonl")
        return real_load("json", data_files={"test": f})

    lm_task.datasets.load_dataset = local_load_dataset
    tm = TaskManager()
    lm_mm = {}
    for cat in ["biology", "computer_science", "law", "other"]:
        t = list(tm.load_task_or_group([f"mmlu_pro_{cat}"]).values())[0]
        for doc in t.test_docs():
            lm_mm[str(doc["question_id"])] = t.fewshot_context(doc, 5)
    lm_bb = {}
    for name in SUBTASKS:
        t = list(tm.load_task_or_group([f"bbh_cot_fewshot_{name}"]).values())[0]
        lm_bb[name] = [t.fewshot_context(doc, 3) for doc in t.test_docs()]
    ref["lm_eval"]["mmlu_pro_prompts"] = lm_mm
    ref["lm_eval"]["bbh_prompts"] = lm_bb
    mf = RegexFilter(regex_pattern=r"answer is \(?([ABCDEFGHIJ])\)?")
    bf = RegexFilter(regex_pattern=r"(?<=the answer is )(.*)(?=.)")
    ref["lm_eval"]["mmlu_pro_extract"] = [
        [r, mf.apply([[r]], [None])[0][0], g,
         float(exact_match_hf_evaluate([mf.apply([[r]], [None])[0][0]], [g], ignore_case=True, ignore_punctuation=True)["exact_match"])]
        for r in CORPUS for g in ["B", "J", "A"]]
    ref["lm_eval"]["bbh_extract"] = [
        [r, bf.apply([[r]], [None])[0][0], g,
         float(exact_match_hf_evaluate([bf.apply([[r]], [None])[0][0]], [g])["exact_match"])]
        for r in CORPUS for g in ["False", "(A)", "(B)", "valid"]]

    # ---- MMLU-Pro MCF log-likelihoods, transformers fp32 on the real weights
    import torch
    from transformers import AutoModelForCausalLM
    # Written now and again with the log-likelihoods: the prompt fixtures
    # do not wait on the model.
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
    print("lm-eval done; scoring", file=sys.stderr)
    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        for s in mm:
            lls = []
            for cont in s["continuation_ids"]:
                ids = torch.tensor([s["context_ids"] + cont])
                logp = torch.log_softmax(model(ids).logits[0].float(), -1)
                n = len(s["context_ids"])
                lls.append(sum(logp[n - 1 + k, t].item() for k, t in enumerate(cont)))
            s["loglik"] = lls
            s["pred"] = max(range(len(lls)), key=lambda i: (lls[i], -i))
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
    print("wrote", os.path.join(OUT, "reference.json"), file=sys.stderr)


if __name__ == "__main__":
    main()
