"""lm-eval's own CLI with `--model modis`: on task configs written here from lm-eval's task guide (one per request
type), and on our `evals/` synthetic-pairs group, whose score must equal what `modis verify` measured."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LM_EVAL = Path(sys.executable).with_name("lm_eval")

FOREIGN_TASKS = {
    "tiny_agreement.yaml": """
task: tiny_agreement
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/agreement.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prefix}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
""",
    "tiny_ppl.yaml": """
task: tiny_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/text.jsonl
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: bits_per_byte
""",
    "tiny_gen.yaml": """
task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/prompts.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["."]
  max_gen_toks: 8
metric_list:
  - metric: exact_match
""",
}


def _env(tmp_path):
    return {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def _run_lm_eval(tmp_path, args):
    out = tmp_path / "results"
    proc = subprocess.run([str(LM_EVAL), "run", "--model", "modis", *args, "--output_path", str(out)],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.rglob("results_*.json")
    return json.loads(path.read_text())["results"]


def test_plugin_registers_modis_in_a_fresh_interpreter():
    code = "import lm_eval.api.registry as r; print(r.model_registry.get('modis').__name__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "ModisLM", f"plugin .pth missing? run `make setup`\n{proc.stderr[-1500:]}"


def test_cli_scores_task_configs_written_from_lm_eval_docs_and_our_pairs_group(tmp_path, verified_llama):
    """One lm-eval run (each costs ~25 s of imports and loading): three configs written from lm-eval's task guide,
    one per request type, beside a copy of our `evals/` folder, whose synthetic-pairs group must score what
    `modis verify` measured."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"prefix": "The keys to the cabinet", "choices": [" are on the table.", " is on the table."], "label": 0},
            {"prefix": "The dog", "choices": [" barks.", " bark."], "label": 0},
            {"prefix": "", "choices": ["The girls sing.", "The girls sings."], "label": 0}]
    (data / "agreement.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = ["The dog that the girls like barks at the cat. " * 20, "No student has ever seen the mountain."]
    (data / "text.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (data / "prompts.jsonl").write_text(json.dumps({"prompt": "The dog", "answer": " barks"}) + "\n")
    tasks = tmp_path / "tasks"
    shutil.copytree(ROOT / "evals", tasks / "modis", ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in FOREIGN_TASKS.items():
        (tasks / name).write_text(text.format(data=data))
    results = _run_lm_eval(tmp_path, ["--model_args", f"path={verified_llama}", "--include_path", str(tasks),
                                      "--tasks", "tiny_agreement,tiny_ppl,tiny_gen,modis_synthetic",
                                      "--batch_size", "4"])
    assert 0.0 <= results["tiny_agreement"]["acc,none"] <= 1.0
    assert 1.0 < results["tiny_ppl"]["word_perplexity,none"] < 1e6
    assert 0.0 < results["tiny_ppl"]["bits_per_byte,none"] < 10.0
    assert results["tiny_gen"]["exact_match,none"] in (0.0, 1.0)
    measured = json.loads((verified_llama / "metrics.json").read_text())["blimp"]
    assert results["modis_synthetic"]["acc,none"] == pytest.approx(measured["acc"], abs=1e-9)
    for uid, acc in measured["by_phenomenon"].items():
        assert results[f"modis_synthetic_{uid}"]["acc,none"] == pytest.approx(acc, abs=1e-9), uid
