"""The evolve loop with an LLM designer: BuildSystem(backend="openai") against the scripted OpenAI-protocol server
on 127.0.0.1, with parent selectors registered through the plugin registry. Inventions compound: an LLM design,
verified, is the parent of the next LLM session, and an offline session of the same run (offline_share) builds on
the units the LLM wrote."""

import pytest

from model_discovery import BuildSystem
from model_discovery.evolution import Store
from model_discovery.evolution.selector import SELECTORS
from model_discovery.workflow.build import open_run
from tests.agents.llm_server import LLMServer
from tests.agents.test_llm_session import FIXED, _proposal

CONV = '''import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase


class ShiftConvMixer(GAUBase):
    """Causal depthwise convolution over the last few tokens, then a linear map: attention-free token mixing."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, conv_width=4, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        self.width = conv_width
        self.conv = nn.Conv1d(embed_dim, embed_dim, conv_width, groups=embed_dim, device=device, dtype=dtype)
        self.out = nn.Linear(embed_dim, embed_dim, bias=False, device=device, dtype=dtype)

    def _forward(self, X, **Z):
        h = self.conv(F.pad(X.transpose(1, 2), (self.width - 1, 0))).transpose(1, 2)
        return self.out(h), Z
'''


class PickNewest:
    """A selector plugin: the newest design the run produced (llama before there is one), and llama second."""

    name = "pick-newest"

    def select(self, candidates, k, rng):
        produced = sorted((c for c in candidates if c.name.startswith("d0")), key=lambda c: c.name, reverse=True)
        return (produced[:1] + [c for c in candidates if c.name == "llama"])[:k]


for plugin in (PickNewest,):
    if plugin.name not in SELECTORS:
        SELECTORS.add(plugin.name, plugin)


def test_llm_server_inventions_compound_through_llm_and_offline_sessions(tmp_path, monkeypatch):
    """Session 1 (LLM) writes ShiftMLP into llama; it is verified; session 2 (LLM) takes that design as its parent
    and writes ShiftConvMixer in place of attention; session 3 (offline, by offline_share) builds from the run's
    catalogue, which holds both LLM units. Both LLM designs are verified at cpu-1m (one step, no minimal pairs)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    second = {"title": "Convolutional token mixing", "motivation": "attention is costly; a short causal conv is "
              "enough at this context", "operator": "mutation", "parents": ["d0001"], "selected_unit":
              "CausalAttention", "change": "replace attention by a causal depthwise conv mixer",
              "units": [{"name": "ShiftConvMixer", "action": "new", "children": {}, "args": {}}]}
    script = [(200, _proposal("Shift MLP"), 0), (200, {"rating": 5, "novelty": "novel"}, 0),
              (200, {"next_unit": "ShiftMLP"}, 0), (200, {"unit": "ShiftMLP", "source": FIXED}, 0),
              (200, {"rating": 4}, 0),
              (200, second, 0), (200, {"rating": 4.5, "novelty": "novel"}, 0),
              (200, {"next_unit": "ShiftConvMixer"}, 0), (200, {"unit": "ShiftConvMixer", "source": CONV}, 0),
              (200, {"rating": 4}, 0)]
    with LLMServer(script) as server:
        report = BuildSystem(tmp_path, backend="openai", base_url=f"{server.url}/v1", model="gpt-4o-mini",
                             design_budget=4, verify_budget={"cpu-1m": 2}, references=[], blimp="none",
                             train_fraction=0.004, lookahead=0, offline_share=0.5, seed=2, selector="pick-newest",
                             noise_seeds=1, progress=False)("cheap token mixing with each token's previous neighbour")
    assert len(server.requests) == 10, [r["body"]["messages"][-1]["content"][:80] for r in server.requests]
    store = Store(tmp_path, seed_references=True)
    d1, d2 = store.design("d0001"), store.design("d0002")
    assert d1.parents == ["llama"] and d2.parents == ["d0001"]  # depth 2 through inventions
    assert {"ShiftMLP", "ShiftConvMixer"} <= set(d2.unit_tree().units)
    assert "CausalAttention" not in d2.unit_tree().units
    sessions = store.sessions()
    assert [s.dialog[0]["content"]["designer"] for s in sessions] == ["llm", "llm", "offline", "offline"]
    offline = [store.design(s.design_id) for s in sessions[2:] if s.design_id]
    invented = {"ShiftMLP", "ShiftConvMixer"}
    built_on = [d for d in offline if d.status == "checked" and invented & set(d.unit_tree().units)]
    assert built_on, [(s.outcome, s.reason) for s in sessions[2:]]
    assert {u.origin for u in built_on[0].unit_tree().units.values()} & {"d0001", "d0002"}  # lineage of the units
    verified = {store.design(v.design_id).name for v in store.verifications(scale="cpu-1m")}
    assert verified == {"d0001", "d0002"}
    (v1,) = [v for v in store.verifications(scale="cpu-1m") if v.design_id == d1.id]
    assert v1.created < d2.created  # d0001 was verified before the session that made d0002 began
    # the coder saw the source of the unit it replaced, its contract and the composed design
    coder = server.requests[8]["body"]["messages"][-1]["content"]
    assert "It replaces CausalAttention, whose source is:" in coder and "class CausalAttention(GAUBase)" in coder
    assert "class RMSNorm(GAUBase)" in coder and "class ShiftMLP(GAUBase)" in coder  # example; composed design
    assert open_run(tmp_path).offline_share == 0.5
    assert report.costs["llm_usd"] == pytest.approx(10 * (1000 * 0.15 + 200 * 0.6) / 1e6)  # gpt-4o-mini prices
