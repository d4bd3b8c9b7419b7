"""Agent specs: ``etc/agent_spec/<role>.yaml`` — backend, model, sampling, acceptance threshold, attempt limits.
Validated strictly: an unknown key is an error that names the known ones."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model_discovery.resources import project_dir

ROLES = ("proposer", "reviewer", "planner", "coder", "observer")
SPEC_DIR = project_dir("etc") / "agent_spec"


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["proposer", "reviewer", "planner", "coder", "observer"]
    backend: str = "offline"  # offline, or a name in model_discovery.agents.llm.BACKENDS
    model: str | None = None
    base_url: str | None = None
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(4096, gt=0)
    accept_threshold: float | None = Field(None, ge=0, le=5, description="rating at which output is accepted")
    max_attempts: int = Field(3, gt=0, description="tries before giving up (revisions, fixes)")
    max_reprompts: int = Field(2, ge=0, description="re-prompts on unparseable output")


def load_spec(role: str, spec_dir: str | Path | None = None, **overrides) -> AgentSpec:
    path = Path(spec_dir or SPEC_DIR) / f"{role}.yaml"
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    try:
        return AgentSpec(role=role, **{**(data or {}), **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def load_specs(spec_dir: str | Path | None = None, **overrides) -> dict[str, AgentSpec]:
    return {role: load_spec(role, spec_dir, **overrides) for role in ROLES}
