"""The evolve loop with an LLM designer: BuildSystem(backend="openai") against the scripted OpenAI-protocol server
on 127.0.0.1, with a custom parent selector registered through the plugin registry."""

import pytest

from model_discovery import BuildSystem
from model_discovery.evolution.selector import SELECTORS
from tests.agents.llm_server import LLMServer
from tests.agents.test_llm_session import FIXED, _proposal


class PickLlama:
    """A selector plugin: always llama (so the scripted proposal, which edits llama's MLP, applies)."""

    name = "pick-llama"

    def select(self, candidates, k, rng):
        return [c for c in candidates if c.name == "llama"][:k]


if "pick-llama" not in SELECTORS:
    SELECTORS.add("pick-llama", PickLlama)


def test_llm_server_evolve_with_the_openai_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    script = [(200, _proposal("Shift MLP"), 0), (200, {"rating": 5, "novelty": "novel"}, 0),
              (200, {"next_unit": "ShiftMLP"}, 0), (200, {"unit": "ShiftMLP", "source": FIXED}, 0),
              (200, {"rating": 4}, 0)]
    with LLMServer(script) as server:
        report = BuildSystem(tmp_path, backend="openai", base_url=f"{server.url}/v1", model="gpt-4o-mini",
                             design_budget=1, verify_budget=0, selector="pick-llama", progress=False)("cheap mixing")
    assert report.sessions == {"registered": 1} and report.n_designs == 1 and report.n_check_passed == 1
    assert report.costs["llm_usd"] == pytest.approx(5 * (1000 * 0.15 + 200 * 0.6) / 1e6)  # gpt-4o-mini prices
    assert len(server.requests) == 5
