"""Proxy fidelity: does the ranking of designs at one rung predict their ranking at another?

A ladder is only worth climbing if its cheap rungs rank designs the way its expensive rungs would. For every pair
of rungs, over the designs verified at both (references included), this reports the Spearman and Kendall rank
correlations of fitness and of held-out loss, the number of designs, and two measures of how much to trust them:

- a permutation p-value: the chance that rankings unrelated between the rungs agree at least as well (exact, over
  every ordering, up to 8 designs; from 20,000 seeded random orderings above). Three designs in perfect agreement
  give p = 1/6: a ranking of three tells little, whatever its correlation;
- a percentile bootstrap 95% interval (designs resampled with replacement), only from ``MIN_INTERVAL`` designs up.
  Below that the resamples repeat the few designs there are, and an interval such as [+1.00, +1.00] over three
  designs would claim a certainty the sample does not have: the report says "too few designs" instead.

Below three shared designs there is nothing to correlate and the pair reports ``None``.
"""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field
from scipy.stats import kendalltau, rankdata, spearmanr

METRICS = ("fitness", "val_loss")
MIN_DESIGNS = 3
MIN_INTERVAL = 10  # designs from which a bootstrap interval is reported
EXACT_UP_TO = 8  # designs up to which the permutation p-value enumerates every ordering (8! = 40,320)


class Agreement(BaseModel):
    spearman: float
    spearman_ci: tuple[float, float] | None = Field(
        description=f"bootstrap 95% interval; None below {MIN_INTERVAL} designs (too few for one)")
    kendall: float
    kendall_ci: tuple[float, float] | None = None
    n: int
    p: float | None = Field(None, description="one-sided permutation p-value of a Spearman correlation at least "
                                              "this large between unrelated rankings (None in older reports)")


class RungPair(BaseModel):
    low: str
    high: str
    designs: list[str] = Field(description="verified at both rungs")
    agreement: dict[str, Agreement | None] = Field(description="metric -> agreement (None below 3 designs)")


class FidelityReport(BaseModel):
    pairs: list[RungPair]

    def table(self) -> str:
        lines = [f"{'rungs':<22}{'metric':<10}{'n':>4}{'Spearman':>10}{'p':>8}{'95% CI':>18}{'Kendall':>10}"
                 f"{'95% CI':>18}"]
        for pair in self.pairs:
            for metric, a in pair.agreement.items():
                rungs = f"{pair.low} -> {pair.high}"
                if a is None:
                    lines.append(f"{rungs:<22}{metric:<10}{len(pair.designs):>4}  (no ranking: fewer than "
                                 f"{MIN_DESIGNS} designs, or a rung scores them all alike)")
                    continue
                p = "-" if a.p is None else f"{a.p:.3f}"
                lines.append(f"{rungs:<22}{metric:<10}{a.n:>4}{a.spearman:>10.2f}{p:>8}{ci_text(a.spearman_ci):>18}"
                             f"{a.kendall:>10.2f}{ci_text(a.kendall_ci):>18}")
        return "\n".join(lines)


def ci_text(ci: tuple[float, float] | None) -> str:
    """An interval as the report prints it; none: too few designs for one."""
    return f"too few (<{MIN_INTERVAL})" if ci is None else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _correlations(x: list[float], y: list[float]) -> tuple[float, float]:
    return float(spearmanr(x, y).statistic), float(kendalltau(x, y).statistic)


def rank_agreement(x: list[float], y: list[float], n_boot: int = 2000, seed: int = 0) -> Agreement | None:
    """Rank correlations of paired scores, their permutation p-value and (from ``MIN_INTERVAL`` pairs) percentile
    bootstrap intervals; None below three pairs or when a side is constant (it ranks nothing). Resamples in which
    one side is constant (no ranking) are skipped."""
    if len(x) != len(y):
        raise ValueError(f"paired scores differ in length: {len(x)} and {len(y)}")
    if len(x) < MIN_DESIGNS or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rho, tau = _correlations(x, y)
    p = permutation_p(x, y, seed=seed)
    if len(x) < MIN_INTERVAL:
        return Agreement(spearman=rho, spearman_ci=None, kendall=tau, kendall_ci=None, n=len(x), p=p)
    rng = random.Random(seed)
    samples: list[tuple[float, float]] = []
    for _ in range(n_boot):
        idx = [rng.randrange(len(x)) for _ in x]
        bx, by = [x[i] for i in idx], [y[i] for i in idx]
        if len(set(bx)) > 1 and len(set(by)) > 1:
            samples.append(_correlations(bx, by))
    return Agreement(spearman=rho, spearman_ci=_percentiles([s[0] for s in samples], rho),
                     kendall=tau, kendall_ci=_percentiles([s[1] for s in samples], tau), n=len(x), p=p)


def permutation_p(x: list[float], y: list[float], n_perm: int = 20_000, seed: int = 0) -> float:
    """The share of orderings of ``y`` whose Spearman correlation with ``x`` is at least the observed one (ties
    ranked as Spearman ranks them): exact up to ``EXACT_UP_TO`` pairs, else from ``n_perm`` seeded random
    orderings (counting the observed one, so never zero)."""
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y)
    if len(x) <= EXACT_UP_TO:
        orders, extra = np.array(list(itertools.permutations(ry))), 0
    else:
        rng = np.random.default_rng(seed)
        orders, extra = rng.permuted(np.tile(ry, (n_perm, 1)), axis=1), 1
    # a Spearman correlation is the Pearson correlation of the ranks; every ordering has the same spread, so the
    # sum of products orders them as their correlations do
    scores, observed = orders @ rx, float(ry @ rx)
    return (int(np.sum(scores >= observed - 1e-9)) + extra) / (len(orders) + extra)


def _percentiles(values: list[float], fallback: float) -> tuple[float, float]:
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return fallback, fallback
    return values[int(0.025 * (len(values) - 1))], values[math.ceil(0.975 * (len(values) - 1))]


def fidelity(scores: dict[str, dict[str, dict[str, float]]], rungs: list[str], n_boot: int = 2000) -> FidelityReport:
    """``scores[rung][design][metric]`` (metrics: fitness, val_loss) → agreement for every pair of rungs, lower
    rung first, in ladder order."""
    pairs = []
    for i, low in enumerate(rungs):
        for high in rungs[i + 1:]:
            shared = sorted(set(scores.get(low, {})) & set(scores.get(high, {})))
            agreement = {}
            for metric in METRICS:
                both = [d for d in shared if metric in scores[low][d] and metric in scores[high][d]]
                agreement[metric] = rank_agreement([scores[low][d][metric] for d in both],
                                                   [scores[high][d][metric] for d in both], n_boot)
            pairs.append(RungPair(low=low, high=high, designs=shared, agreement=agreement))
    return FidelityReport(pairs=pairs)


def plot(scores: dict[str, dict[str, dict[str, float]]], report: FidelityReport, path: str | Path,
         metric: str = "fitness") -> Path:
    """A PNG with one scatter per pair of rungs (``metric`` at the lower rung against the higher), each design
    labelled, the correlations in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = report.pairs or []
    fig, axes = plt.subplots(1, max(1, len(pairs)), figsize=(4.5 * max(1, len(pairs)), 4.2), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        names = [d for d in pair.designs if metric in scores[pair.low][d] and metric in scores[pair.high][d]]
        xs = [scores[pair.low][d][metric] for d in names]
        ys = [scores[pair.high][d][metric] for d in names]
        ax.scatter(xs, ys)
        for name, x, y in zip(names, xs, ys):
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        a = pair.agreement.get(metric)
        title = f"n={len(names)}" if a is None else f"Spearman {a.spearman:.2f} {ci_text(a.spearman_ci)}, n={a.n}"
        ax.set(xlabel=f"{metric} at {pair.low}", ylabel=f"{metric} at {pair.high}", title=title)
        ax.title.set_fontsize(9)
    if not pairs:
        axes[0][0].set_title("one rung: nothing to compare")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
