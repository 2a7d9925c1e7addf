"""Writes crates/evals/data/bbh_cot_fewshot.json: the description, the
`doc_to_text` template and the 3 chain-of-thought exemplars of each of the
27 `bbh_cot_fewshot_*` tasks, exactly as the lm_eval wheel pinned in
requirements.txt (0.4.13) ships them in lm_eval/tasks/bbh/cot_fewshot/*.yaml.

The exemplars are the BIG-Bench Hard CoT prompts of Suzgun et al. (2022),
github.com/suzgunmirac/BIG-Bench-Hard, MIT licence, as redistributed in
lm-evaluation-harness (MIT licence); see crates/evals/data/README.md.

    python -m venv /tmp/ref && /tmp/ref/bin/pip install --no-deps lm_eval==0.4.13 pyyaml
    /tmp/ref/bin/python scripts/reference/mmlu_bbh_vendor.py
"""

import json
import os
import sys

import lm_eval
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "crates", "evals", "data", "bbh_cot_fewshot.json")
DIR = os.path.join(os.path.dirname(lm_eval.__file__), "tasks", "bbh", "cot_fewshot")


def main():
    from importlib.metadata import version as dist_version

    version = dist_version("lm_eval")
    template = yaml.safe_load(open(os.path.join(DIR, "_cot_fewshot_template_yaml")))
    group = yaml.safe_load(open(os.path.join(DIR, "_bbh_cot_fewshot.yaml")))
    subtasks = {}
    for task in group["task"]:
        name = task.removeprefix("bbh_cot_fewshot_")
        y = yaml.safe_load(open(os.path.join(DIR, f"{name}.yaml")))
        assert y["fewshot_config"]["sampler"] == "first_n", name
        subtasks[name] = {
            "description": y.get("description", ""),
            "doc_to_text": y["doc_to_text"],
            "samples": [{"input": s["input"], "target": s["target"]} for s in y["fewshot_config"]["samples"]],
        }
    out = {
        "source": f"lm_eval {version}, lm_eval/tasks/bbh/cot_fewshot/*.yaml",
        "licence": "BIG-Bench Hard CoT prompts (Suzgun et al. 2022, MIT) as shipped by lm-evaluation-harness (MIT)",
        "generation_kwargs": template["generation_kwargs"],
        "filter_regex": template["filter_list"][0]["filter"][0]["regex_pattern"],
        "num_fewshot": template["num_fewshot"],
        "subtasks": subtasks,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    print(f"wrote {OUT}: {len(subtasks)} subtasks", file=sys.stderr)


if __name__ == "__main__":
    main()
