"""LLM backends against real HTTP servers on 127.0.0.1 with scripted replies, failures included."""

import pytest

from model_discovery.agents.llm import (
    AnthropicBackend,
    BudgetExceeded,
    CostMeter,
    OpenAIBackend,
    UnparseableOutput,
)
from model_discovery.agents.schemas import Review
from tests.agents.llm_server import LLMServer

GOOD = {"rating": 4.5, "strengths": ["new mixer"], "concerns": [], "novelty": "novel", "scores": {}}
BAD_RATING = {"rating": 9, "novelty": "novel"}  # out of range: fails validation


def _openai(server, **kw):
    return OpenAIBackend("gpt-4o-mini", base_url=f"{server.url}/v1", timeout=kw.pop("timeout", 5.0),
                         backoff_s=0.01, **kw)


def _anthropic(server, **kw):
    return AnthropicBackend("claude-3-5-haiku-latest", base_url=server.url, timeout=kw.pop("timeout", 5.0),
                            backoff_s=0.01, **kw)


@pytest.mark.parametrize("make", [_openai, _anthropic], ids=["openai", "anthropic"])
def test_llm_server_429_and_500_are_retried(make):
    with LLMServer([(429, "slow down", 0), (500, "boom", 0), (200, GOOD, 0)]) as server:
        review = make(server).complete("You review designs.", "Rate this.", Review)
    assert review.rating == 4.5 and len(server.requests) == 3


@pytest.mark.parametrize("make", [_openai, _anthropic], ids=["openai", "anthropic"])
def test_llm_server_timeout_is_retried(make):
    with LLMServer([(200, GOOD, 2.0), (200, GOOD, 0)]) as server:
        review = make(server, timeout=0.5).complete("s", "p", Review)
    assert review.novelty == "novel" and len(server.requests) == 2


@pytest.mark.parametrize("make", [_openai, _anthropic], ids=["openai", "anthropic"])
def test_llm_server_malformed_output_is_reprompted_with_the_error(make):
    bad = "not json at all" if make is _openai else BAD_RATING
    with LLMServer([(200, bad, 0), (200, BAD_RATING, 0), (200, GOOD, 0)]) as server:
        review = make(server, max_reprompts=2).complete("s", "p", Review)
    assert review.rating == 4.5
    last = server.requests[-1]["body"]["messages"][-1]["content"]
    assert "did not parse" in last and "rating" in last


@pytest.mark.parametrize("make", [_openai, _anthropic], ids=["openai", "anthropic"])
def test_llm_server_gives_up_after_bounded_reprompts(make):
    with LLMServer([(200, BAD_RATING, 0)] * 5) as server, pytest.raises(UnparseableOutput):
        make(server, max_reprompts=1).complete("s", "p", Review)
    assert len(server.requests) == 2


def test_openai_structured_output_request_and_fallback_to_json_in_text():
    with LLMServer([(200, GOOD, 0), (400, "response_format not supported", 0), (200, "Sure: " + str(GOOD)
                                                                                 .replace("'", '"'), 0)]) as server:
        backend = _openai(server)
        backend.complete("s", "p", Review)
        assert server.requests[0]["body"]["response_format"]["type"] == "json_schema"
        review = backend.complete("s", "p", Review)  # the 400 switches to JSON in text, then parses
    assert review.rating == 4.5 and "response_format" not in server.requests[-1]["body"]
    assert "JSON object" in server.requests[-1]["body"]["messages"][0]["content"]


def test_anthropic_forces_the_schema_tool():
    with LLMServer([(200, GOOD, 0)]) as server:
        _anthropic(server).complete("s", "p", Review)
    body = server.requests[0]["body"]
    assert body["tool_choice"] == {"type": "tool", "name": "Review"} and body["system"] == "s"
    assert body["tools"][0]["input_schema"]["properties"]["rating"]["maximum"] == 5


def test_llm_server_costs_are_metered_and_the_cap_stops_new_calls(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    meter = CostMeter(cap_usd=0.0003)
    with LLMServer([(200, GOOD, 0)] * 3) as server:
        backend = _openai(server, meter=meter)
        backend.complete("s", "p", Review)  # 1000 in, 200 out at $0.15/$0.60 per M = $0.00027
        assert meter.spent_usd == pytest.approx(0.00027)
        backend.complete("s", "p", Review)
        with pytest.raises(BudgetExceeded):
            backend.complete("s", "p", Review)
    assert len(server.requests) == 2
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-test-secret"  # from the environment
