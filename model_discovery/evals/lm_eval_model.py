"""``modis``: an lm-eval model over a ``modis verify`` output folder.

    lm_eval run --model modis --model_args path=runs/verify/llama-cpu-1m-… --tasks modis_blimp_filtered \
        --include_path evals/

Tokenisation happens here; every forward pass runs in a sandbox child (the folder holds generated design code),
one child per request type, all requests batched by length. ``sandbox=false`` runs the model in this process —
only for designs you trust.
"""

from __future__ import annotations

import logging

from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from model_discovery.sandbox import Limits, ProcessSandbox
from model_discovery.verify.artifacts import check_verified, read_config
from model_discovery.verify.data import EOS

logger = logging.getLogger(__name__)
EVAL_LIMITS = Limits(wall_s=12 * 3600, cpu_s=10**7, memory_mb=16384, file_mb=64)
DEFAULT_MAX_GEN_TOKS = 256


def _flag(value) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")


def _usable_device(device: str | None) -> str:
    """lm-eval's CLI asks for ``cuda`` by default; on a machine without it, run on the CPU and say so."""
    import torch

    if device and device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("modis: %s is not available here; evaluating on the CPU", device)
        return "cpu"
    return device or "cpu"


class ModisLM(TemplateLM):
    """Model args: ``path`` (required), ``batch_size`` (default 64), ``device`` (``cpu``/``cuda``),
    ``sandbox`` (default true), ``threads``."""

    def __init__(self, path: str | None = None, batch_size: int | str = 64, device: str | None = None,
                 sandbox: bool | str = True, threads: int | str | None = None, max_batch_size=None, **kwargs):
        super().__init__()
        if path is None:
            raise ValueError("the modis model needs --model_args path=DIR (a `modis verify` output folder)")
        self.path = check_verified(path)
        self.config = read_config(self.path)
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.max_length = self.config["scale"]["context"]
        self.batch_size = 64 if str(batch_size).startswith("auto") else int(batch_size)
        self._device = _usable_device(device)
        self.threads = int(threads) if threads else None
        self.sandbox = ProcessSandbox(EVAL_LIMITS) if _flag(sandbox) else None

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.token_to_id(EOS)

    @property
    def tokenizer_name(self) -> str:
        return str(self.path)

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        return self.tokenizer.encode(string).ids

    def tok_decode(self, tokens: list[int], **kwargs) -> str:
        return self.tokenizer.decode(tokens)

    def _run(self, target: str, requests: list) -> list:
        payload = {"model_dir": str(self.path), "requests": requests, "batch_size": self.batch_size,
                   "device": self._device, **({"threads": self.threads} if self.threads else {})}
        if self.sandbox is None:
            from model_discovery.evals import score

            return getattr(score, target)(payload)
        result = self.sandbox.run(f"model_discovery.evals.score:{target}", payload, read_only=[self.path])
        if not result.ok:
            raise RuntimeError(f"modis: scoring {self.path.name} failed in the sandbox: {result.error}\n"
                               f"{(result.traceback or result.stderr or '')[-2000:]}")
        return result.value

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        answers = [(float(lp), bool(greedy)) for lp, greedy in
                   self._run("loglikelihood", [[ctx, cont] for _, ctx, cont in requests])]
        for (key, _, _), answer in zip(requests, answers):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, answer)
        return answers

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Whole-string log-likelihood (perplexity tasks): disjoint windows of the context length, each predicted
        after the previous tokens (the first after end-of-text)."""
        windows, owner = [], []
        for i, (string,) in enumerate(tqdm([r.args for r in requests], disable=disable_tqdm, desc="windows")):
            for window in get_rolling_token_windows(self.tok_encode(string), self.eot_token_id, self.max_length, 1):
                windows.append((None, *make_disjoint_window(window)))
                owner.append(i)
        totals = [0.0] * len(requests)
        for i, (logprob, _) in zip(owner, self._loglikelihood_tokens(windows, disable_tqdm)):
            totals[i] += logprob
        for request, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", (request.args[0],), total)
        return totals

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Greedy generation (sampling arguments are ignored) until a stop string, end-of-text or ``max_gen_toks``."""
        batch = []
        for context, gen_kwargs in (r.args for r in requests):
            until = gen_kwargs.get("until") or [EOS]
            batch.append({"context": self.tok_encode(context) or [self.eot_token_id],
                          "until": [until] if isinstance(until, str) else list(until),
                          "max_gen_toks": int(gen_kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS))})
        outputs = self._run("generate", batch)
        for request, text in zip(requests, outputs):
            self.cache_hook.add_partial("generate_until", request.args, text)
        return outputs


def register() -> None:
    """Registers ``modis`` with lm-eval's model registry (what the plugin hook does lazily)."""
    from lm_eval.api.registry import model_registry

    if "modis" not in model_registry:
        model_registry.register("modis", target=f"{__name__}:ModisLM")
