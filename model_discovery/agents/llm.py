"""LLM backends for the roles: OpenAI (and any OpenAI-compatible ``base_url``: vLLM, Ollama, LiteLLM) and
Anthropic, both returning a pydantic model.

- OpenAI: ``chat.completions.parse`` with a JSON-schema ``response_format``; a server that rejects structured
  outputs gets the schema in the prompt and its text reply is parsed as JSON.
- Anthropic: ``messages.create`` with one tool whose input schema is the output model, forced by ``tool_choice``.

Our own retries (``tenacity``, exponential backoff) on rate limits, server errors, timeouts and connection errors;
SDK retries are off. Unparseable output is re-prompted with the parse error, a bounded number of times. Each call's
tokens and dollar cost (``etc/prices.yaml``) go to a :class:`CostMeter` whose cap stops new calls cleanly. Keys
come from the environment only and are never logged.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from model_discovery.registry import Registry
from model_discovery.resources import project_dir

logger = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)
PRICES = project_dir("etc") / "prices.yaml"


class BudgetExceeded(RuntimeError):
    """The run's cost cap is reached: no new LLM call is made."""


class UnparseableOutput(RuntimeError):
    """The model's replies did not parse into the schema after every re-prompt."""


@dataclass
class CostMeter:
    cap_usd: float | None = None
    spent_usd: float = 0.0
    calls: list[dict] = field(default_factory=list)
    prices: dict = field(default_factory=lambda: yaml.safe_load(PRICES.read_text()) or {})

    def check(self) -> None:
        if self.cap_usd is not None and self.spent_usd >= self.cap_usd:
            raise BudgetExceeded(f"cost cap ${self.cap_usd:.4g} reached (spent ${self.spent_usd:.4f})")

    def add(self, model: str, input_tokens: int, output_tokens: int) -> float:
        price = self.prices.get(model, {"input": 0.0, "output": 0.0})
        cost = (input_tokens * price["input"] + output_tokens * price["output"]) / 1e6
        self.spent_usd += cost
        self.calls.append({"model": model, "input_tokens": input_tokens, "output_tokens": output_tokens,
                           "cost_usd": cost})
        return cost


def _json_from_text(text: str) -> dict:
    match = re.search(r"\{.*\}", text or "", re.S)
    if not match:
        raise ValueError("no JSON object in the reply")
    return json.loads(match.group(0))


class LLMBackend(abc.ABC):
    """``complete(system, prompt, schema)`` → an instance of ``schema``; subclasses implement one raw call, and name
    their default model and their SDK's errors."""

    default_model: str = ""

    @classmethod
    @abc.abstractmethod
    def transient_errors(cls) -> tuple[type[Exception], ...]:
        """The SDK's errors worth another try (rate limits, server errors, time-outs, lost connections)."""

    @classmethod
    @abc.abstractmethod
    def api_errors(cls) -> tuple[type[Exception], ...]:
        """The SDK's errors that end a design session once the retries are spent."""

    def __init__(self, model: str, meter: CostMeter | None = None, max_retries: int = 5, max_reprompts: int = 2,
                 backoff_s: float = 1.0, temperature: float = 0.7, max_tokens: int = 4096):
        self.model = model
        self.meter = meter or CostMeter()
        self.max_reprompts = max_reprompts
        self.temperature = temperature
        self.max_tokens = max_tokens
        transient = self.transient_errors()
        self._call = retry(retry=retry_if_exception(lambda exc: isinstance(exc, transient)), reraise=True,
                           stop=stop_after_attempt(max_retries + 1),
                           wait=wait_exponential(multiplier=backoff_s, max=60 * backoff_s),
                           before_sleep=lambda s: logger.warning("LLM call failed (%s); retrying",
                                                                 type(s.outcome.exception()).__name__))(self._raw)

    def complete(self, system: str, prompt: str, schema: type[T]) -> T:
        messages = [{"role": "user", "content": prompt}]
        error = None
        for _ in range(self.max_reprompts + 1):
            self.meter.check()
            text, parsed = self._call(system, messages, schema)
            try:
                return schema.model_validate(parsed if parsed is not None else _json_from_text(text))
            except (ValidationError, ValueError) as exc:
                error = exc
                fix = (f"That did not parse: {str(exc)[:500]}. Reply with one JSON object matching the schema "
                       f"{json.dumps(schema.model_json_schema())}.")
                messages = [*messages, {"role": "assistant", "content": text or json.dumps(parsed)},
                            {"role": "user", "content": fix}]
        raise UnparseableOutput(f"{self.model}: no valid {schema.__name__} after {self.max_reprompts} re-prompts: "
                                f"{error}")

    @abc.abstractmethod
    def _raw(self, system: str, messages: list[dict], schema: type[BaseModel]) -> tuple[str | None, dict | None]:
        """One request: (reply text, parsed object) — either may be None."""


BACKENDS: Registry[type[LLMBackend]] = Registry("LLM backend", group="model_discovery.backends")


@BACKENDS.register("openai")
class OpenAIBackend(LLMBackend):
    """OpenAI's API, or any server that speaks it (vLLM, Ollama, LiteLLM): structured outputs where the server has
    them, else JSON in text."""

    default_model = "gpt-4o-mini"

    @classmethod
    def transient_errors(cls):
        import openai

        return openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError

    @classmethod
    def api_errors(cls):
        import openai

        return (openai.APIError,)

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 120.0, **kwargs):
        import openai

        super().__init__(model, **kwargs)
        self.client = openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY", "not-needed"), base_url=base_url,
                                    timeout=timeout, max_retries=0)
        self.structured = True

    def _raw(self, system, messages, schema):
        import openai

        full = [{"role": "system", "content": system}, *messages]
        if self.structured:
            try:
                response = self.client.chat.completions.parse(
                    model=self.model, messages=full, response_format=schema, temperature=self.temperature,
                    max_tokens=self.max_tokens)
                self._usage(response)
                message = response.choices[0].message
                parsed = message.parsed.model_dump() if message.parsed is not None else None
                return message.content, parsed
            except openai.BadRequestError as exc:  # the server has no structured outputs: JSON in text instead
                logger.info("%s: structured outputs refused (%s); asking for JSON in text", self.model, exc)
                self.structured = False
            except (ValidationError, json.JSONDecodeError) as exc:
                return f"(unparseable structured output: {exc})", None
        schema_text = json.dumps(schema.model_json_schema())
        response = self.client.chat.completions.create(
            model=self.model, temperature=self.temperature, max_tokens=self.max_tokens,
            messages=[{"role": "system", "content": f"{system}\nReply with one JSON object matching {schema_text}"},
                      *messages])
        self._usage(response)
        return response.choices[0].message.content, None

    def _usage(self, response) -> None:
        usage = response.usage
        self.meter.add(self.model, getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)


@BACKENDS.register("anthropic")
class AnthropicBackend(LLMBackend):
    """Anthropic's API, the reply forced through a tool whose input is the schema."""

    default_model = "claude-3-5-haiku-latest"

    @classmethod
    def transient_errors(cls):
        import anthropic

        return (anthropic.RateLimitError, anthropic.InternalServerError, anthropic.APITimeoutError,
                anthropic.APIConnectionError)

    @classmethod
    def api_errors(cls):
        import anthropic

        return (anthropic.APIError,)

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 120.0, **kwargs):
        import anthropic

        super().__init__(model, **kwargs)
        self.client = anthropic.Anthropic(api_key=os.environ.get("ANTHROPIC_API_KEY", "not-needed"),
                                          base_url=base_url, timeout=timeout, max_retries=0)

    def _raw(self, system, messages, schema):
        tool = {"name": schema.__name__, "description": f"Return the {schema.__name__}.",
                "input_schema": schema.model_json_schema()}
        response = self.client.messages.create(
            model=self.model, system=system, messages=messages, max_tokens=self.max_tokens,
            tools=[tool], tool_choice={"type": "tool", "name": schema.__name__})  # this SDK takes no temperature
        self.meter.add(self.model, response.usage.input_tokens, response.usage.output_tokens)
        for block in response.content:
            if block.type == "tool_use":
                return None, block.input
        return "".join(getattr(b, "text", "") for b in response.content), None


def make_backend(kind: str, model: str | None = None, base_url: str | None = None, **kwargs) -> LLMBackend:
    """The LLM backend ``kind`` (a name in :data:`BACKENDS`) for ``model`` (default: the backend's)."""
    cls = BACKENDS.get(kind)
    return cls(model or cls.default_model, base_url=base_url, **kwargs)
