"""``DiscoveryConfig``: a run's settings, declared once. The CLI flags of ``modis discover``/``evolve``/``design``
(built from the fields by pydantic-settings, with their descriptions as help), the UI's Launch form, the run file
(``modis discover --config run.yaml``, written by ``--print-config``) and ``RUN_DIR/config.json`` all come from here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic_settings import CliExplicitFlag, CliImplicitFlag, CliPositionalArg

from model_discovery.agents.operators import ModePolicy
from model_discovery.evolution.selector import SELECTORS, rung_budgets
from model_discovery.lm import load_ladder
from model_discovery.lm.baselines import known_best, load_baselines, resolve_references
from model_discovery.registry import did_you_mean
from model_discovery.sandbox.limits import thread_share
from model_discovery.verify.kinds import corpus_tokens, lowest_corpus_rung, rung_kind
from model_discovery.verify.run import cache_folder


def per_rung(text: str | None, kind=int):
    """``8`` (one value) or ``cpu-1m=8,cpu-2m=2`` (per rung)."""
    if text is None:
        return None
    try:
        if "=" not in text:
            return kind(text)
        return {rung.strip(): kind(n) for rung, n in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise ValueError(f"{text!r}: expected one {kind.__name__} or RUNG={kind.__name__},RUNG={kind.__name__}… "
                         "(e.g. cpu-1m=8,cpu-2m=2)") from None


class DiscoveryConfig(BaseModel):
    """Everything a run needs; saved as ``RUN_DIR/config.json`` so ``modis evolve --resume`` continues it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    prompt: CliPositionalArg[str] = Field("discover me a new model", description="the research prompt: what to "
                                          "look for (it steers the designers, e.g. 'linear-time')")
    run_dir: Path | None = Field(None, description="the run folder; default: runs/discover-TIME")
    store: str | None = Field(None, description="SQLAlchemy URL of the store; default: RUN_DIR/store.db (SQLite)")
    artifacts: str | None = Field(None, description="where verifications' files go: a folder or s3://bucket/prefix; "
                                                    "default: RUN_DIR")
    ladder: str = Field("cpu", description="cpu, gpu, or a ladder YAML file")
    rungs: list[str] | None = Field(None, description="the ladder's rungs this run climbs (e.g. cpu-1m,cpu-2m "
                                                      "without `mad`); default: the ladder's")
    design_budget: int | None = Field(None, ge=0, description="design sessions; default: the ladder's")
    verify_budget: int | dict[str, int] | None = Field(
        None, description="verifications at the lowest rung (narrowing by the ladder's ratio), or RUNG=N,RUNG=N "
                          "(rungs below the first one named are skipped unless `rungs` says otherwise); default: "
                          "the ladder's")
    train_fraction: float | dict[str, float] | None = Field(
        None, description="share of each corpus rung's training tokens, or RUNG=SHARE,RUNG=SHARE (a rung not named "
                          "trains on all of them); default: the ladder's (one for the synthetic corpus, one for "
                          "real text)")
    noise_seeds: int = Field(3, ge=1, description="training seeds of the references at every rung reached (the noise "
                                                  "floor) and of the best design (its confirmation); 1: none")
    eval_corpora: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("eval_corpora", "eval_corpus"),
        description="other corpora whose held-out split every verification also scores (bits per byte)")
    verify_cache: str | None = Field(None, description="a folder of finished verifications shared between runs: "
                                                       "one with the same design, rung, data, seed, budget and code "
                                                       "is copied from it, not trained again; 'none': off; default: "
                                                       "$MODIS_VERIFY_CACHE, else the user's cache folder")
    references: list[str] | None = Field(None, description="reference designs verified beside the designs; 'best': "
                                                           "the best known library design at each rung climbed, "
                                                           "from the ladder's table; default: the ladder's")
    corpus: str = Field("synthetic", description="training corpus: 'synthetic', a file or folder, a name under "
                                                 "$MODIS_DATA_DIR/corpus (e.g. gutenberg), or hf:NAME[:CONFIG]")
    blimp: str | None = Field("synthetic", description="minimal pairs: 'synthetic', a BLiMP folder or name under "
                                                       "$MODIS_DATA_DIR (blimp, blimp_filtered), or 'none'")
    backend: str = Field(
        "offline", description="who designs: offline (no LLM needed), openai (or an OpenAI-compatible server), "
                               "anthropic, or an LLM backend plugin (entry point group model_discovery.backends)")
    model: str | None = Field(None, description="the LLM's model name; default: the backend's")
    base_url: str | None = Field(None, description="an OpenAI-compatible server (vLLM, Ollama, LiteLLM) or proxy")
    cost_cap: float | None = Field(None, description="stop LLM calls after this many dollars")
    offline_share: float = Field(0.0, ge=0, le=1, description="share of an LLM run's design sessions the offline "
                                                              "designer plays, over the same unit catalogue")
    synthesis: CliExplicitFlag[bool] = Field(True, description="on: the offline designer invents token and channel "
                                                               "mixers from the operator grammar; off: it only "
                                                               "recombines and tunes catalogue units")
    seed: int = Field(0, description="seed of the designers, the selector and the training")
    seed_designs: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("seed_designs", "seed_design"),
        description="design files that start the tree beside the references: parsed into units, checked")
    selector: str = Field("quadrant", description="how parents are drawn: quadrant, ucb, random, or a selector "
                                                  "plugin (entry point group model_discovery.selectors)")
    selector_args: dict = Field(default_factory=dict, description="the selector's settings, e.g. {\"c\": 1.0}")
    modes: ModePolicy = Field(default_factory=ModePolicy, description="how the next design is made: mutation, "
                                                                      "crossover or scratch")
    early_stop: CliExplicitFlag[bool] = Field(True, description="stop a design part-way through a verification "
                                                             "(at a quarter or half of its tokens) when its held-out "
                                                             "loss is worse than the references' by more than "
                                                             "early_stop_k times their seed noise there")
    early_stop_k: float = Field(3.0, gt=0, description="noise standard deviations past the bar that stop a design")
    early_stop_against: Literal["best", "worst"] = Field("worst", description="the bar: the best or the worst "
                                                                             "reference's loss at the probe")
    early_stop_rank: float | None = Field(0.5, gt=0, lt=1, description="also stop a design at half of its tokens "
                                          "when its held-out loss there is above this quantile (0.5: the median) "
                                          "of the designs queued before it at its rung (at least 4 of them); none: "
                                          "only the references' bar")
    pairs_everywhere: CliImplicitFlag[bool] = Field(False, description="score every minimal-pair phenomenon of "
                                                    "every design; default: only those on which the references "
                                                    "beat chance at the rung (fitness can use no other)")
    check: CliImplicitFlag[bool] = Field(True, description="check designs in the sandbox before they are verified "
                                                           "(--no-check: dry runs)")
    check_scale: str | None = Field(None, description="rung the checker builds designs at; default: the lowest "
                                                      "that trains on a corpus")
    lookahead: int = Field(2, ge=0, description="how many of the newest designs a design session may run ahead "
                                                "of: it draws parents from the lowest rung's results of all the "
                                                "others, waiting for them where needed (the same tree with any "
                                                "executor; more keeps more workers busy)")
    workers: int = Field(1, ge=1, description="verifications running at once, beside the design sessions")
    threads: int | None = Field(None, ge=1, description="torch threads of each verification; default: the cores "
                                                        "shared among the workers. Part of the experiment, like the "
                                                        "seed: a training's sums depend on it")
    executor: str | None = Field(
        None, description="who runs verifications: inline (this process, one at a time), local (worker "
                          "processes), ray (Ray actors) or an executor plugin (entry point group "
                          "model_discovery.executors); default: inline for one worker, local for more")
    ray_address: str | None = Field(None, description="Ray cluster (auto, ray://host:10001); default: a local Ray")
    lease_s: float = Field(120.0, description="seconds a worker holds a job without a heartbeat before another may "
                                              "take it")
    poll_s: float = Field(5.0, description="seconds between looks at the job queue")

    @field_validator("verify_budget", "train_fraction", mode="before")
    @classmethod
    def _per_rung_text(cls, value, info):
        """``cpu-1m=8,cpu-2m=2`` written as text (the UI's form, a run file) is a per-rung setting."""
        if isinstance(value, str) and "=" in value:
            return per_rung(value, int if info.field_name == "verify_budget" else float)
        return value

    @field_validator("early_stop_rank", mode="before")
    @classmethod
    def _rank_off(cls, value):
        """``none`` (or ``off``) on the command line: no rule by rank."""
        return None if isinstance(value, str) and value.lower() in ("none", "off") else value

    @model_validator(mode="after")
    def _shares(self) -> DiscoveryConfig:
        fraction = self.train_fraction
        shares = fraction.values() if isinstance(fraction, dict) else [] if fraction is None else [fraction]
        if any(not 0 < share <= 1 for share in shares):
            raise ValueError(f"train_fraction must lie in (0, 1], got {fraction}")
        return self

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, value: str | None) -> str | None:
        from model_discovery.evolution.executors import EXECUTORS

        return None if value is None else EXECUTORS.check(value)

    @field_validator("selector")
    @classmethod
    def _known_selector(cls, value: str) -> str:
        return SELECTORS.check(value)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from model_discovery.agents.llm import BACKENDS

        return value if value == "offline" else BACKENDS.check(value)

    @model_validator(mode="after")
    def _one_inline_worker(self) -> DiscoveryConfig:
        from model_discovery.evolution.executors import EXECUTORS

        most = EXECUTORS.get(self.executor).max_workers if self.executor else None
        if most is not None and self.workers > most:
            many = "one verification" if most == 1 else f"{most} verifications"
            raise ValueError(f"the {self.executor} executor runs {many} at a time, not {self.workers}; use executor "
                             "'local' (worker processes) or 'ray'")
        return self

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> DiscoveryConfig:
        """The settings in a YAML (or JSON) file, with ``overrides`` on top; a key that is not a setting is an
        error naming it."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
        names = {n for n, f in cls.model_fields.items()} | {
            a for f in cls.model_fields.values() if isinstance(f.validation_alias, AliasChoices)
            for a in f.validation_alias.choices}
        for key in data:
            if key not in names:
                raise ValueError(f"{path}: {key!r} is not a setting.{did_you_mean(str(key), sorted(names))}")
        return cls(**{**data, **overrides})

    def to_yaml(self) -> str:
        """The settings as YAML (what ``--config`` reads back)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def executor_name(self) -> str:
        return self.executor or ("inline" if self.workers == 1 else "local")

    def resolved(self) -> DiscoveryConfig:
        """A copy with every ``None`` filled from the ladder's defaults."""
        ladder = full = load_ladder(self.ladder)
        names = [s.name for s in ladder.rungs]
        for scale in ladder.rungs:  # a rung of an unknown kind is an error now, not when it is reached
            try:
                rung_kind(scale)
            except KeyError as exc:
                raise ValueError(f"ladder {ladder.name!r}, rung {scale.name!r}: {exc.args[0]}") from None
        for setting in (self.verify_budget, self.train_fraction):  # a misspelt rung is an error, not a zero
            for name in setting if isinstance(setting, dict) else ():
                full.rung(name)
        rungs = self.rungs
        if rungs is None and isinstance(self.verify_budget, dict) and self.verify_budget:
            rungs = names[min(names.index(r) for r in self.verify_budget):]  # the rungs below the first named: skipped
        defaults = ladder.defaults
        ladder = ladder.only(rungs or defaults.rungs)
        climbed = [s.name for s in ladder.rungs]
        if isinstance(self.verify_budget, dict) and (left_out := set(self.verify_budget) - set(climbed)):
            raise ValueError(f"the verify budget names {', '.join(sorted(left_out))}, which this run does not climb "
                             f"(rungs: {', '.join(climbed)}); add it to --rungs or drop it from the budget")
        budget = defaults.verify_budget if self.verify_budget is None else self.verify_budget
        if isinstance(budget, dict):  # the ladder's per-rung budgets, for the rungs this run climbs
            budget = {r: n for r, n in budget.items() if r in climbed}
        budget = rung_budgets(climbed, budget, ladder.selection_ratio)  # every rung's, once (an int: the lowest's)
        fraction = defaults.train_fraction if self.corpus == "synthetic" else defaults.corpus_train_fraction
        if isinstance(self.train_fraction, dict):  # the rungs it does not name keep the ladder's share
            fraction = {r: self.train_fraction.get(r, fraction.get(r, 1.0) if isinstance(fraction, dict)
                                                   else fraction) for r in climbed}
        elif self.train_fraction is not None:
            fraction = self.train_fraction
        run_dir = self.run_dir or Path("runs") / time.strftime("discover-%Y%m%d-%H%M%S")
        return self.model_copy(update={
            "run_dir": Path(run_dir).resolve(),
            "design_budget": defaults.design_budget if self.design_budget is None else self.design_budget,
            "verify_budget": budget, "rungs": [s.name for s in ladder.rungs],
            "train_fraction": fraction,
            "references": resolve_references(defaults.references if self.references is None else self.references,
                                             known_best(load_baselines(self.ladder), self.corpus,
                                                        corpus_tokens(ladder.rungs, fraction)),
                                             defaults.best_fallback),
            # the checker builds designs at a corpus rung, the ladder's lowest if the run climbs none
            "check_scale": self.check_scale or (lowest_corpus_rung(ladder) or lowest_corpus_rung(full)
                                                or full.rungs[0]).name,
            "seed_designs": [str(Path(p).resolve()) for p in self.seed_designs],
            "verify_cache": str(cache_folder(self.verify_cache) or "none"),
            "threads": self.threads or thread_share(self.workers)})


def settings_model(name: str, fields: tuple[str, ...], changes: bool = False) -> type[BaseModel]:
    """A model of some of :class:`DiscoveryConfig`'s fields (their types, defaults and descriptions): what a command
    that takes only those settings parses (``modis design``). ``changes``: every field defaults to None, "keep the
    run's" (``modis evolve``)."""
    spec = {}
    for f in fields:
        field = DiscoveryConfig.model_fields[f]
        kept = field.description.split("; default:")[0] + "; default: the run's"
        spec[f] = (field.annotation | None, Field(None, description=kept)) if changes else (field.annotation, field)
    return create_model(name, __config__=ConfigDict(extra="forbid", populate_by_name=True), **spec)
