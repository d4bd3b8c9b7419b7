"""What each role returns: pydantic models, so an LLM's structured output and the offline roles' output are the
same objects."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class UnitChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="unit class name")
    action: Literal["new", "modified", "reused"] = "reused"
    children: dict[str, str] = Field(default_factory=dict, description="child name -> slot")
    args: dict = Field(default_factory=dict, description="hyperparameters this design sets")


class Proposal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    motivation: str
    operator: str = Field(description="the design operator (mutation, crossover, scratch, or a plugin's)")
    parents: list[str] = Field(default_factory=list, description="parent design names")
    selected_unit: str = Field(description="the unit the change is about")
    change: str = Field(description="what changes, concretely")
    units: list[UnitChange] = Field(default_factory=list)

    @field_validator("operator")
    @classmethod
    def _known_operator(cls, value: str) -> str:
        from model_discovery.agents.operators import OPERATORS

        return OPERATORS.check(value)


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: float = Field(ge=0, le=5)
    strengths: list[str] = Field(default_factory=list)
    concerns: list[str] = Field(default_factory=list)
    novelty: Literal["novel", "incremental", "duplicate"]
    scores: dict[str, float] = Field(default_factory=dict, description="named sub-scores in [0, 1]")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    next_unit: str | None = Field(description="unit to implement next; None when all are implemented")
    reason: str = ""


class UnitCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit: str
    source: str


class Observation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: float = Field(ge=0, le=5)
    issues: list[str] = Field(default_factory=list)
