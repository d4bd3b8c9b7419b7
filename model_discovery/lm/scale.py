"""Scales and ladders: the sizes at which designs are pre-trained and compared."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from model_discovery.registry import did_you_mean
from model_discovery.resources import project_dir

ETC = project_dir("etc")


class Scale(BaseModel):
    """One rung of a ladder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str = Field("lm", description="what the rung does with a design (model_discovery.verify.kinds): lm, "
                      "pre-training on a corpus; mad, the mechanistic tasks, each trained for train_tokens; or a "
                      "plugin's kind")
    d_model: int = Field(gt=0, description="width of the residual stream")
    n_block: int = Field(gt=0, description="default number of blocks (tuned per design to match ref_params)")
    context: int = Field(gt=0, description="training sequence length in tokens")
    vocab: int = Field(gt=0, description="tokenizer vocabulary size")
    train_tokens: int = Field(gt=0, description="tokens seen in pre-training")
    batch_tokens: int = Field(gt=0, description="tokens per optimiser step (a multiple of context)")
    lr: float = Field(gt=0, description="peak learning rate")
    warmup: int = Field(ge=0, description="warm-up steps")
    ref_params: int = Field(gt=0, description="reference parameter count of the blocks (embedding excluded)")

    @model_validator(mode="after")
    def _batch_fits(self) -> Scale:
        if self.batch_tokens % self.context:
            raise ValueError(f"scale {self.name!r}: batch_tokens {self.batch_tokens} is not a multiple of "
                             f"context {self.context}.")
        return self

    @property
    def batch_size(self) -> int:
        return self.batch_tokens // self.context

    @property
    def steps(self) -> int:
        return max(1, self.train_tokens // self.batch_tokens)


class RunDefaults(BaseModel):
    """What a discovery run on this ladder uses unless told otherwise (see ``BuildSystem``)."""

    model_config = ConfigDict(extra="forbid")

    design_budget: int = Field(12, ge=0, description="design sessions")
    verify_budget: int | dict[str, int] = Field(10, description="verifications at the lowest rung (narrower above), "
                                                                 "or {rung: n}")
    train_fraction: float | dict[str, float] = Field(1.0, description="share of each rung's train_tokens on the "
                                                                       "synthetic corpus (or {rung: share})")
    corpus_train_fraction: float | dict[str, float] = Field(1.0, description="the same on real text, where designs "
                                                                              "need more tokens to separate")
    references: list[str] = Field(default_factory=lambda: ["llama"], description="reference designs; 'best': the "
                                  "best known design at each rung (model_discovery.lm.baselines)")
    best_fallback: str | None = Field(None, description="the reference 'best' stands for where no best known design "
                                                        "was measured for the run's corpus and budget")
    rungs: list[str] | None = Field(None, description="the rungs a run climbs (default: all)")


class Ladder(BaseModel):
    """A ladder: rungs from small to large, and the fraction of designs promoted from one rung to the next."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    selection_ratio: float = Field(0.25, gt=0, le=1)
    gpus: int = Field(0, ge=0, description="GPUs each verification takes (an executor that places jobs on a cluster, "
                                           "Ray, asks for them)")
    defaults: RunDefaults = Field(default_factory=RunDefaults)
    rungs: list[Scale]

    def only(self, names: list[str] | None) -> Ladder:
        """The ladder restricted to the rungs ``names`` (in the ladder's order); ``None``: all of them."""
        if names is None:
            return self
        for name in names:
            self.rung(name)  # an unknown name fails here, with the ladder's rungs
        return self.model_copy(update={"rungs": [s for s in self.rungs if s.name in names]})

    def rung(self, name: str) -> Scale:
        for scale in self.rungs:
            if scale.name == name:
                return scale
        hint = did_you_mean(name, [s.name for s in self.rungs])
        raise KeyError(f"ladder {self.name!r} has no rung {name!r}.{hint} "
                       f"Rungs: {', '.join(s.name for s in self.rungs)}.")


def ladder_names() -> list[str]:
    return sorted(p.stem.removeprefix("ladder_") for p in ETC.glob("ladder_*.yaml"))


def load_ladder(name_or_path: str | Path = "cpu") -> Ladder:
    """Loads ``etc/ladder_<name>.yaml`` (``cpu``, ``gpu``) or a YAML file at a path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = ETC / f"ladder_{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no ladder {str(name_or_path)!r}; shipped ladders: {', '.join(ladder_names())}, "
                                "or pass a YAML file.")
    return Ladder(**yaml.safe_load(path.read_text()))


def find_scale(name: str) -> Scale:
    """A rung by name, searched in every shipped ladder. Rung names are unique across ladders, but for a rung
    listed in each, which is the same rung in each (tests/verify/test_mad.py holds them equal)."""
    for ladder in map(load_ladder, ladder_names()):
        if name in {s.name for s in ladder.rungs}:
            return ladder.rung(name)
    every = [s.name for ladder in map(load_ladder, ladder_names()) for s in ladder.rungs]
    raise KeyError(f"no scale {name!r}.{did_you_mean(name, every)} Scales: {', '.join(every)}.")
