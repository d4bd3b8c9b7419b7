"""Fit a design to a scale: tune ``n_block``, then the design's declared width options, until the blocks' parameter
count lands within a tolerance of the scale's ``ref_params``."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch

from model_discovery.design.loader import Design
from model_discovery.lm.model import DiscoveryLM
from model_discovery.lm.scale import Scale

TOLERANCE = 0.20
_MAX_WIDTH_COMBOS = 256


class ScaleFitError(ValueError):
    """No configuration of the design lands within tolerance of the scale."""


@dataclass(frozen=True)
class Fit:
    """How a design is instantiated at a scale."""

    scale: Scale
    n_block: int
    gab_config: dict[str, Any]
    params: int

    @property
    def rel_error(self) -> float:
        return self.params / self.scale.ref_params - 1.0


def block_params(design: Design, scale: Scale, gab_config: dict[str, Any], n_block: int) -> int:
    """Parameters of ``n_block`` blocks at ``scale``, counted on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        blocks = [design.gab_cls(scale.d_model, (i, n_block), **gab_config) for i in range(n_block)]
    return sum(p.numel() for block in blocks for p in block.parameters())


def _best_depth(design: Design, scale: Scale, config: dict[str, Any], max_blocks: int) -> Fit:
    """The depth whose count is closest to ``ref_params`` (blocks may differ by depth, so each is counted)."""
    per_block = block_params(design, scale, config, 1)
    guess = max(1, round(scale.ref_params / max(per_block, 1)))
    candidates = sorted({n for n in range(guess - 2, guess + 3) if 1 <= n <= max_blocks} | {scale.n_block})
    fits = [Fit(scale, n, config, block_params(design, scale, config, n)) for n in candidates]
    return min(fits, key=lambda f: (abs(f.rel_error), abs(f.n_block - scale.n_block)))


def fit_to_scale(design: Design, scale: Scale, tolerance: float = TOLERANCE, max_blocks: int | None = None) -> Fit:
    """Returns the configuration of ``design`` closest to ``scale.ref_params``.

    Depth is tuned first with the design's own ``gab_config``; if no depth is within ``tolerance``, the width
    options the design declares (``gab_width_options``) are searched too, preferring its own values.

    Raises:
        ScaleFitError: nothing lands within tolerance; the message gives the closest configuration.
    """
    max_blocks = max_blocks or 4 * scale.n_block
    best = _best_depth(design, scale, design.gab_config, max_blocks)
    if abs(best.rel_error) <= tolerance:
        return best
    keys = sorted(design.width_options)
    combos = itertools.islice(itertools.product(*(design.width_options[k] for k in keys)), _MAX_WIDTH_COMBOS)
    for values in combos:
        fit = _best_depth(design, scale, {**design.gab_config, **dict(zip(keys, values))}, max_blocks)
        if abs(fit.rel_error) < abs(best.rel_error):
            best = fit
    if abs(best.rel_error) <= tolerance:
        return best
    raise ScaleFitError(
        f"design {design.name!r} cannot be fitted to scale {scale.name!r}: the closest is n_block={best.n_block} "
        f"with {best.params:,} block parameters, {best.rel_error:+.0%} from ref_params={scale.ref_params:,} "
        f"(allowed ±{tolerance:.0%}). Change the block's width, or declare width options in gab_width_options.")


def build_lm(design: Design, scale: Scale, fit: Fit | None = None, vocab_size: int | None = None,
             **kwargs) -> DiscoveryLM:
    """A ``DiscoveryLM`` of ``design`` fitted to ``scale``."""
    fit = fit or fit_to_scale(design, scale)
    return DiscoveryLM(design.gab_cls, fit.gab_config, scale, vocab_size=vocab_size, n_block=fit.n_block, **kwargs)
