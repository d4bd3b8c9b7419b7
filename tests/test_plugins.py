"""Plugins found through entry points: a package on the path (tests/fixtures/plugins, as pip would install it) adds a
rung kind, a design operator, a selector, an executor and an LLM backend, one file each; settings, the CLI and the
registries take them by name, and a run uses them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from model_discovery import DiscoveryConfig
from model_discovery.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "tests" / "fixtures" / "plugins"

RUN = """
import json, sys
from model_discovery import BuildSystem
from model_discovery.agents.llm import BACKENDS, make_backend
from model_discovery.evolution.executors import EXECUTORS
from model_discovery.evolution.selector import SELECTORS
from pydantic import BaseModel
from model_discovery.agents.operators import OPERATORS
from model_discovery.evolution.store import Store
from modis_test_plugin import backend, executor, selector

from model_discovery.verify.kinds import RUNG_KINDS, rung_kind

report = BuildSystem(sys.argv[1], ladder=sys.argv[2], design_budget=4, verify_budget={"cpu-1m": 3, "recall": 1},
                     references=["llama"], train_fraction=0.004, check=False, noise_seeds=1, progress=False,
                     selector="greedy", executor="counting",
                     modes={"weights": {"mutation": 1.0, "double": 1.0}})("plugins")
recall = Store(sys.argv[1]).verifications(scale="recall")

class Answer(BaseModel):
    value: int

backend.SCRIPT[:] = ["not json", '{"value": 7}']
llm = make_backend("scripted")
modes = [s.operator for s in Store(sys.argv[1]).sessions()]
print(json.dumps({"modes": modes, "operators": OPERATORS.names(), "draws": selector.DRAWS, "ran": executor.RAN,
                  "budgets": report.budgets, "kinds": RUNG_KINDS.names(),
                  "recall": [sorted(v.metrics["mad"]["by_task"]) for v in recall],
                  "identity": rung_kind("recall").identity(),
                  "boards": {b.rung: b.accuracy_of for b in report.leaderboards},
                  "answer": llm.complete("system", "prompt", Answer).value, "model": llm.model,
                  "names": [SELECTORS.names(), EXECUTORS.names(), BACKENDS.names()]}))
"""


LADDER = """name: plugged
selection_ratio: 0.34
rungs:
  - {name: cpu-1m, d_model: 128, n_block: 6, context: 128, vocab: 4096, train_tokens: 1048576,
     batch_tokens: 4096, lr: 3.0e-3, warmup: 16, ref_params: 1107456}
  - {name: recall, kind: recall, d_model: 64, n_block: 3, context: 32, vocab: 40, train_tokens: 4096,
     batch_tokens: 1024, lr: 5.0e-3, warmup: 1, ref_params: 138624}
"""


def test_a_plugin_package_adds_a_rung_kind_an_operator_a_selector_an_executor_and_a_backend_that_a_run_uses(
        tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(ROOT)])}
    (tmp_path / "ladder_plugged.yaml").write_text(LADDER)
    done = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "run"), str(tmp_path / "ladder_plugged.yaml")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "double" in out["modes"] and "double" in out["operators"]  # sessions made designs by the plugin operator
    assert len(out["draws"]) >= 3 and all(out["draws"])  # the greedy selector drew every session's parents
    assert len(out["ran"]) >= 4  # the counting executor ran the references' and the designs' verifications
    assert out["budgets"]["cpu-1m"]["used"] == 3
    # the rung of the plugin's kind ran the recall tasks alone, and its leaderboard says so
    assert "recall" in out["kinds"] and out["recall"] and all(t == ["noisy_recall", "recall"] for t in out["recall"])
    assert out["boards"] == {"cpu-1m": "minimal pairs", "recall": "recall tasks"}
    # its verifications' fingerprint holds its payload and its own code (a cache entry changes with them)
    assert out["identity"]["payload"] == {"tasks": ["recall", "noisy_recall"]} and len(out["identity"]["code"]) == 16
    assert out["answer"] == 7 and out["model"] == "script-1"  # re-prompted after the text that did not parse
    selectors, executors, backends = out["names"]
    assert "greedy" in selectors and "quadrant" in selectors
    assert "counting" in executors and "inline" in executors and "scripted" in backends and "openai" in backends


def test_an_unknown_plugin_name_is_an_error_with_the_close_ones(tmp_path):
    with pytest.raises(ValidationError, match=r"unknown selector 'quadrnt'. Did you mean quadrant"):
        DiscoveryConfig(selector="quadrnt")
    with pytest.raises(ValidationError, match=r"unknown executor 'locl'. Did you mean local"):
        DiscoveryConfig(executor="locl")
    with pytest.raises(ValidationError, match=r"unknown LLM backend 'openia'. Did you mean openai"):
        DiscoveryConfig(backend="openia")
    with pytest.raises(ValidationError, match=r"unknown design operator 'mutaton'. Did you mean mutation"):
        DiscoveryConfig(modes={"weights": {"mutaton": 1.0}})
    ladder = tmp_path / "ladder_odd.yaml"
    ladder.write_text(LADDER.replace("kind: recall", "kind: mda"))
    with pytest.raises(ValueError, match=r"rung 'recall': unknown rung kind 'mda'. Did you mean mad"):
        DiscoveryConfig(ladder=str(ladder)).resolved()
    with pytest.raises(ValidationError, match="the inline executor runs one verification at a time, not 2"):
        DiscoveryConfig(executor="inline", workers=2)


def test_a_plugin_that_takes_a_built_in_name_or_fails_to_load_is_named(tmp_path, monkeypatch):
    dist = tmp_path / "clash-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[modis.test.kinds]\nfirst = clash_missing:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    taken = Registry("thing", group="modis.test.kinds")
    taken.add("first", object)
    with pytest.raises(KeyError, match=r"'first' is registered twice .*clash_missing:Thing"):
        taken.names()
    broken = Registry("thing", group="modis.test.kinds")
    with pytest.raises(ImportError, match=r"the thing plugin 'first' .* failed to load: ModuleNotFoundError"):
        broken.get("first")
