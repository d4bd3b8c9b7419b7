"""The run's planning policy: what to design, verify and promote next, read from a :class:`Snapshot` of the store.

:class:`Policy` holds the run's settings, its ladder and the ladder's table of best known designs; it has no store,
no executor and does no I/O. Every decision is a function of a snapshot (the tree index, the job queue's keys and
the verifications, read by :mod:`.snapshot`), so the same snapshot gives the same plan, and a reader (``modis show``,
the UI, the report) scores a run with the policy alone. The runner (:class:`~model_discovery.workflow.evolve.Loop`)
takes the snapshots and applies the plans: it queues their jobs, runs the design sessions and the executor.

The schedule is deterministic: what a decision sees never depends on which job happened to finish first, so a seed
grows the same tree with any executor and any number of workers.

- A design session draws its parents (and the surrogate its predictions) from the lowest rung's verifications of
  the references and of every design but the newest ``lookahead``, waiting for them where needed: a fixed lag, not
  "whatever finished by now".
- Promotions replay the rung below in queue order: its results are taken one at a time, as far as every earlier
  one is finished, and each step promotes what a one-job-at-a-time run would have promoted then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice, takewhile
from typing import Any, NamedTuple

from model_discovery.agents.offline import knn_surrogate
from model_discovery.evolution.early_stop import StopSettings
from model_discovery.evolution.index import PARENT_STATUSES
from model_discovery.evolution.key import DataKey
from model_discovery.evolution.selector import Candidate, promotable
from model_discovery.lm import Ladder
from model_discovery.lm.baselines import BaselineTable, Standing, known_best
from model_discovery.verify.fitness import FitnessReport, Verified, compute_fitness
from model_discovery.verify.kinds import corpus_tokens, rung_kind
from model_discovery.workflow.snapshot import JobKey, Snapshot

REFERENCE_PRIORITY, PROMOTION_PRIORITY, FIRST_RUNG_PRIORITY, NOISE_PRIORITY = 100, 20, 10, 5


class Todo(NamedTuple):
    """A verification the plan asks for: ``seed`` None is the run's seed; another is a noise or confirmation run."""

    design_id: int
    rung: str
    priority: int
    seed: int | None = None


@dataclass
class Plan:
    """What the store says should happen next."""

    action: str  # design | verify | wait | report
    todo: list[Todo] = field(default_factory=list)  # verifications to enqueue


class NewJob(NamedTuple):
    """A job a plan asks the store to queue (:meth:`Store.enqueue`'s arguments)."""

    design_id: int
    rung: str
    data: str
    payload: dict
    priority: int


@dataclass
class Policy:
    """The run's planning: its settings (:class:`~.config.DiscoveryConfig`, resolved), its ladder and the ladder's
    table of best known designs. Pure: each method reads a :class:`Snapshot` and the settings; what it keeps
    between calls are memos of earlier answers for the same run."""

    config: Any
    ladder: Ladder
    table: BaselineTable | None = None  # the ladder's best known designs (lm.baselines), read by the caller
    _fitness: dict = field(default_factory=dict)  # rung -> (verification ids, report)
    _candidates: dict = field(default_factory=dict)  # name -> Candidate, kept up to date incrementally
    _candidates_state: tuple = (0, {})  # (designs seen, best fitness by name) when they were last updated
    _view_fitness: tuple = (None, None)  # (verification ids, report) of the view's designs at the lowest rung
    _replays: dict = field(default_factory=dict)  # rung -> (results replayed, designs promoted from it)
    _priors: dict | None = None  # name -> the fitness the ladder's table gives a library design (see priors)

    # -- the ladder --------------------------------------------------------------------------------------------
    def budgets(self) -> dict[str, int]:
        """Verifications allowed at each rung (resolved once, in the config)."""
        return dict(self.config.verify_budget)

    def data(self, rung: str, seed: int | None = None) -> str:
        """What a verification at ``rung`` is comparable with: the data and the budget, and a training seed other
        than the run's (noise-floor and confirmation runs never enter the rung's fitness)."""
        scale = self.ladder.rung(rung)
        kind = rung_kind(scale)
        key = DataKey.of(kind.data(self.config.corpus), self.config.blimp if kind.corpus else None,
                         self.steps(rung) * scale.batch_tokens)
        return key.on_seed(None if seed in (None, self.config.seed) else seed).text

    @property
    def extra_seeds(self) -> list[int]:
        """The seeds beside the run's that measure the noise floor and confirm the best design."""
        return [self.config.seed + i for i in range(1, self.config.noise_seeds)]

    def steps(self, rung: str) -> int:
        """Training steps at ``rung`` for the run's train fraction (as the rung's kind counts them)."""
        scale = self.ladder.rung(rung)
        return rung_kind(scale).steps(scale, self.config.train_fraction)

    def payload(self, rung: str, seed: int | None = None) -> dict:
        """A verification job's settings at ``rung`` on ``seed`` (None: the run's)."""
        cfg = self.config
        blimp = None if cfg.blimp in (None, "none") else cfg.blimp
        extra = {"eval_corpora": cfg.eval_corpora} if cfg.eval_corpora else {}
        if cfg.verify_cache not in (None, "none"):
            extra["cache"] = str(cfg.verify_cache)
        if cfg.threads:
            extra["threads"] = cfg.threads
        return {"corpus": cfg.corpus, "blimp": blimp, "seed": cfg.seed if seed is None else seed,
                "max_steps": self.steps(rung), **extra}

    def early_stop(self, snap: Snapshot, design_id: int, rung: str, seed: int | None,
                   queued: list[JobKey] = ()) -> dict:
        """The stopping rule's settings for a design's verification on the run's seed (references, noise and
        confirmation runs always finish and score everything): the references' verifications it is compared with,
        for early stopping and for the minimal pairs worth scoring; ``queued``: the jobs queued since ``snap``."""
        cfg, index = self.config, snap.index
        if ((not cfg.early_stop and cfg.pairs_everywhere) or seed not in (None, cfg.seed)
                or design_id in index.references or not rung_kind(self.ladder.rung(rung)).corpus):
            return {}
        refs = [index.by_name[n].id for n in cfg.references if n in index.by_name]
        keys = [(i, self.data(rung, s)) for i in refs for s in [None, *self.extra_seeds]]
        data = self.data(rung)  # the designs queued before this one at the rung, on the run's seed
        earlier = [(j.design_id, data) for j in (*snap.jobs, *queued) if j.rung == rung and j.data == data
                   and j.design_id not in index.references and j.design_id != design_id]
        settings = StopSettings(stop=cfg.early_stop, select_pairs=not cfg.pairs_everywhere, k=cfg.early_stop_k,
                                against=cfg.early_stop_against, references=keys, seed_data=data,
                                rank_at=0.5 if cfg.early_stop_rank else None,
                                rank_quantile=cfg.early_stop_rank or 0.5, earlier=earlier)
        return {"early_stop": settings.model_dump(mode="json")}

    def jobs(self, snap: Snapshot, plan: Plan) -> list[NewJob]:
        """The jobs ``plan`` asks for, in its order, each carrying its rung (a custom ladder's rungs run on any
        executor) and the designs queued before it at its rung (the rank rule's); the store queues a job that is
        already queued, running or done only once."""
        have, queued, out = {(j.design_id, j.rung, j.data) for j in snap.jobs}, [], []
        for t in plan.todo:
            data = self.data(t.rung, t.seed)
            payload = {"scale": self.ladder.rung(t.rung).model_dump(), **self.payload(t.rung, t.seed),
                       **self.early_stop(snap, t.design_id, t.rung, t.seed, queued)}
            out.append(NewJob(t.design_id, t.rung, data, payload, t.priority))
            if (t.design_id, t.rung, data) not in have:
                have.add((t.design_id, t.rung, data))
                queued.append(JobKey(0, t.design_id, t.rung, data, "queued"))
        return out

    # -- scores ------------------------------------------------------------------------------------------------
    def fitness(self, snap: Snapshot, rung: str) -> FitnessReport | None:
        """Fitness of every design verified at ``rung`` (on this run's data) against the references there;
        computed again only when the rung's verifications change."""
        rows = snap.rows(rung, self.data(rung))
        key = [v.id for v in rows]
        if self._fitness.get(rung, (None,))[0] != key:
            self._fitness[rung] = (key, self._score(snap, rung, rows))
        return self._fitness[rung][1]

    def _score(self, snap: Snapshot, rung: str, rows: list) -> FitnessReport | None:
        if not rows:
            return None
        by_id = snap.index.by_id
        records = [Verified(name=by_id[v.design_id].name, metrics=v.metrics, reference=by_id[v.design_id].reference)
                   for v in rows]
        if not any(r.reference for r in records):
            return None
        scale = self.ladder.rung(rung)
        return rung_kind(scale).fitness(records, scale.vocab)

    def candidates(self, snap: Snapshot) -> list[Candidate]:
        """Parents the selector may draw: the references and the designs that passed their checks, with their
        fitness at the lowest rung where the next session sees it (:meth:`view`; None for the newest designs)."""
        index = snap.index
        report = self.view_fitness(snap)
        rungs = [r for r, b in self.budgets().items() if b > 0] or [self.ladder.rungs[0].name]
        best = {s.name: (s.fitness, 1 / len(rungs)) for s in report.scores} if report else {}
        # a library design the view has not verified: its standing in the ladder's table, where there is one
        best = {**{n: (f, 1 / len(rungs)) for n, f in self.priors().items() if n in index.by_name}, **best}
        if best:  # a design stopped early ranks with the worst of what the session sees
            first, view, worst = self.ladder.rungs[0].name, self.view(snap), min(f for f, _ in best.values())
            for v in snap.rows(first, self.data(first), status="stopped"):
                if v.design_id in view:
                    best[index.by_id[v.design_id].name] = (worst, 1 / len(rungs))
        # only new designs, their parents (one more child) and designs whose fitness moved are rebuilt
        seen, best_before = self._candidates_state
        stale = {n for n in best.keys() | best_before.keys() if best.get(n) != best_before.get(n)}
        for d in index.designs[seen:]:
            if d.status in PARENT_STATUSES:
                self._candidates[d.name] = None
            stale.update((d.name, *d.parents))
        for name in stale & self._candidates.keys():
            self._candidates[name] = Candidate(name, *best.get(name, (None, 0.0)), children=index.children[name])
        self._candidates_state = (len(index.designs), best)
        return list(self._candidates.values())

    def best_known(self) -> dict[str, Standing]:
        """Rung -> the library's standing there on this run's corpus and budget, from the ladder's table of best
        known designs (rungs without a row are left out)."""
        cfg = self.config
        return known_best(self.table, cfg.corpus, corpus_tokens(self.ladder.rungs, cfg.train_fraction)) \
            if self.table else {}

    def priors(self) -> dict[str, float]:
        """Fitness the library designs are known to have at the lowest rung on this run's corpus and budget, from
        the ladder's table of best known designs (:mod:`model_discovery.lm.baselines`), on the table's own scale
        (its references' mean held-out loss is 1, as a rung's references' is): the selector's prior for the designs
        the run has not verified yet, so a run's first parents are not a blind draw. Empty without a table row."""
        if self._priors is None:
            scale = self.ladder.rungs[0]
            row = self.best_known().get(scale.name)
            records = [Verified(name=n, metrics={"val_loss": loss}, reference=n in self.config.references)
                       for n, loss in (row.ranked() if row else [])]
            self._priors = {s.name: s.fitness for s in compute_fitness(records, scale.vocab).scores} \
                if any(r.reference for r in records) else {}
        return self._priors

    def surrogate(self, snap: Snapshot):
        """The k-nearest-neighbour predictor of fitness from the view's verified designs (None before any)."""
        report = self.view_fitness(snap)
        if report is None:
            return None
        by_name = snap.index.by_name
        verified = [(set(by_name[s.name].features), s.fitness) for s in report.scores if s.name in by_name]
        return knn_surrogate(verified) if verified else None

    # -- planning ----------------------------------------------------------------------------------------------
    def plan(self, snap: Snapshot) -> Plan:
        """The next step: design while the design budget lasts and what the next session may see is verified,
        otherwise verify (references at a rung first, then every design at the lowest rung, then promotions as
        the ladder's budgets allow, then the best design's confirmation), else report."""
        budgets, index, jobs = self.budgets(), snap.index, snap.jobs
        refs = index.references
        ref_ids = [index.by_name[n].id for n in self.config.references if n in index.by_name]
        design_left = self.config.design_budget - index.n_sessions
        todo: list[Todo] = []
        keys = {(j.design_id, j.rung, j.data) for j in jobs}
        settled_below = True
        for k, scale in enumerate(self.ladder.rungs):
            rung, budget = scale.name, budgets[scale.name]
            data = self.data(rung)
            here = [j for j in jobs if j.rung == rung and j.data == data]
            have = {j.design_id for j in here}
            already = have - refs
            active = any(j.status in ("queued", "running") for j in here)
            if k == 0:
                waiting = (i for i in index.checked if i not in have)
                picks = list(islice(waiting, max(0, budget - len(already))))
                settled = not active and not picks and (len(already) >= budget or design_left <= 0)
                priority = FIRST_RUNG_PRIORITY
            else:
                promoted = self.promoted(snap, self.ladder.rungs[k - 1].name, budget, settled_below)
                picks = [index.by_name[n].id for n in promoted if index.by_name[n].id not in already]
                settled = settled_below and not active and not picks
                priority = PROMOTION_PRIORITY + k
            if picks or already:  # the rung is reached: its references, and their noise floor
                todo += [Todo(i, rung, REFERENCE_PRIORITY + k) for i in ref_ids if i not in have]
                # the noise seeds before the designs: early stopping compares with them
                todo += [Todo(i, rung, REFERENCE_PRIORITY + k, s) for i in ref_ids for s in self.extra_seeds
                         if (i, rung, self.data(rung, s)) not in keys]
            todo += [Todo(i, rung, priority) for i in picks]
            settled_below = settled
        if design_left > 0 and self.view_ready(snap, todo):
            return Plan("design", todo)
        if todo or any(j.status == "queued" for j in jobs):
            return Plan("verify", todo)
        if any(j.status == "running" for j in jobs):
            return Plan("wait", todo)
        confirm = self.confirmations(snap, keys)
        return Plan("verify", confirm) if confirm else Plan("report", todo)

    def confirmations(self, snap: Snapshot, keys: set[tuple[int, str, str]]) -> list[Todo]:
        """Once everything else is done: the best design at its rung with the noise seeds, when it beats every
        reference there on the run's seed (the claim the report is about to make)."""
        best = self.best(snap)
        if best is None or not best[2]:
            return []
        design_id, rung, _ = best
        return [Todo(design_id, rung, NOISE_PRIORITY, s) for s in self.extra_seeds
                if (design_id, rung, self.data(rung, s)) not in keys]

    def best(self, snap: Snapshot) -> tuple[int, str, bool] | None:
        """(design id, rung, beats every reference on held-out loss) of the best design at the highest rung where
        designs and references were verified; None before that."""
        by_name = snap.index.by_name
        for scale in reversed(self.ladder.rungs):
            report = self.fitness(snap, scale.name)
            mine = [s for s in report.scores if not by_name[s.name].reference] if report else []
            if not mine:
                continue
            top = max(mine, key=lambda s: s.fitness)
            losses = {v.design_id: v.metrics["val_loss"] for v in snap.rows(scale.name, self.data(scale.name))}
            refs = [losses[by_name[s.name].id] for s in report.scores if by_name[s.name].reference]
            return by_name[top.name].id, scale.name, all(losses[by_name[top.name].id] < r for r in refs)
        return None

    def promoted(self, snap: Snapshot, below: str, budget: int, settled: bool) -> list[str]:
        """The designs promoted from rung ``below``, in order: its results replayed one at a time in queue order, as
        far as every earlier one is finished (once the references there are), each step promoting what
        :func:`promotable` allows then; when ``below`` is ``settled``, the best fill what is left of ``budget``.
        Which jobs finished first never matters, so the same seed promotes the same designs with any executor."""
        refs = snap.index.references
        data = self.data(below)
        here = [j for j in snap.jobs if j.rung == below and j.data == data]
        if any(j.status not in ("done", "failed") for j in here if j.design_id in refs):
            return []
        entries = [j for j in here if j.design_id not in refs]  # job ids grow in the order they were queued
        finished = list(takewhile(lambda j: j.status in ("done", "failed"), entries))
        done_at, promoted = self._replays.get(below, (0, []))
        if done_at > len(finished):  # a job went back to the queue (a resume): replay from the start
            done_at, promoted = 0, []
        rows = {v.design_id: v for v in snap.rows(below, data)}
        ratio = self.ladder.selection_ratio
        for n in range(done_at + 1, len(finished) + 1):
            ranked = self._ranked(snap, below, rows, refs | {j.design_id for j in finished[:n]})
            promoted = promoted + promotable(ranked, set(promoted), budget, ratio, settled=False)
        self._replays[below] = (len(finished), promoted)
        if settled and len(finished) == len(entries):
            ranked = self._ranked(snap, below, rows, refs | {j.design_id for j in entries})
            promoted = promoted + promotable(ranked, set(promoted), budget, ratio, settled=True)
        return promoted

    def _ranked(self, snap: Snapshot, rung: str, rows: dict, ids: set[int]) -> list[str]:
        """The designs (not references) among ``ids`` verified at ``rung``, best first: by fitness against the
        references there, or by held-out loss when no reference was verified (they failed)."""
        by_id, by_name, refs = snap.index.by_id, snap.index.by_name, snap.index.references
        report = self._score(snap, rung, [rows[i] for i in sorted(ids) if i in rows])
        if report:
            return [s.name for s in sorted(report.scores, key=lambda s: -s.fitness) if by_name[s.name].id not in refs]
        mine = [rows[i] for i in sorted(ids) if i in rows and i not in refs]
        return [by_id[v.design_id].name for v in sorted(mine, key=lambda v: v.metrics["val_loss"])]

    # -- what a design session sees ------------------------------------------------------------------------------
    def view(self, snap: Snapshot) -> set[int]:
        """The designs whose lowest-rung verifications the next design session sees: every design but the newest
        ``lookahead``, and the references they are measured against (none before that: the first sessions need
        not wait for the references' training)."""
        index = snap.index
        mine = [d.id for d in index.designs if not d.reference]
        seen = set(mine[:max(0, len(mine) - self.config.lookahead)])
        return index.references | seen if seen else set()

    def view_ready(self, snap: Snapshot, todo: list[Todo]) -> bool:
        """Whether every lowest-rung verification of the view's designs (on the run's data and seed) is finished,
        so the next design session sees the same results with any executor."""
        view, first = self.view(snap), self.ladder.rungs[0].name
        data = self.data(first)
        if any(t.design_id in view and t.rung == first and t.seed is None for t in todo):
            return False
        return not any(j.design_id in view and j.rung == first and j.data == data
                       and j.status in ("queued", "running") for j in snap.jobs)

    def view_fitness(self, snap: Snapshot) -> FitnessReport | None:
        """Fitness at the lowest rung of the view's designs, against the references (see :meth:`view`)."""
        first = self.ladder.rungs[0].name
        view = self.view(snap)
        rows = [v for v in snap.rows(first, self.data(first)) if v.design_id in view]
        key = tuple(v.id for v in rows)
        if self._view_fitness[0] != key:
            self._view_fitness = (key, self._score(snap, first, rows))
        return self._view_fitness[1]
