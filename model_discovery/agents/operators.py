"""Design operators: how the next design is made from its parents. An operator owns everything about itself — how
many parents it takes and what it falls back to without them, its default share of the sessions and when it joins
(:class:`ModePolicy`), the instruction the LLM proposer reads, and its offline implementation over the
:class:`~model_discovery.agents.offline.GeneticDesigner`.

``mutation``, ``crossover`` and ``scratch`` are built in; another package adds one by declaring a
:class:`DesignOperator` subclass under the entry-point group ``model_discovery.operators``.
"""

from __future__ import annotations

import abc
import random
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from model_discovery.registry import Registry

if TYPE_CHECKING:
    from model_discovery.agents.offline import Candidate, GeneticDesigner
    from model_discovery.design.tree import UnitTree


class DesignOperator(abc.ABC):
    """One way to make a design. Subclasses set the class attributes and implement :meth:`offline`."""

    parents: ClassVar[int] = 1  # how many parents it takes
    fallback: ClassVar[str | None] = None  # the operator used when the tree has fewer designs than ``parents``
    weight: ClassVar[float] = 0.0  # its default share of the design sessions (relative to the others')
    unlock: ClassVar[int] = 0  # designs the run must have produced before it joins
    instruction: ClassVar[str] = ""  # what the LLM proposer is asked to do

    @abc.abstractmethod
    def offline(self, designer: GeneticDesigner, parents: list[tuple[str, UnitTree]]) -> Candidate | None:
        """The offline designer's candidate from ``parents`` (``(name, tree)``), or None when it finds none (the
        designer then mutates the first parent)."""


OPERATORS: Registry[type[DesignOperator]] = Registry("design operator", group="model_discovery.operators")


@OPERATORS.register("mutation")
class Mutation(DesignOperator):
    parents, weight, unlock = 1, 0.6, 0
    instruction = ("Change ONE unit of the parent: set selected_unit to it, and either rewrite it (a unit with the "
                   "same name, action 'modified') or replace it by another unit (a catalogue unit reused by name, "
                   "or a new one).")

    def offline(self, designer, parents):
        return designer.mutate(parents[0][1], parents[0][0])


@OPERATORS.register("crossover")
class Crossover(DesignOperator):
    parents, fallback, weight, unlock = 2, "mutation", 0.25, 2
    instruction = ("Combine the two parents: in the FIRST parent, replace selected_unit by a unit of the second "
                   "parent (reused by name), or by a new unit that merges ideas of both.")

    def offline(self, designer, parents):
        (a, tree_a), (b, tree_b) = parents[:2]
        return designer.crossover(tree_a, tree_b, [a, b])


@OPERATORS.register("scratch")
class Scratch(DesignOperator):
    parents, weight, unlock = 0, 0.15, 4
    instruction = ("Compose a new block: selected_unit names its root (slot block), a new unit or a catalogue "
                   "unit; list its children, reused from the catalogue by name or new.")

    def offline(self, designer, parents):
        return designer.scratch()


def applicable(name: str, n_parents: int) -> str:
    """``name``, or what it falls back to while the tree has fewer than the parents it takes."""
    while (op := OPERATORS.get(name)).parents > n_parents and op.fallback:
        name = op.fallback
    return name


class ModePolicy(BaseModel):
    """How the next design is made: ``weights`` are relative shares of the operators; an operator joins once the run
    has produced ``unlock[name]`` designs. Both default to the operators' own."""

    model_config = ConfigDict(extra="forbid")

    # in the operators' order of registration (the draws depend on it)
    weights: dict[str, float] = Field(default_factory=lambda: {n: op.weight for n, op in OPERATORS.entries.items()
                                                               if op.weight > 0})
    unlock: dict[str, int] = Field(default_factory=lambda: {n: op.unlock for n, op in OPERATORS.entries.items()})

    @field_validator("weights", "unlock")
    @classmethod
    def _known(cls, value: dict) -> dict:
        for name in value:  # a misspelt operator is an error, not a mode that never runs
            OPERATORS.check(name)
        return value

    def open_modes(self, n_designs: int) -> list[str]:
        return [m for m in self.weights if n_designs >= self.unlock.get(m, OPERATORS.get(m).unlock)
                and self.weights[m] > 0]

    def choose(self, n_designs: int, rng: random.Random) -> str:
        modes = self.open_modes(n_designs) or ["mutation"]
        return rng.choices(modes, weights=[self.weights.get(m, 1.0) for m in modes])[0]
