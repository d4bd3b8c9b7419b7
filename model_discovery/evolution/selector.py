"""Choosing what to do next: which designs become parents (``quadrant``, ``ucb``, ``random``, behind one
interface, plugins by entry points), and which design is verified at which rung (every design starts at the lowest
rung; promotion narrows by the ladder's ratio). Which operator makes the next design is the operators' own
(:mod:`model_discovery.agents.operators`)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from model_discovery.registry import Registry


@dataclass(frozen=True)
class Candidate:
    """A design as the selector sees it: ``fitness`` at its highest verified rung (None: not verified yet),
    ``confidence`` in [0, 1] (how far up the ladder it was verified), ``children`` it already has."""

    name: str
    fitness: float | None = None
    confidence: float = 0.0
    children: int = 0


class ParentSelector(Protocol):
    name: str

    def select(self, candidates: Sequence[Candidate], k: int, rng: random.Random) -> list[Candidate]:
        """``k`` distinct parents (fewer when there are fewer candidates)."""
        ...


SELECTORS: Registry[type] = Registry("selector", group="model_discovery.selectors")


def _draw(pool: list[Candidate], weights: list[float], k: int, rng: random.Random) -> list[Candidate]:
    """``k`` distinct draws without replacement, proportional to ``weights``."""
    pool, weights, out = list(pool), list(weights), []
    while pool and len(out) < k:
        i = rng.choices(range(len(pool)), weights=weights)[0] if sum(weights) > 0 else rng.randrange(len(pool))
        out.append(pool.pop(i))
        weights.pop(i)
    return out


@SELECTORS.register("random")
class RandomSelector:
    """Uniform over the tree: the baseline the others must beat."""

    name = "random"

    def select(self, candidates: Sequence[Candidate], k: int, rng: random.Random) -> list[Candidate]:
        return rng.sample(list(candidates), min(k, len(candidates)))


@SELECTORS.register("quadrant")
class QuadrantSelector:
    """Fitness rank × confidence. Verified designs are split at the median fitness rank: with probability
    ``1 - explore`` a parent comes from the good half, weighted by rank × (½ + confidence) — good and confident
    designs are exploited most; otherwise from the poor half, weighted by confidence — poor but well-measured designs
    are the ones worth exploring away from. Unverified designs join the poor half with a small weight, so a fresh
    branch is never locked out."""

    name = "quadrant"

    def __init__(self, explore: float = 0.2):
        self.explore = explore

    def select(self, candidates: Sequence[Candidate], k: int, rng: random.Random) -> list[Candidate]:
        verified = sorted((c for c in candidates if c.fitness is not None), key=lambda c: c.fitness)
        if not verified:
            return RandomSelector().select(candidates, k, rng)
        rank = {c.name: (i + 1) / len(verified) for i, c in enumerate(verified)}
        good = [c for c in verified if rank[c.name] > 0.5] or verified
        in_good = {c.name for c in good}  # by name: comparing dataclasses would cost O(tree × good)
        poor = [c for c in candidates if c.name not in in_good]
        picks: list[Candidate] = []
        while len(picks) < min(k, len(candidates)):
            explore = bool(poor) and rng.random() < self.explore
            taken = {c.name for c in picks}
            pool = [c for c in (poor if explore else good) if c.name not in taken] or \
                [c for c in candidates if c.name not in taken]
            weights = [(0.5 * c.confidence + 0.05) if explore else rank.get(c.name, 0.1) * (0.5 + c.confidence)
                       for c in pool]
            picks += _draw(pool, weights, 1, rng)
        return picks


@SELECTORS.register("ucb")
class UCBSelector:
    """Upper confidence bound over designs as arms: fitness + c·sqrt(ln N / (1 + children)); an unverified design
    counts with the mean fitness."""

    name = "ucb"

    def __init__(self, c: float = 0.5):
        self.c = c

    def select(self, candidates: Sequence[Candidate], k: int, rng: random.Random) -> list[Candidate]:
        known = [c.fitness for c in candidates if c.fitness is not None]
        mean = sum(known) / len(known) if known else 0.0
        total = sum(c.children for c in candidates) + 1

        def score(c: Candidate) -> float:
            base = c.fitness if c.fitness is not None else mean
            return base + self.c * math.sqrt(math.log(total + 1) / (1 + c.children)) + 1e-9 * rng.random()

        return sorted(candidates, key=score, reverse=True)[:k]


def make_selector(name: str, **kwargs) -> ParentSelector:
    return SELECTORS.get(name)(**kwargs)


def rung_budgets(rungs: Sequence[str], budget: int | dict[str, int], ratio: float) -> dict[str, int]:
    """Verifications allowed per rung. An int is the lowest rung's budget; each higher rung gets the one below
    times ``ratio``, rounded down (``10, 0.25`` → 10, 2, 0). A dict names rungs explicitly (others get 0)."""
    if isinstance(budget, dict):
        unknown = set(budget) - set(rungs)
        if unknown:
            raise KeyError(f"verify budget names unknown rungs {sorted(unknown)}; the ladder has {list(rungs)}")
        return {r: int(budget.get(r, 0)) for r in rungs}
    if budget < 0:
        raise ValueError(f"verify budget must be >= 0, got {budget}")
    out, current = {}, float(budget)
    for rung in rungs:
        out[rung] = int(current + 1e-9)
        current *= ratio
    return out


def promotable(ranked: Sequence[str], already: set[str], budget: int, ratio: float, settled: bool) -> list[str]:
    """Designs that may go up a rung now, best first. ``ranked``: every design verified at the rung below, best
    first; ``already``: those promoted before. While the rung below is still filling, only its top ``ratio`` share
    qualifies, once it holds at least ``1/ratio`` designs; when it is ``settled`` (nothing more will be verified
    there) the best fill what is left of ``budget``."""
    room = budget - len(already)
    if room <= 0 or not ranked:
        return []
    if settled:
        pool = list(ranked)
    elif len(ranked) < math.ceil(1 / ratio):
        return []
    else:
        pool = list(ranked[:math.floor(len(ranked) * ratio)])
    return [name for name in pool if name not in already][:room]
