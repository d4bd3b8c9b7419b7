"""Fitness: one number per verified design, comparable only among designs verified at the same rung on the same
data (corpus, tokenizer, BLiMP set).

Each metric is normalised between a random-model floor and the reference designs' mean at that rung::

    normalised = (value - floor) / (reference_mean - floor)

so 0 is a model that guesses (held-out loss ``ln(vocab)``: the uniform distribution; pair accuracy 0.5; a
task's chance accuracy) and 1 is an average reference design; above 1 beats them. The metrics are the held-out
loss and each minimal-pair phenomenon, or at a rung of tasks (``mad``) each task's accuracy (the rung's kind names
the section of the metrics that holds them: :mod:`model_discovery.verify.kinds`). A metric is dropped
when it separates nothing:

- the references do not clearly beat the floor (a phenomenon they do at or below chance cannot rank anyone;
  normalising by it would even flip the sign), or
- every design's value lies within noise of every other's (the spread is under two standard errors).

Fitness is ``loss_weight * normalised loss + (1 - loss_weight) * mean normalised phenomenon`` over the kept
metrics (just the loss when no phenomenon is kept; the rung's kind may set the weight: 0 at ``mad``, where fitness is
the mean normalised task accuracy). Dropped metrics are reported with their reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import fmean

from pydantic import BaseModel, Field

PAIR_FLOOR = 0.5
DEFAULT_LOSS_WEIGHT = 0.6


class Verified(BaseModel):
    """One design's metrics at a rung (``metrics`` as in ``metrics.json``)."""

    name: str
    metrics: dict
    reference: bool = False


class Fitness(BaseModel):
    name: str
    fitness: float
    normalised: dict[str, float] = Field(description="kept metric -> normalised value")


class FitnessReport(BaseModel):
    scores: list[Fitness]
    floors: dict[str, float]
    reference_means: dict[str, float]
    dropped: dict[str, str] = Field(description="metric -> why it was dropped")
    kept: list[str] = Field(default_factory=list, description="the metrics fitness is made of")
    loss_weight: float = DEFAULT_LOSS_WEIGHT
    tasks: str | None = Field(None, description="the metrics' section of per-task accuracies, if any")

    def of(self, name: str) -> Fitness:
        return next(s for s in self.scores if s.name == name)

    def score(self, name: str, metrics: dict) -> Fitness:
        """The fitness of metrics that took no part in the report (another training seed of a design, say), on
        the report's scale: its floors, reference means and kept metrics."""
        values = _metric_values(Verified(name=name, metrics=metrics), self.tasks)
        kept = [m for m in self.kept if m in values]
        return _fitness(name, values, kept, self.floors, self.reference_means, self.loss_weight)


def _fitness(name: str, values: dict[str, float], kept: Sequence[str], floors: dict[str, float],
             means: dict[str, float], loss_weight: float) -> Fitness:
    normalised = {m: (values[m] - floors[m]) / (means[m] - floors[m]) for m in kept}
    accuracies = [normalised[m] for m in kept if m != "val_loss"]  # minimal pairs, or the tasks
    loss = normalised.get("val_loss")
    if loss is None:
        fitness = fmean(accuracies) if accuracies else 0.0
    else:
        fitness = loss_weight * loss + (1 - loss_weight) * fmean(accuracies) if accuracies else loss
    return Fitness(name=name, fitness=fitness, normalised=normalised)


def _metric_values(record: Verified, tasks: str | None = None) -> dict[str, float]:
    values = {"val_loss": float(record.metrics["val_loss"])}
    blimp = record.metrics.get("blimp") or {}
    values.update({f"pairs/{k}": float(v) for k, v in (blimp.get("by_phenomenon") or {}).items()})
    section = record.metrics.get(tasks) or {} if tasks else {}
    values.update({f"tasks/{k}": float(v) for k, v in (section.get("by_task") or {}).items()})
    return values


def _floor(metric: str, records: Sequence[Verified], vocab_size: int, tasks: str | None) -> float:
    """What a model that guesses scores: the uniform distribution's loss, a coin flip between two sentences, a
    task's chance accuracy."""
    if metric == "val_loss":
        return math.log(vocab_size)
    if metric.startswith("tasks/"):
        return float(records[0].metrics[tasks]["chance"][metric.removeprefix("tasks/")])
    return PAIR_FLOOR


def _samples(metric: str, records: Sequence[Verified], tasks: str | None) -> float:
    """How many independent trials an accuracy is over (minimal pairs of a phenomenon; a task's test examples)."""
    if metric.startswith("tasks/"):
        return float(records[0].metrics[tasks]["n_examples"])
    return _pairs_per_phenomenon(records)


def _pairs_per_phenomenon(records: Sequence[Verified]) -> float:
    for r in records:
        blimp = r.metrics.get("blimp") or {}
        if blimp.get("n_pairs") and blimp.get("by_phenomenon"):
            return blimp["n_pairs"] / len(blimp["by_phenomenon"])
    return math.inf


def _noise(metric: str, values: Sequence[float], n: float) -> float:
    """One standard error: binomial for an accuracy over ``n`` trials; for the loss, a 0.5% relative tolerance."""
    if metric != "val_loss":
        p = min(max(fmean(values), 0.01), 0.99)
        return math.sqrt(p * (1 - p) / n)
    return 0.005 * abs(fmean(values))


def _beats_floor(metric: str, reference_values: Sequence[float], floor: float, n: float) -> bool:
    """Whether the references clearly beat chance on ``metric``: by two standard errors of their values."""
    mean = fmean(reference_values)
    gain = floor - mean if metric == "val_loss" else mean - floor
    return gain >= 2 * _noise(metric, reference_values, n)


def separating_phenomena(references: Sequence[Verified]) -> list[str] | None:
    """The minimal-pair phenomena on which the references (verified at a rung, with every phenomenon scored)
    clearly beat chance: the only ones :func:`compute_fitness` can keep, so a design scored on these alone gets
    the same fitness as one scored on all of them. None when no reference scored any."""
    refs = [r for r in references if (r.metrics.get("blimp") or {}).get("by_phenomenon")]
    if not refs:
        return None
    values = [_metric_values(r) for r in refs]
    n = _pairs_per_phenomenon(refs)
    names = sorted(set.intersection(*(set(v) for v in values)))
    return [m.removeprefix("pairs/") for m in names if m.startswith("pairs/")
            and _beats_floor(m, [v[m] for v in values], PAIR_FLOOR, n)]


def compute_fitness(records: Sequence[Verified], vocab_size: int, loss_weight: float = DEFAULT_LOSS_WEIGHT,
                    tasks: str | None = None) -> FitnessReport:
    """Fitness of every record against the references among them (at least one is required). ``tasks``: the
    section of the metrics that holds per-task accuracies (a rung kind's, see
    :meth:`~model_discovery.verify.kinds.RungKind.fitness`)."""
    refs = [r for r in records if r.reference]
    if not refs:
        raise ValueError("fitness needs at least one reference design verified at the same rung and data")
    values = [_metric_values(r, tasks) for r in records]
    metrics = sorted(set.intersection(*(set(v) for v in values)))
    floors = {m: _floor(m, records, vocab_size, tasks) for m in metrics}
    ref_values = [_metric_values(r, tasks) for r in refs]
    means = {m: fmean(v[m] for v in ref_values) for m in metrics}
    kept, dropped = [], {}
    for m in metrics:
        column = [v[m] for v in values]
        n = _samples(m, records, tasks)
        noise = _noise(m, column, n)
        if not _beats_floor(m, [v[m] for v in ref_values], floors[m], n):
            dropped[m] = f"references not above the random floor ({means[m]:.3f} vs {floors[m]:.3f})"
        elif len(records) > 1 and max(column) - min(column) < 2 * noise:
            dropped[m] = f"every design within noise ({min(column):.3f}..{max(column):.3f}, ±{noise:.3f})"
        else:
            kept.append(m)
    scores = [_fitness(r.name, vals, kept, floors, means, loss_weight) for r, vals in zip(records, values)]
    return FitnessReport(scores=scores, floors=floors, reference_means=means, dropped=dropped, kept=kept,
                         loss_weight=loss_weight, tasks=tasks)
