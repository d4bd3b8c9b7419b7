"""``DiscoveryLM``: the language model around a block.

    input_ids ─ embedding ─┬─ GAB(block_loc=(0, n)) ─ … ─ GAB(block_loc=(n-1, n)) ─ RMSNorm ─ head (tied) ─ logits
                           └─ Z threaded through every block; Z["aux_loss"] is collected after each block

Generation (:meth:`DiscoveryLM.greedy`) feeds the prompt, then one token at a time, through a
:class:`~model_discovery.design.base.Cache` when every unit of the design is incremental; otherwise it recomputes
the window at each step (and says so once).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_discovery.design.base import AUX_LOSS, CACHE, Cache, GABBase, GAUBase
from model_discovery.lm.loss import IGNORE_INDEX, cross_entropy

if TYPE_CHECKING:  # an annotation only: an exported model carries this file without the ladder's code
    from model_discovery.lm.scale import Scale

# Residual-stream output projections get GPT-2's depth-scaled init.
_RESIDUAL_PROJECTIONS = ("out_proj", "o_proj", "down_proj", "c_proj", "fc2", "proj_out")


@dataclass
class LMOutput:
    logits: Tensor
    loss: Tensor | None = None
    aux_loss: Tensor | None = None


class DiscoveryLM(nn.Module):
    """Token embedding → ``n_block`` blocks → final RMSNorm → LM head tied to the embedding.

    Args:
        gab_cls: the design's ``GAB`` class.
        gab_config: hyperparameters passed to every block as keyword arguments.
        scale: gives ``d_model`` and ``n_block``.
        vocab_size: defaults to ``scale.vocab``.
        n_block: overrides ``scale.n_block`` (what :func:`fit_to_scale` tunes).
    """

    def __init__(self, gab_cls: type[GABBase], gab_config: dict, scale: Scale, vocab_size: int | None = None,
                 n_block: int | None = None, device=None, dtype=None, norm_eps: float = 1e-5):
        super().__init__()
        self.scale = scale
        self.gab_config = gab_config
        self.vocab_size = vocab_size or scale.vocab
        self.n_block = n_block or scale.n_block
        d = scale.d_model
        self.embedding = nn.Embedding(self.vocab_size, d, device=device, dtype=dtype)
        self.blocks = nn.ModuleList(
            gab_cls(d, (i, self.n_block), device=device, dtype=dtype, **gab_config) for i in range(self.n_block))
        self.norm_out = nn.RMSNorm(d, eps=norm_eps, device=device, dtype=dtype)
        self.lm_head = nn.Linear(d, self.vocab_size, bias=False, device=device, dtype=dtype)
        self.lm_head.weight = self.embedding.weight
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith(tuple(f"{p}.weight" for p in _RESIDUAL_PROJECTIONS)):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * self.n_block))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """GPT-2 init for linear and embedding layers; units opt out with ``_no_reinit = True``."""
        if getattr(module, "_no_reinit", False) or getattr(module, "weight", None) is None:
            return
        if module.weight.device.type == "meta":
            return
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def block_params(self) -> int:
        """Parameters of the blocks: what a scale's ``ref_params`` counts (embedding excluded)."""
        return sum(p.numel() for p in self.blocks.parameters())

    def hidden(self, input_ids: Tensor, cache: Cache | None = None) -> tuple[Tensor, Tensor | None]:
        """The final normalised hidden states (B, L, D) and the blocks' summed auxiliary loss (or None).
        With ``cache``, ``input_ids`` continue the sequences it holds, and the cache advances past them."""
        X = self.embedding(input_ids)  # (B, L, D)
        Z: dict = {} if cache is None else {CACHE: cache}
        aux = None
        for block in self.blocks:
            X, Z = block(X, **Z)
            block_aux = Z.pop(AUX_LOSS, None)
            if block_aux is not None:
                aux = block_aux if aux is None else aux + block_aux
        if cache is not None:
            cache.seen += input_ids.shape[1]
        return self.norm_out(X), aux

    def forward(self, input_ids: Tensor, labels: Tensor | None = None, cache: Cache | None = None) -> LMOutput:
        """``labels`` are the targets aligned with ``input_ids`` (shifted inside, as in Hugging Face). ``cache``: see
        :meth:`new_cache`."""
        hidden, aux = self.hidden(input_ids, cache)
        logits = self.lm_head(hidden)  # (B, L, V)
        loss = None
        if labels is not None:
            # shift the labels, not the logits: slicing (B, L, V) logits would copy them
            targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
            loss = cross_entropy(logits.flatten(0, 1), targets.flatten())
            if aux is not None:
                loss = loss + aux
        return LMOutput(logits=logits, loss=loss, aux_loss=aux)

    def not_incremental(self) -> list[str]:
        """The design's units (and block) that declare no incremental interface, by class name."""
        units = (m for m in self.modules() if isinstance(m, (GAUBase, GABBase)))
        return sorted({type(m).__name__ for m in units if not type(m).incremental})

    def new_cache(self) -> Cache | None:
        """An empty cache to generate with, or None (with a warning, once per design) when a unit of the design
        has no incremental interface: then each step recomputes the window."""
        missing = self.not_incremental()
        if missing:
            warnings.warn(f"{', '.join(missing)} declare no incremental interface (GAUBase.incremental): "
                          "generation recomputes the window at each step", stacklevel=2)
            return None
        return Cache()

    def fit_cache(self, cache: Cache, length: int) -> Cache:
        """The cache to continue a sequence of ``length`` tokens with: ``cache``, or a new one when the tokens it has
        not seen would take it past the context (from the last half window; for a first prompt longer than the
        context, from its last ``context`` tokens). Feed it the tokens from ``cache.start + cache.seen`` on."""
        context = self.scale.context
        if length - cache.start <= context:
            return cache
        return Cache(start=length - (context // 2 if cache.seen else context))

    @torch.no_grad()
    def greedy(self, prompt: Sequence[int], use_cache: bool = True) -> Iterator[int]:
        """Greedy continuation of ``prompt``, token by token, for as long as the caller reads (one sequence).

        Without a cache each step reads the last ``context`` tokens. With one, each step feeds only the new token;
        when the sequence would outgrow the context, the cache restarts from the last half window
        (:meth:`fit_cache`). So the two agree while prompt and continuation fit in the context.
        """
        if not prompt:
            raise ValueError("greedy: the prompt needs at least one token (e.g. the end-of-text token)")
        context, device = self.scale.context, next(self.parameters()).device
        ids = list(prompt)
        cache = self.new_cache() if use_cache else None
        while True:
            if cache is None:
                logits = self(torch.tensor([ids[-context:]], device=device)).logits
            else:
                cache = self.fit_cache(cache, len(ids))
                logits = self(torch.tensor([ids[cache.start + cache.seen:]], device=device), cache=cache).logits
            token = int(logits[0, -1].argmax())
            ids.append(token)
            yield token
