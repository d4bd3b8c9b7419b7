"""``BuildSystem``: the discovery job. It opens (or creates) a run — a folder with the store, the LangGraph
checkpoint, the verification outputs and the report — runs the evolve graph to budget and returns a
:class:`DiscoveryReport`::

    from model_discovery import BuildSystem
    report = BuildSystem(design_budget=12, verify_budget=10)("discover me a new model")
    print(report.best.name, report.best.fitness)

Settings left as ``None`` come from the ladder's ``defaults`` (``etc/ladder_cpu.yaml``: a run that finishes in
about a quarter of an hour on 2 cores).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, Field

from model_discovery.evolution.artifacts import Artifacts
from model_discovery.evolution.executors import EXECUTORS, make_executor
from model_discovery.evolution.store import Store
from model_discovery.files import atomic_write
from model_discovery.lm import load_ladder
from model_discovery.lm.baselines import Standing, load_baselines
from model_discovery.verify.fidelity import FidelityReport, fidelity, plot
from model_discovery.verify.kinds import rung_kind
from model_discovery.verify.noise import Confirmation, NoiseFloor, confirm, pooled_std, sign_flip_text
from model_discovery.workflow.config import DiscoveryConfig

CONFIG_FILE, REPORT_FILE, CHECKPOINT_FILE = "config.json", "report.json", "checkpoints.db"
FIDELITY_PLOT = "fidelity.png"


class Entry(BaseModel):
    name: str
    reference: bool
    fitness: float
    val_loss: float
    accuracy: float | None = Field(None, description="the mean accuracy the rung's kind scores (minimal pairs, "
                                   "tasks)")
    params: int | None = None


class Leaderboard(BaseModel):
    rung: str
    data: str
    entries: list[Entry] = Field(description="best first")
    accuracy_of: str = Field("minimal pairs", description="what the entries' accuracy is over")
    dropped_metrics: dict[str, str] = Field(default_factory=dict)


class BestDesign(BaseModel):
    id: int
    name: str
    rung: str
    code_path: str
    parents: list[str]
    mode: str
    fitness: float
    metrics: dict
    vs_references: dict = Field(description="held-out loss against each reference at the same rung (negative: "
                                            "the design is better)")
    transfer_vs_references: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="other corpus -> reference -> bits per byte, the design's minus the "
                                          "reference's (negative: better there too)")
    beats_every_reference: bool = Field(description="lower held-out loss than every reference at this rung, with the "
                                                    "run's seed")
    confirmation: Confirmation | None = Field(None, description="the claim again with every noise seed")

    @property
    def confirmed(self) -> bool | None:
        """Whether the win clears the noise floor (None: not measured)."""
        return None if self.confirmation is None else self.confirmation.confirmed


class Stopped(BaseModel):
    """A design whose verification stopped early: where, at what held-out loss, against which bar."""

    name: str
    rung: str
    step: int
    fraction: float
    val_loss: float
    rule: str


class DiscoveryReport(BaseModel):
    prompt: str
    n_designs: int = Field(description="designs the run produced (the references excluded)")
    n_check_passed: int
    n_verified: int = Field(description="designs verified at the lowest rung")
    n_promoted: int = Field(description="designs verified above the lowest rung")
    sessions: dict[str, int] = Field(description="design sessions by outcome")
    budgets: dict[str, dict[str, int]] = Field(description="rung -> {budget, used}")
    best: BestDesign | None
    leaderboards: list[Leaderboard]
    stopped: list[Stopped] = Field(default_factory=list, description="designs stopped early, never promoted")
    pairs_scored: dict[str, str] = Field(default_factory=dict, description="rung -> which minimal-pair phenomena "
                                         "its designs scored, where not all (the rest do not separate there)")
    fidelity: FidelityReport | None = Field(None, description="rank agreement between rungs (two rungs or more)")
    noise: dict[str, NoiseFloor] = Field(default_factory=dict, description="rung -> the references' seed noise")
    best_known: dict[str, Standing] = Field(default_factory=dict, description="rung -> the library designs' "
                                            "held-out loss there for this corpus and budget, from the ladder's table "
                                            "of best known designs (rungs it has no row for are left out)")
    costs: dict[str, float]
    wall_s: float
    paths: dict[str, str]

    def summary(self) -> str:
        lines = [f"{self.n_designs} designs ({self.n_check_passed} passed the checker), {self.n_verified} verified "
                 f"at the lowest rung, {self.n_promoted} promoted; {self.wall_s / 60:.1f} min, "
                 f"{self.costs['cpu_s'] / 60:.1f} CPU-min of verification, ${self.costs['llm_usd']:.2f} of LLM calls"]
        for board in self.leaderboards:
            lines.append(f"\n{board.rung} ({board.data}):")
            accuracy = board.accuracy_of.split()[-1]  # (pairs, tasks)
            lines.append(f"  {'design':<18}{'fitness':>8}{'val loss':>10}{accuracy:>8}{'params':>11}")
            for e in board.entries:
                pairs = f"{e.accuracy:.3f}" if e.accuracy is not None else "-"
                tag = " (reference)" if e.reference else ""
                lines.append(f"  {e.name + tag:<18}{e.fitness:>8.3f}{e.val_loss:>10.3f}{pairs:>8}"
                             f"{e.params or 0:>11,}")
        for rung, scored in self.pairs_scored.items():
            lines.append(f"  minimal pairs at {rung}: {scored}")
        for st in self.stopped:
            lines.append(f"  stopped early: {st.name} at {st.rung}, step {st.step} ({st.fraction:.0%} of its tokens): "
                         f"{st.rule}")
        if self.noise:
            lines.append("\nnoise floor (the references' held-out loss over training seeds):")
            for rung, floor in self.noise.items():
                each = "; ".join(f"{n} " + " ".join("-" if x is None else f"{x:.3f}" for x in v)
                                 for n, v in floor.losses.items())
                std = "-" if floor.std is None else f"{floor.std:.4f}"
                spread = "" if floor.spread is None else f"; designs spread {floor.spread:.3f}"
                lines.append(f"  {rung} (seeds {', '.join(map(str, floor.seeds))}): {each}; std {std}{spread}")
        if self.best_known:
            lines.append("\nbest known designs (the library's mean held-out loss over its measured seeds):")
            for rung, standing in self.best_known.items():
                ranked = ", ".join(f"{n} {loss:.3f}" for n, loss in standing.ranked())
                lines.append(f"  {rung}: {ranked}")
        if self.best:
            b = self.best
            deltas = ", ".join(f"{n} {d:+.3f}" for n, d in b.vs_references.items())
            verdict = "beats every reference" if b.beats_every_reference else "does not beat every reference"
            lines.append(f"\nbest: {b.name} ({b.mode} of {', '.join(b.parents) or '-'}) at {b.rung}: fitness "
                         f"{b.fitness:.3f}, val loss {b.metrics['val_loss']:.3f}; loss vs references: {deltas} — "
                         f"{verdict} on held-out loss with seed {b.metrics.get('seed', 0)}.")
            lines.append(f"  {self.against_best_known()}")
            c = b.confirmation
            if c is not None:
                noise = "-" if c.noise is None else f"{c.noise:.4f}"
                lines.append(f"  over seeds {', '.join(map(str, c.seeds))}: margin {c.mean:+.3f} nats "
                             f"(95% t-interval {c.low:+.3f}..{c.high:+.3f}; {sign_flip_text(c.p_exact, len(c.seeds))}; "
                             f"noise floor {noise}) — "
                             f"{'CONFIRMED' if c.confirmed else 'NOT confirmed'}")
            for corpus, deltas in b.transfer_vs_references.items():
                lines.append(f"  on {corpus}: bits per byte vs references "
                             + ", ".join(f"{n} {d:+.4f}" for n, d in deltas.items()))
            lines.append(f"  code: {b.code_path}")
        if self.fidelity:
            lines.append("\nproxy fidelity (does a lower rung rank designs as a higher one does?):")
            lines.append("  " + self.fidelity.table().replace("\n", "\n  "))
        lines.append(f"\nreport: {self.paths['report']}")
        return "\n".join(lines)


    def against_best_known(self) -> str:
        """The best design against the best known library design at its rung, in words."""
        b = self.best
        standing = self.best_known.get(b.rung) if b else None
        if b is None:
            return "no design was verified"
        if standing is None:
            return (f"the best known design at {b.rung} is unknown for this corpus and budget (no row in the "
                    "ladder's table): the claim is against the references only")
        name = standing.best
        if name not in b.vs_references:
            return f"the best known design at {b.rung}, {name}, was not among the references"
        delta = -b.vs_references[name]
        if delta > 0:
            return f"beats the best known design ({name}) by {delta:.3f} nats on held-out loss with the run's seed"
        return f"does not beat the best known design ({name}): {-delta:.3f} nats behind it with the run's seed"


class BuildSystem:
    """The discovery system. Keyword arguments are :class:`DiscoveryConfig` fields; ``config`` gives them all at
    once. ``BuildSystem(...)(prompt)`` runs to budget (resuming the run in ``run_dir`` if there is one) and returns
    the report."""

    def __init__(self, run_dir: str | Path | None = None, *, config: DiscoveryConfig | dict | None = None,
                 progress: bool = True, **settings):
        base = config.model_dump() if isinstance(config, DiscoveryConfig) else dict(config or {})
        if run_dir is not None:
            settings["run_dir"] = Path(run_dir)
        self.config = DiscoveryConfig(**{**base, **settings})  # validated, unknown keys refused
        self.progress = progress

    def add_design(self, path: str | Path) -> BuildSystem:
        """Starts the tree with a design file of your own (a seed): parsed into units and checked when the run
        starts, it can be a parent like any design and its units join the catalogue."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"design file {str(path)!r} does not exist")
        seeds = [*self.config.seed_designs, str(Path(path).resolve())]
        self.config = self.config.model_copy(update={"seed_designs": seeds})
        return self

    def __call__(self, prompt: str | None = None, resume: bool = True) -> DiscoveryReport:
        cfg = self.config.model_copy(update={"prompt": prompt}) if prompt else self.config
        cfg = cfg.resolved()
        run_dir = cfg.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = run_dir / CONFIG_FILE
        if saved.is_file() and not resume:
            raise FileExistsError(f"{run_dir} already holds a run; resume it (`modis evolve --run-dir {run_dir} "
                                  "--resume`) or choose another --run-dir")
        atomic_write(saved, cfg.model_dump_json(indent=2))
        return run(cfg, progress=self.progress)


def open_run(run_dir: str | Path, **overrides) -> DiscoveryConfig:
    """The saved config of the run in ``run_dir``, with ``overrides`` (e.g. larger budgets) applied."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no run (no {CONFIG_FILE}); start one with `modis discover`")
    saved = json.loads(path.read_text())
    if "rungs" not in saved:  # saved when every rung trained on the corpus: the run climbs the rungs it started with
        ladder = load_ladder(saved.get("ladder", "cpu"))
        saved["rungs"] = [s.name for s in ladder.rungs if rung_kind(s).corpus]
    saved.setdefault("noise_seeds", 1)  # saved before the noise floor existed: resuming adds no seed runs
    saved.setdefault("synthesis", False)  # saved before the grammar existed: the designer goes on as it did
    cfg = DiscoveryConfig(**saved)
    return cfg.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def make_policy(cfg: DiscoveryConfig):
    """The run's planning policy: its settings, the rungs it climbs and the ladder's table of best known designs."""
    from model_discovery.workflow.policy import Policy

    return Policy(cfg, load_ladder(cfg.ladder).only(cfg.rungs), load_baselines(cfg.ladder))


def make_loop(cfg: DiscoveryConfig, on_step=None, designing: bool = True):
    """The run's runner: its store, executor, artifacts and policy (``designing=False``: no knowledge index)."""
    from model_discovery.agents.knowledge import default_knowledge
    from model_discovery.workflow.evolve import Loop

    store = Store(cfg.store or cfg.run_dir, seed_references=True)
    artifacts = Artifacts(cfg.artifacts or cfg.run_dir)
    policy = make_policy(cfg)
    executor = make_executor(cfg.executor_name(), store, cfg.run_dir, cfg.artifacts, workers=cfg.workers,
                             lease_s=cfg.lease_s, poll_s=min(cfg.poll_s, 1.0), **_executor_options(cfg, policy.ladder))
    unknown = set(cfg.references) - {d.name for d in store.designs("reference")}
    if unknown:
        raise KeyError(f"unknown reference designs {sorted(unknown)}; see `modis library list`")
    return Loop(store, executor, artifacts, policy, default_knowledge() if designing else None, on_step)


def _executor_options(cfg: DiscoveryConfig, ladder) -> dict:
    """The run's executor's own settings: the run's threads for each training, the Ray cluster's address, and the
    GPUs each job takes on the ladder."""
    return EXECUTORS.get(cfg.executor_name()).options(threads=cfg.threads, address=cfg.ray_address, gpus=ladder.gpus)


def run(cfg: DiscoveryConfig, progress: bool = True) -> DiscoveryReport:
    """Runs (or resumes) the evolve graph of the run ``cfg`` describes, then reports."""
    from tqdm.auto import tqdm

    from model_discovery.workflow.design import import_design
    from model_discovery.workflow.evolve import evolve_graph

    start = time.perf_counter()
    bar = tqdm(desc="discover", unit="step", disable=not progress, dynamic_ncols=True)

    def on_step(action: str, message: str) -> None:
        bar.update()
        bar.write(f"[{action}] {message}") if progress else None

    loop = make_loop(cfg, on_step)
    graph = evolve_graph(cfg.run_dir / CHECKPOINT_FILE)
    thread = {"configurable": {"thread_id": "evolve", "loop": loop}, "recursion_limit": 1_000_000}
    # a checkpoint may show no next step after a SIGKILL (a step's writes were in flight): the graph then starts
    # afresh, which is safe because every step is idempotent against the store
    pending = graph.get_state(thread).next
    resumed = bool(loop.store.events(kind="run"))
    loop.store.add_event("run", "resumed" if resumed else "started", prompt=cfg.prompt,
                         executor=cfg.executor_name(), workers=cfg.workers)
    for path in cfg.seed_designs:  # a resumed run finds them in the tree already
        row = import_design(loop.store, path, scale=cfg.check_scale, check=cfg.check)
        on_step("import", f"seed design {row.name} from {path}: {row.status}")
    loop.executor.start()
    try:
        graph.invoke(None if pending else {"steps": 0}, thread)
    finally:
        loop.executor.stop()  # on Ctrl-C too: held jobs go back to the queue
        bar.close()
    report = build_report(loop, time.perf_counter() - start)
    loop.store.add_event("run", "finished", best=report.best.name if report.best else None)
    return report


def build_report(loop, wall_s: float) -> DiscoveryReport:
    """The report from the store (written to ``RUN_DIR/report.json``); the designs' code goes to the artifacts."""
    store, policy, snap = loop.store, loop.policy, loop.snapshot()
    cfg = policy.config
    designs = store.designs()
    produced = [d for d in designs if d.status != "reference"]
    by_id = {d.id: d for d in designs}
    budgets = policy.budgets()
    jobs = store.jobs()
    used = {r: sum(1 for j in jobs if j.scale == r and j.data == policy.data(r) and by_id[j.design_id].status
                   != "reference") for r in budgets}
    boards, best = [], None
    verified_at: dict[str, set[int]] = {}
    ids = {d.name: d.id for d in designs}
    for scale in policy.ladder.rungs:
        rung = scale.name
        rows = {v.design_id: v for v in snap.rows(rung, policy.data(rung))}
        verified_at[rung] = {i for i in rows if by_id[i].status != "reference"}
        report = policy.fitness(snap, rung)
        if report is None:
            continue
        entries, kind = [], rung_kind(scale)
        for s in sorted(report.scores, key=lambda s: -s.fitness):
            m = rows[ids[s.name]].metrics
            entries.append(Entry(name=s.name, reference=by_id[ids[s.name]].status == "reference",
                                 fitness=s.fitness, val_loss=m["val_loss"], accuracy=kind.accuracy(m),
                                 params=m.get("params")))
        boards.append(Leaderboard(rung=rung, data=policy.data(rung), entries=entries, accuracy_of=kind.accuracy_of,
                                  dropped_metrics=report.dropped))
    stopped = [Stopped(name=by_id[v.design_id].name, rung=v.scale, step=v.metrics["stopped"]["step"],
                       fraction=v.metrics["stopped"]["fraction"], val_loss=v.metrics["stopped"]["val_loss"],
                       rule=v.metrics["stopped"].get("rule", ""))
               for v in snap.rows(status="stopped")]
    pairs_scored = {}
    for scale in policy.ladder.rungs:
        rows = snap.rows(scale.name, policy.data(scale.name))
        skipped = {v.metrics.get("pairs_skipped") or 0 for v in rows if by_id[v.design_id].status != "reference"}
        every = max((len((v.metrics.get("blimp") or {}).get("by_phenomenon") or {}) for v in rows), default=0)
        if every and max(skipped, default=0):
            pairs_scored[scale.name] = (f"designs scored {every - max(skipped)} of {every} phenomena; the "
                                        "references were within noise of chance on the others")
    noise = noise_floors(policy, snap)
    top = policy.best(snap)
    if top is not None:
        design_id, rung, beats = top
        row = by_id[design_id]
        board = next(b for b in boards if b.rung == rung)
        mine = next(e for e in board.entries if e.name == row.name)
        metrics = {v.design_id: v.metrics for v in snap.rows(rung, policy.data(rung))}
        best = BestDesign(id=row.id, name=row.name, rung=rung, parents=row.parents, mode=row.mode,
                          code_path=loop.artifacts.put_bytes(f"designs/{row.name}/design.py", row.source.encode()),
                          fitness=mine.fitness, metrics=metrics[row.id],
                          vs_references={e.name: mine.val_loss - e.val_loss for e in board.entries if e.reference},
                          transfer_vs_references=_transfer(metrics, row.id, [ids[e.name] for e in board.entries
                                                                              if e.reference], by_id),
                          beats_every_reference=beats, confirmation=confirmation(policy, snap, design_id, rung, noise))
    sessions: dict[str, int] = {}
    for s in store.sessions():
        sessions[s.outcome] = sessions.get(s.outcome, 0) + 1
    lowest = policy.ladder.rungs[0].name
    report_path = cfg.run_dir / REPORT_FILE
    fidelity_report, plot_path = run_fidelity(policy, snap, cfg.run_dir / FIDELITY_PLOT)
    report = DiscoveryReport(
        prompt=cfg.prompt, n_designs=len(produced), n_check_passed=sum(d.status == "checked" for d in produced),
        n_verified=len(verified_at.get(lowest, set())),
        n_promoted=len(set().union(*(v for r, v in verified_at.items() if r != lowest))),
        sessions=sessions, budgets={r: {"budget": b, "used": used[r]} for r, b in budgets.items()}, best=best,
        leaderboards=boards, stopped=stopped, pairs_scored=pairs_scored, fidelity=fidelity_report, noise=noise,
        best_known=policy.best_known(), costs=store.costs(), wall_s=wall_s,
        paths={"run_dir": str(cfg.run_dir), "store": store.url, "report": str(report_path),
               **({"fidelity_plot": str(plot_path)} if plot_path else {}),
               "checkpoints": str(cfg.run_dir / CHECKPOINT_FILE), "artifacts": loop.artifacts.url()})
    atomic_write(report_path, report.model_dump_json(indent=2))
    return report


def _transfer(metrics: dict[int, dict], design: int, refs: list[int], by_id) -> dict[str, dict[str, float]]:
    """Bits per byte on each other corpus, the design's minus each reference's (negative: the design is better)."""
    mine = metrics[design].get("transfer") or {}
    return {corpus: {by_id[r].name: scores["bpb"] - metrics[r]["transfer"][corpus]["bpb"] for r in refs
                     if corpus in (metrics[r].get("transfer") or {})} for corpus, scores in mine.items()}


def seed_losses(policy, snap, rung: str, design_id: int, seeds: list[int]) -> list[float | None]:
    out = []
    for seed in seeds:
        rows = [v for v in snap.rows(rung, policy.data(rung, seed)) if v.design_id == design_id]
        out.append(float(rows[0].metrics["val_loss"]) if rows else None)
    return out


def noise_floors(policy, snap) -> dict[str, NoiseFloor]:
    """Per rung the references reached: their held-out loss and fitness at each seed, and the pooled spread."""
    cfg = policy.config
    seeds = [cfg.seed, *policy.extra_seeds]
    index = snap.index
    refs = [index.by_name[n] for n in cfg.references if n in index.by_name]
    out = {}
    for scale in policy.ladder.rungs:
        rung = scale.name
        losses = {r.name: seed_losses(policy, snap, rung, r.id, seeds) for r in refs}
        losses = {n: v for n, v in losses.items() if v[0] is not None}
        if not losses:
            continue
        report = policy.fitness(snap, rung)
        fitness = {}
        if report:
            for r in refs:
                fitness[r.name] = [None if m is None else report.score(r.name, m).fitness for m in (
                    next((v.metrics for v in snap.rows(rung, policy.data(rung, seed)) if v.design_id == r.id), None)
                    for seed in seeds)]
        every = [float(v.metrics["val_loss"]) for v in snap.rows(rung, policy.data(rung))]
        out[rung] = NoiseFloor(seeds=seeds, losses=losses, fitness=fitness, std=pooled_std(losses),
                               fitness_std=pooled_std(fitness), spread=max(every) - min(every) if every else None)
    return out


def confirmation(policy, snap, design_id: int, rung: str, noise: dict[str, NoiseFloor]) -> Confirmation | None:
    """The best design's margins over the references with every seed (None with one seed)."""
    floor = noise.get(rung)
    if floor is None or len(floor.seeds) < 2:
        return None
    return confirm(rung, floor.seeds, seed_losses(policy, snap, rung, design_id, floor.seeds), floor.losses,
                   floor.std)


def rung_scores(policy, snap) -> dict[str, dict[str, dict[str, float]]]:
    """``{rung: {design: {"fitness": f, "val_loss": l}}}`` over every design verified at each rung on the run's
    data (fitness only where references were verified there)."""
    by_id = snap.index.by_id
    out: dict[str, dict[str, dict[str, float]]] = {}
    for scale in policy.ladder.rungs:
        rows = snap.rows(scale.name, policy.data(scale.name))
        scores = {by_id[v.design_id].name: {"val_loss": float(v.metrics["val_loss"])} for v in rows}
        report = policy.fitness(snap, scale.name)
        for s in report.scores if report else []:
            scores[s.name]["fitness"] = s.fitness
        if scores:
            out[scale.name] = scores
    return out


def run_fidelity(policy, snap, plot_path: str | Path | None = None) -> tuple[FidelityReport | None, Path | None]:
    """Proxy fidelity of the run's rungs (None below two rungs with verifications), and its plot when asked."""
    scores = rung_scores(policy, snap)
    if len(scores) < 2:
        return None, None
    report = fidelity(scores, [r.name for r in policy.ladder.rungs if r.name in scores])
    return report, plot(scores, report, plot_path) if plot_path else None


def read_run(run_dir: str | Path, store: str | None = None):
    """``(store, policy, snapshot)`` of the run in ``run_dir`` (``store``: its URL when it is not there), for reading
    its rungs, data and fitness with the run's planning policy alone (no executor); the policy is None when the
    folder holds no run config (a store that ``modis design`` or ``modis import`` made)."""
    from model_discovery.workflow.snapshot import Reader

    cfg = open_run(run_dir).resolved() if (Path(run_dir) / CONFIG_FILE).is_file() else None
    db = Store(store or (cfg.store if cfg and cfg.store else run_dir))
    return db, make_policy(cfg) if cfg else None, Reader(db).snapshot()


def show_run(run_dir: str | Path, store: str | None = None) -> dict:
    """The run as JSON-able data (what ``modis show`` prints): designs with their fitness at the highest rung they
    reached (and a library design's standing among the library's at each rung: 1 is the best known design), every
    verification, the job queue, costs and budgets."""
    db, policy, snap = read_run(run_dir, store)
    cfg = policy.config if policy else None
    fitness: dict[str, tuple[str, float]] = {}
    budgets, known = {}, {}
    if policy:
        known = policy.best_known()
        for scale in policy.ladder.rungs:
            report = policy.fitness(snap, scale.name)
            for s in report.scores if report else []:
                fitness[s.name] = (scale.name, s.fitness)
        budgets = policy.budgets()
    jobs = db.jobs()
    return {
        "run_dir": str(Path(run_dir).resolve()), "store": db.url, "prompt": cfg.prompt if cfg else None,
        "designs": [{"id": d.id, "name": d.name, "parents": d.parents, "mode": d.mode, "status": d.status,
                     "fitness": fitness.get(d.name, (None, None))[1], "fitness_rung": fitness.get(d.name, (None,))[0],
                     "standing": {rung: [n for n, _ in row.ranked()].index(d.name) + 1 for rung, row in known.items()
                                  if d.name in row.losses}}
                    for d in db.designs()],
        "best_known": {rung: {"best": row.best, "ranked": row.ranked()} for rung, row in known.items()},
        "verifications": [{"design_id": v.design_id, "scale": v.scale, "data": v.data, "status": v.status,
                           "metrics": v.metrics, "error": v.error[-500:], "wall_s": v.wall_s}
                          for v in db.verifications(status=None)],
        "jobs": {status: sum(j.status == status for j in jobs) for status in ("queued", "running", "done", "failed")},
        "stopped": len(db.verifications(status="stopped")),
        "budgets": budgets, "costs": db.costs(), "sessions": db.n_sessions(),
    }
