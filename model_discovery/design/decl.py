"""``UnitDecl``: what a unit declares about itself (slot, children, search space), read by the catalogue and the
offline designer; it has no effect at run time."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class UnitDecl(BaseModel):
    """What a unit declares about itself, for the catalogue and the offline designer.

    A unit file in the library carries one ``UnitDecl(...)`` call with literal arguments; it is read from the AST,
    never executed. Design files may use it too; it has no effect at run time.
    """

    model_config = ConfigDict(extra="forbid")

    slot: str = Field(description="role of the unit: block, token_mixer, channel_mixer, norm, memory, router, ...")
    doc: str = Field("", description="one paragraph: what the unit computes and why")
    children: dict[str, str] = Field(
        default_factory=dict, description="child name used in the source -> slot it fills")
    space: dict[str, list[Any]] = Field(
        default_factory=dict, description="hyperparameter -> values the designer may choose from")
    width: list[str] = Field(
        default_factory=list, description="hyperparameters in `space` that scale the parameter count")
    complexity: str = Field("", description="time complexity in sequence length, e.g. 'linear', 'quadratic'")
    tags: list[str] = Field(default_factory=list, description="keywords a research prompt may steer towards")
    gene: dict[str, Any] | None = Field(
        None, description="the operator-grammar gene a synthesized unit was decoded from (agents/grammar.py)")
