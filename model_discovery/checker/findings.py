"""Structured check results: what failed, how badly, where, and what to do about it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["error", "warning"]


class Finding(BaseModel):
    """One problem with a design, phrased for the person or LLM coder who must fix it."""

    check: str = Field(description="which check found it, e.g. 'static.imports', 'causality'")
    severity: Severity = "error"
    message: str
    line: int | None = Field(None, description="line in the design file, when known")


class CheckReport(BaseModel):
    """The verdict on one design: accepted when no finding is an error."""

    accepted: bool
    findings: list[Finding] = []
    params: int | None = None
    isolation: str = "none"
    timings: dict[str, float] = {}
    metrics: dict[str, float] = Field(default_factory=dict, description="costs relative to the reference, etc.")

    @classmethod
    def from_findings(cls, findings: list[Finding], **kwargs) -> CheckReport:
        return cls(accepted=not any(f.severity == "error" for f in findings), findings=findings, **kwargs)

    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def summary(self) -> str:
        """Findings as text an LLM coder can act on, one per line."""
        lines = [f"{'ACCEPTED' if self.accepted else 'REJECTED'} ({self.isolation})"]
        for f in self.findings:
            where = f" (line {f.line})" if f.line else ""
            lines.append(f"- [{f.severity}] {f.check}{where}: {f.message}")
        return "\n".join(lines)
