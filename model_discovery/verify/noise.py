"""Seed noise: how much a design's held-out loss moves when only the seed changes, and whether a win is larger than
that. The seed sets the initialisation and the order of the training windows; on the built-in synthetic corpus it
also regenerates the text (and so the tokenizer and the held-out split), so there the floor includes data noise.
Margins are paired within a seed and the selection seed is one of them: a design picked as the best of many on that
seed carries an upward bias there, which more seeds dilute.

- **Noise floor** of a rung: the references trained with ``k`` seeds each; the pooled seed-to-seed standard
  deviation of their held-out loss (``sqrt`` of the mean of each reference's sample variance).
- **Confirmation** of a claim "the best design beats every reference": the best design is trained with the same
  seeds. At each seed the margin is the best reference's loss minus the design's (positive: the design is better);
  the claim is *confirmed* when the 95% t-interval of the mean margin (its standard deviation at least the noise
  floor: margins that tie over a few seeds are not exact) lies above zero **and** the mean margin exceeds the noise
  floor (a win smaller than what reseeding a reference changes is not a finding). The t-interval
  assumes the per-seed margins are normal; beside it the report gives the exact sign-flip p-value, which assumes
  nothing but symmetry: the share of the 2^n sign patterns of the margins whose mean is at least the observed
  one. With 3 seeds it is never below 1/8, so 3 seeds alone cannot confirm a claim without the normal model.
"""

from __future__ import annotations

import itertools
import math
from statistics import fmean, stdev

from pydantic import BaseModel, Field
from scipy import stats

RULE = ("confirmed: the 95% t-interval of the mean per-seed margin (best reference's loss minus the design's) lies "
        "above zero and the mean margin exceeds the references' seed-to-seed standard deviation")


class NoiseFloor(BaseModel):
    """The references' held-out loss (and fitness) at each seed, at one rung."""

    seeds: list[int]
    losses: dict[str, list[float | None]] = Field(description="reference -> held-out loss per seed (None: missing)")
    fitness: dict[str, list[float | None]] = Field(default_factory=dict, description="reference -> fitness per seed")
    std: float | None = Field(description="pooled seed-to-seed standard deviation of the held-out loss")
    fitness_std: float | None = None
    spread: float | None = Field(None, description="max - min held-out loss over every design verified at the "
                                                   "rung (first seed): what the noise is compared with")


class Confirmation(BaseModel):
    rung: str
    seeds: list[int]
    losses: list[float] = Field(description="the design's held-out loss per seed")
    margins: list[float] = Field(description="best reference's loss minus the design's, per seed")
    mean: float
    low: float
    high: float
    noise: float | None
    confirmed: bool
    rule: str = RULE
    p_exact: float | None = Field(None, description="exact sign-flip p-value of the mean margin (one-sided; None "
                                                    "in older reports)")


def pooled_std(series: dict[str, list[float | None]]) -> float | None:
    """Pooled sample standard deviation over the series that have at least two values."""
    variances = [stdev(v) ** 2 for v in ([x for x in s if x is not None] for s in series.values()) if len(v) >= 2]
    return math.sqrt(fmean(variances)) if variances else None


def interval(values: list[float], level: float = 0.95, floor: float | None = None) -> tuple[float, float]:
    """The t-interval of the mean of ``values`` (infinite with a single value); ``floor``: the least standard
    deviation it assumes (margins that happen to tie do not make a margin exact)."""
    mean = fmean(values)
    if len(values) < 2:
        return -math.inf, math.inf
    spread = max(stdev(values), floor or 0.0)
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * spread / math.sqrt(len(values))
    return mean - half, mean + half


def sign_flip_p(values: list[float]) -> float:
    """One-sided exact p-value of a positive mean: the share of the 2^n sign patterns of ``values`` whose mean is
    at least the observed one."""
    observed = sum(values) - 1e-12
    patterns = itertools.product((1, -1), repeat=len(values))
    return sum(sum(s * abs(v) for s, v in zip(signs, values)) >= observed for signs in patterns) / 2 ** len(values)


def sign_flip_text(p: float | None, n: int) -> str:
    """The exact p-value as a report says it, with the smallest one ``n`` seeds can give."""
    return "no exact p-value (older report)" if p is None else f"exact sign-flip p {p:.3f} (at least {0.5 ** n:.3f} " \
        f"with {n} seeds)"


def confirm(rung: str, seeds: list[int], design: list[float | None], references: dict[str, list[float | None]],
            noise: float | None) -> Confirmation | None:
    """The claim's margins over the seeds where the design and every reference were verified; None below two."""
    both = [i for i, x in enumerate(design) if x is not None and all(r[i] is not None for r in references.values())]
    if len(both) < 2 or not references:
        return None
    margins = [min(r[i] for r in references.values()) - design[i] for i in both]
    mean = fmean(margins)
    low, high = interval(margins, floor=noise)
    confirmed = low > 0 and (noise is None or mean > noise)
    return Confirmation(rung=rung, seeds=[seeds[i] for i in both], losses=[design[i] for i in both],
                        margins=margins, mean=mean, low=low, high=high, noise=noise, confirmed=confirmed,
                        p_exact=sign_flip_p(margins))
