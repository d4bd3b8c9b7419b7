"""A scripted multi-turn design session with LLM roles over a real HTTP server on 127.0.0.1 (OpenAI protocol):
the proposal is rejected (rating 3), revised and accepted; the code leaks the future, the checker's findings go
back to the coder, the fix passes; the design is registered."""

import random

import pytest

from model_discovery.agents.llm import OpenAIBackend
from model_discovery.agents.roles import LLMRoles
from model_discovery.agents.spec import ROLES, load_specs
from model_discovery.evolution import Store
from model_discovery.evolution.index import TreeIndex
from model_discovery.workflow.design import SessionContext, run_session
from tests.agents.llm_server import LLMServer

UNIT = '''import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase


class ShiftMLP(GAUBase):
    """MLP over each token and its {which} neighbour."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        self.up = nn.Linear(2 * embed_dim, 3 * embed_dim, bias=False, device=device, dtype=dtype)
        self.down = nn.Linear(3 * embed_dim, embed_dim, bias=False, device=device, dtype=dtype)

    def _forward(self, X, **Z):
        shifted = {shift}
        return self.down(F.gelu(self.up(torch.cat([X, shifted], -1)))), Z
'''
LEAKY = UNIT.format(which="next", shift="torch.roll(X, shifts=-1, dims=1)")
FIXED = UNIT.format(which="previous", shift="F.pad(X, (0, 0, 1, 0))[:, :-1]")


def run_llm_session(store, backend, parent="llama", operator="mutation", prompt="", parents=None, **options):
    """One session with every role played by ``backend``, from ``parent`` (or ``parents`` for a crossover)."""
    chosen = parents or [parent]
    roles = LLMRoles(dict.fromkeys(ROLES, backend), load_specs())
    ctx = SessionContext(store, TreeIndex(store), roles, load_specs(), random.Random(0), prompt, operator=operator,
                         select_parents=lambda names, k, rng: chosen[:k], **options)
    return run_session(ctx)


def _proposal(title):
    return {"title": title, "motivation": "token shift gives the MLP a bigram view", "operator": "mutation",
            "parents": ["llama"], "selected_unit": "GatedMLP", "change": "replace the gated MLP by a token-shift MLP",
            "units": [{"name": "ShiftMLP", "action": "new", "children": {}, "args": {}}]}


def test_llm_server_session_revises_a_proposal_and_fixes_a_causality_leak(tmp_path):
    script = [
        (200, _proposal("Shift MLP"), 0),
        (200, {"rating": 3, "concerns": ["too close to RWKV channel mix"], "novelty": "incremental"}, 0),
        (200, _proposal("Shift MLP with a GELU bottleneck"), 0),
        (200, {"rating": 4.5, "strengths": ["cheap"], "novelty": "novel"}, 0),
        (200, {"next_unit": "ShiftMLP", "reason": "the only new unit"}, 0),
        (200, {"unit": "ShiftMLP", "source": LEAKY}, 0),
        (200, {"unit": "ShiftMLP", "source": FIXED}, 0),
        (200, {"rating": 4, "issues": []}, 0),
    ]
    store = Store(tmp_path, seed_references=True)
    with LLMServer(script) as server:
        backend = OpenAIBackend("gpt-4o-mini", base_url=f"{server.url}/v1", backoff_s=0.01)
        result = run_llm_session(store, backend, prompt="cheap mixing")
    assert result.outcome == "registered", result.reason
    bodies = [r["body"]["messages"][-1]["content"] for r in server.requests]
    assert "rated 3" in bodies[2] and "too close to RWKV" in bodies[2]  # the review reached the proposer
    assert "causality" in bodies[6].lower()  # the checker's findings reached the coder
    (design,) = [d for d in store.designs() if d.name == result.design]
    assert "class ShiftMLP(GAUBase)" in design.source and "GatedMLP" not in design.source
    assert "F.pad(X, (0, 0, 1, 0))" in design.source and design.parents == ["llama"]
    checks = [t["content"]["accepted"] for t in store.sessions()[-1].dialog if t["role"] == "checker"]
    assert checks == [False, True]
    assert backend.meter.spent_usd > 0  # eight calls at gpt-4o-mini prices


def test_llm_server_unfixable_unit_is_rolled_back(tmp_path):
    script = [(200, _proposal("Shift MLP"), 0), (200, {"rating": 5, "novelty": "novel"}, 0),
              (200, {"next_unit": "ShiftMLP"}, 0),
              (200, {"unit": "GatedMLP", "source": FIXED}, 0),  # a protected unit: refused without a check
              (200, {"unit": "ShiftMLP", "source": "import os\n" + LEAKY}, 0),  # static filter
              (200, {"unit": "ShiftMLP", "source": LEAKY}, 0), (200, {"unit": "ShiftMLP", "source": LEAKY}, 0)]
    store = Store(tmp_path, seed_references=True)
    with LLMServer(script) as server:
        backend = OpenAIBackend("gpt-4o-mini", base_url=f"{server.url}/v1", backoff_s=0.01)
        result = run_llm_session(store, backend)
    assert result.outcome == "check_failed" and "rolled back" in result.reason
    assert len(store.designs()) == len(store.designs("reference"))  # nothing registered
    coder_msgs = [r["body"]["messages"][-1]["content"] for r in server.requests[4:]]
    assert "protected" in coder_msgs[0] and "import" in coder_msgs[1].lower()


def test_llm_server_cli_design_with_anthropic_and_a_cost_cap(tmp_path, capsys, monkeypatch):
    import json

    from model_discovery.cli import main

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    script = [(200, _proposal("Shift MLP"), 0), (200, {"rating": 5, "novelty": "novel"}, 0),
              (200, {"next_unit": "ShiftMLP"}, 0), (200, {"unit": "ShiftMLP", "source": FIXED}, 0),
              (200, {"rating": 4}, 0)]
    with LLMServer(script) as server:
        assert main(["design", "cheap mixing", "--n", "3", "--run-dir", str(tmp_path), "--backend", "anthropic",
                     "--base-url", server.url, "--cost-cap", "0.0075", "--parent", "llama", "--json",
                     "--no-check"]) == 0  # the protocol and the cap are the point here, not the sandbox
    summary = json.loads(capsys.readouterr().out)
    # five calls at $0.8/$4 per M tokens cost $0.008 > cap: the second session stops before its first call
    assert summary["accepted"] == 1 and summary["check_passed"] == 1 and summary["sessions"] == 2
    assert summary["cost_usd"] == pytest.approx(5 * (1000 * 0.8 + 200 * 4.0) / 1e6)
    assert summary["outcomes"]["budget"] == 1
    for r in server.requests:  # the key comes from the environment (header name depends on the SDK version)
        assert "sk-ant-test" in (r["headers"].get("x-api-key", "") + r["headers"].get("authorization", ""))


def _session(tmp_path, script, check=True, **backend_kw):
    store = Store(tmp_path, seed_references=True)
    with LLMServer(script) as server:
        backend = OpenAIBackend("gpt-4o-mini", base_url=f"{server.url}/v1", backoff_s=0.01, **backend_kw)
        result = run_llm_session(store, backend, check=check)
    return store, server, result


def test_llm_server_truncated_code_block_is_fed_back_and_fixed(tmp_path):
    truncated = FIXED[: FIXED.index("return self.down")] + "return self.down(F.gelu(self.up(torch.cat([X, shif"
    script = [(200, _proposal("Shift MLP"), 0), (200, {"rating": 5, "novelty": "novel"}, 0),
              (200, {"next_unit": "ShiftMLP"}, 0), (200, {"unit": "ShiftMLP", "source": truncated}, 0),
              (200, {"unit": "ShiftMLP", "source": FIXED}, 0), (200, {"rating": 4}, 0)]
    store, server, result = _session(tmp_path, script, check=False)  # the syntax error never reaches the sandbox
    assert result.outcome == "registered"
    feedback = server.requests[4]["body"]["messages"][-1]["content"]
    assert "syntax" in feedback.lower() or "parse" in feedback.lower()
    assert result.cost_usd == pytest.approx(6 * (1000 * 0.15 + 200 * 0.6) / 1e6)
    assert store.sessions()[-1].cost_usd == pytest.approx(result.cost_usd)


def test_llm_server_down_ends_the_session_with_a_clear_error_and_its_cost(tmp_path):
    script = [(200, _proposal("Shift MLP"), 0)] + [(500, "overloaded", 0)] * 3
    store, server, result = _session(tmp_path, script, max_retries=2)
    assert result.outcome == "error" and "InternalServerError" in result.reason and "after retries" in result.reason
    assert len(server.requests) == 4  # one good call, then the first try and two retries
    assert result.cost_usd == pytest.approx((1000 * 0.15 + 200 * 0.6) / 1e6)
    assert store.sessions()[-1].outcome == "error"


def test_llm_server_crossover_of_an_llm_design_and_a_library_design(tmp_path):
    """An LLM-written design (ShiftMLP in llama) crossed with mamba2 by an LLM session: the proposer sees both
    trees, reuses Mamba2Mixer by name in place of attention, nothing is left to write, the design is checked."""
    crossover = {"title": "Shift MLP with an SSM mixer", "motivation": "linear-time mixing, cheap channel mixing",
                 "operator": "crossover", "parents": ["d0001", "mamba2"], "selected_unit": "CausalAttention",
                 "change": "take mamba2's mixer in place of attention",
                 "units": [{"name": "Mamba2Mixer", "action": "reused", "children": {}, "args": {}}]}
    script = [(200, _proposal("Shift MLP"), 0), (200, {"rating": 5, "novelty": "novel"}, 0),
              (200, {"next_unit": "ShiftMLP"}, 0), (200, {"unit": "ShiftMLP", "source": FIXED}, 0),
              (200, {"rating": 4}, 0),
              (200, crossover, 0), (200, {"rating": 4.5, "novelty": "novel"}, 0), (200, {"rating": 5}, 0)]
    store = Store(tmp_path, seed_references=True)
    with LLMServer(script) as server:
        backend = OpenAIBackend("gpt-4o-mini", base_url=f"{server.url}/v1", backoff_s=0.01)
        first = run_llm_session(store, backend, check=False)  # the sandbox check of the crossover is the point
        second = run_llm_session(store, backend, operator="crossover", parents=[first.design, "mamba2"])
    assert second.outcome == "registered" and second.check_passed, second.reason
    design = store.design(second.design)
    tree = design.unit_tree()
    assert design.mode == "crossover" and design.parents == ["d0001", "mamba2"]
    assert {"ShiftMLP", "Mamba2Mixer", "PreNormBlock"} <= set(tree.units) and "CausalAttention" not in tree.units
    assert tree.units["ShiftMLP"].origin == "d0001" and tree.units["Mamba2Mixer"].origin == "library"
    proposer = server.requests[5]["body"]["messages"][-1]["content"]
    assert "Operator: crossover" in proposer and "Second parent: Design mamba2" in proposer
    assert "- ShiftMLP [channel_mixer]" in proposer  # the LLM's unit, with its slot, in the parent's tree
    assert len(server.requests) == 8  # proposer, reviewer, observer: no unit to write
