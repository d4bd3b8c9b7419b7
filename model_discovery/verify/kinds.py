"""Rung kinds: what a rung does with a design. A rung's ``kind`` names one of them; the kind owns everything that
differs between kinds, so no module outside a kind's own names it:

- its data: whether it trains on the run's corpus (tokenizer, held-out loss, minimal pairs; the checker builds
  designs at the lowest such rung, early stopping probes it, the best known designs are measured there), and the
  inputs it writes into the job's folder (:meth:`RungKind.prepare`);
- its job: the function the sandboxed child runs (:attr:`RungKind.job`), its training steps and probes;
- its metrics: the section of ``metrics.json`` that holds its accuracies, and the line that sums them up;
- its fitness: the weight of the held-out loss beside those accuracies.

Two are built in: ``lm`` (pre-training on a corpus, here) and ``mad`` (the mechanistic tasks,
:mod:`model_discovery.verify.mad`). A package adds one as a class with an entry point in the group
``model_discovery.rung_kinds``; a ladder's rung then names it as its ``kind``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from model_discovery.files import atomic_write
from model_discovery.lm import Ladder, Scale
from model_discovery.registry import Registry
from model_discovery.verify.fitness import FitnessReport, Verified, compute_fitness

PACKAGE = Path(__file__).resolve().parents[1]
PROBES = (0.25, 0.5)  # where in its training a verification's held-out loss is probed (early stopping reads them)


def probe_steps(steps: int) -> list[int]:
    """The training steps at the :data:`PROBES` fractions (those that fall strictly inside the training)."""
    return sorted({round(f * steps) for f in PROBES} - {0, steps})


class RungKind:
    """A kind of rung (subclass it; the class attributes say what its rung trains on and how it is scored)."""

    corpus: ClassVar[bool] = False  # trains on the run's corpus (see the module's docstring)
    job: ClassVar[str]  # "module:function" the sandboxed child runs with the job's payload; returns the metrics
    tasks: ClassVar[str | None] = None  # section of the metrics holding per-task accuracies ("acc", "by_task",
    #                                     "chance", "n_examples"); fitness reads them
    loss_weight: ClassVar[float | None] = None  # fitness's weight of the held-out loss (None: the default)
    accuracy_of: ClassVar[str] = "tasks"  # what its mean accuracy is over (a leaderboard's column)

    def __init__(self, name: str):
        self.name = name

    def steps(self, scale: Scale, fraction: float | dict[str, float]) -> int:
        """Training steps for a run's train fraction (one share, or {rung: share}; a rung it does not name trains
        all its tokens). A kind that does not train on the corpus trains all its steps."""
        if not self.corpus:
            return scale.steps
        share = fraction.get(scale.name, 1.0) if isinstance(fraction, dict) else fraction
        return max(1, round(scale.steps * share))

    def probes(self, steps: int) -> list[int]:
        """The steps where the training pauses to probe its held-out loss (none by default)."""
        return []

    def data(self, corpus: str) -> str:
        """What the rung's verifications are trained on, for their data key: the run's corpus, or the kind."""
        return corpus if self.corpus else self.name

    def prepare(self, out: Path, source: str, scale: Scale, seed: int, **data) -> dict:
        """Writes the job's inputs into ``out`` (``data``: the run's corpus, minimal pairs and other corpora, for a
        kind that reads them); returns their provenance. By default the design alone."""
        from model_discovery.design import content_hash

        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "design.py", source)
        return {"corpus": self.name, "design_hash": content_hash(source), "seed": seed}

    def payload(self) -> dict:
        """What the kind adds to every job's payload."""
        return {}

    def identity(self) -> dict:
        """What fixes the kind's numbers beside the rung, for a verification's fingerprint: its job, its payload, and
        a hash of its code outside this package (a plugin's; the package's own is in the fingerprint already)."""
        files = {inspect.getfile(type(self)), importlib.util.find_spec(self.job.split(":")[0]).origin}
        outside = sorted(f for f in files if f and not Path(f).resolve().is_relative_to(PACKAGE))
        digest = hashlib.sha256()
        for file in outside:
            digest.update(Path(file).read_bytes())
        return {"job": self.job, "payload": self.payload(), "code": digest.hexdigest()[:16] if outside else None}

    def accuracy(self, metrics: dict) -> float | None:
        """The mean accuracy the kind scores (minimal pairs, tasks), or None."""
        return (metrics.get(self.tasks) or {}).get("acc") if self.tasks else None

    def by_item(self, metrics: dict) -> dict[str, float]:
        """Accuracy per item (phenomenon, task)."""
        return (metrics.get(self.tasks) or {}).get("by_task") or {} if self.tasks else {}

    def fitness(self, records: Sequence[Verified], vocab_size: int) -> FitnessReport:
        """Fitness of the designs verified at a rung of this kind (:func:`~model_discovery.verify.fitness.
        compute_fitness`, with the kind's task accuracies and loss weight)."""
        weight = {} if self.loss_weight is None else {"loss_weight": self.loss_weight}
        return compute_fitness(records, vocab_size, tasks=self.tasks, **weight)

    def summary(self, metrics: dict) -> str:
        """One line of a finished verification's numbers (``modis verify``)."""
        items = ", ".join(f"{task} {acc:.2f}" for task, acc in self.by_item(metrics).items())
        accuracy = self.accuracy(metrics)
        if accuracy is None:
            return f"val_loss {metrics['val_loss']:.4f}"
        return f"mean accuracy {accuracy:.3f} ({items})"


RUNG_KINDS: Registry[type[RungKind]] = Registry("rung kind", group="model_discovery.rung_kinds")


@RUNG_KINDS.register("lm")
class LanguageModelling(RungKind):
    """Pre-training on the run's corpus (:mod:`model_discovery.verify.job`): held-out loss at the probes and at the
    end, bits per byte, minimal pairs, transfer to other corpora."""

    corpus = True
    job = "model_discovery.verify.job:run"
    accuracy_of = "minimal pairs"

    def probes(self, steps: int) -> list[int]:
        return probe_steps(steps)

    def prepare(self, out: Path, source: str, scale: Scale, seed: int, corpus: str = "synthetic",
                blimp: str | None = None, eval_corpora: list[str] = ()) -> dict:
        from model_discovery.verify.run import prepare

        return prepare(out, source, scale, corpus, blimp, seed, eval_corpora)

    def accuracy(self, metrics: dict) -> float | None:
        return (metrics.get("blimp") or {}).get("acc")

    def by_item(self, metrics: dict) -> dict[str, float]:
        return (metrics.get("blimp") or {}).get("by_phenomenon") or {}

    def summary(self, metrics: dict) -> str:
        blimp = metrics.get("blimp") or {}
        acc = f", minimal pairs {blimp['acc']:.3f} over {blimp['n_pairs']:,}" if blimp else ""
        return (f"val_loss {metrics['val_loss']:.4f} (ppl {metrics['perplexity']:.2f}){acc}; "
                f"{metrics['tokens_per_s']:.0f} tokens/s; train {metrics['train_s']:.0f} s, "
                f"eval {metrics['eval_s']:.0f} s")


def rung_kind(scale: Scale | str) -> RungKind:
    """The kind of a rung (or a kind by name); an unknown kind fails with the close ones."""
    name = scale if isinstance(scale, str) else scale.kind
    return RUNG_KINDS.get(name)(name)


def kind_of(metrics: dict) -> RungKind:
    """The kind of rung that produced ``metrics`` (written there since kinds existed; before, the kind whose task
    section they hold, else ``lm``)."""
    if "kind" in metrics:
        return rung_kind(metrics["kind"])
    found = next((n for n, k in RUNG_KINDS.entries.items() if k.tasks and k.tasks in metrics), "lm")
    return rung_kind(found)


def corpus_tokens(rungs: list[Scale], fraction: float | dict[str, float]) -> dict[str, int]:
    """Rung -> the tokens a run with train fraction ``fraction`` trains at each rung that trains on its corpus."""
    return {s.name: rung_kind(s).steps(s, fraction) * s.batch_tokens for s in rungs if rung_kind(s).corpus}


def lowest_corpus_rung(ladder: Ladder) -> Scale | None:
    """The lowest rung that trains on the run's corpus (the checker builds designs there), or None."""
    return next((s for s in ladder.rungs if rung_kind(s).corpus), None)


import model_discovery.verify.mad  # noqa: E402, F401  (registers the mechanistic tasks' kind)
