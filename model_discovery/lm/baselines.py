"""The best known designs: each library design's held-out loss at a rung of a ladder, on a corpus, at the token
budget a run gives it there, over several training seeds. ``scripts/measure_baselines.py`` measures them and writes
``etc/baselines_<ladder>.yaml``, which the project ships; the file says how it was obtained.

A run's reference named ``best`` (in the cpu ladder's default references) stands for the best known design at each
rung the run climbs: the library design with the lowest mean held-out loss there. A claim that a new design wins is
then a claim against the strongest design the library holds, not a convenient one. Where the table has no row for
the run's corpus and budget, ``best`` falls back to the ladder's ``best_fallback`` and the report says that the best
known design is unknown there.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean

import yaml
from pydantic import BaseModel, ConfigDict, Field

from model_discovery.files import atomic_write
from model_discovery.lm.scale import ETC

BEST = "best"  # the reference that stands for the best known design at each rung


class Standing(BaseModel):
    """The library designs at one rung, on one corpus, at one token budget."""

    model_config = ConfigDict(extra="forbid")

    corpus: str = Field(description="the corpus as a run names it (synthetic, gutenberg, ...)")
    rung: str
    tokens: int = Field(description="training tokens of each verification (the run's share of the rung's)")
    losses: dict[str, list[float]] = Field(description="design -> held-out loss per training seed")

    def ranked(self) -> list[tuple[str, float]]:
        """(design, mean held-out loss), best first."""
        return sorted(((name, fmean(v)) for name, v in self.losses.items() if v), key=lambda item: item[1])

    @property
    def best(self) -> str:
        return self.ranked()[0][0]


class BaselineTable(BaseModel):
    """Every measured standing of one ladder, and how they were obtained."""

    model_config = ConfigDict(extra="forbid")

    ladder: str
    how: str = Field("", description="the command, machine and date of each measurement")
    standings: list[Standing] = Field(default_factory=list)

    def find(self, corpus: str, rung: str, tokens: int) -> Standing | None:
        return next((s for s in self.standings if (s.corpus, s.rung, s.tokens) == (corpus, rung, tokens)), None)

    def with_standing(self, standing: Standing, how: str) -> BaselineTable:
        """A copy where ``standing`` replaces the one of its corpus, rung and budget (or joins the others)."""
        kept = [s for s in self.standings if (s.corpus, s.rung, s.tokens) != (standing.corpus, standing.rung,
                                                                             standing.tokens)]
        lines = [line for line in self.how.splitlines() if line and line != how]
        return self.model_copy(update={"standings": [*kept, standing], "how": "\n".join([*lines, how])})


def baselines_path(ladder: str | Path) -> Path:
    """``etc/baselines_<name>.yaml`` for a shipped ladder; ``baselines_<stem>.yaml`` beside a ladder file."""
    path = Path(ladder)
    if not path.suffix:
        return ETC / f"baselines_{ladder}.yaml"
    return path.with_name(f"baselines_{path.stem.removeprefix('ladder_')}.yaml")


def load_baselines(ladder: str | Path, path: Path | None = None) -> BaselineTable:
    """The ladder's table (or the one at ``path``); an empty one when none was measured."""
    path = path or baselines_path(ladder)
    if not path.is_file():
        return BaselineTable(ladder=Path(str(ladder)).stem.removeprefix("ladder_"))
    try:
        return BaselineTable(**(yaml.safe_load(path.read_text()) or {}))
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a table of best known designs: {exc}") from exc


def save_baselines(table: BaselineTable, path: Path) -> Path:
    header = "# The best known designs of this ladder (model_discovery.lm.baselines), written by " \
             "scripts/measure_baselines.py.\n"
    atomic_write(path, header + yaml.safe_dump(table.model_dump(), sort_keys=False))
    return path


def known_best(table: BaselineTable, corpus: str, tokens: dict[str, int]) -> dict[str, Standing]:
    """Rung -> the standing of the library there for a run on ``corpus`` that trains ``tokens[rung]`` tokens at
    each rung (the rungs the table has no row for are left out)."""
    return {rung: row for rung, n in tokens.items() if (row := table.find(corpus, rung, n))}


def resolve_references(names: list[str], best: dict[str, Standing], fallback: str | None) -> list[str]:
    """``names`` with ``best`` replaced by the best known design at each rung (by ``fallback`` where none is
    known), each name once."""
    out: list[str] = []
    for name in names:
        for chosen in ([s.best for s in best.values()] or [fallback] if name == BEST else [name]):
            if chosen and chosen not in out:
                out.append(chosen)
    return out
