"""A run as the pages see it: plain pandas tables read from the store, with no Streamlit in here (so it is tested
and timed on its own). ``load_run`` is cheap enough to call on every refresh: 2,000 designs load in well under a
second."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from model_discovery.evolution.key import DataKey
from model_discovery.evolution.store import Store
from model_discovery.verify.kinds import kind_of


def runs_root() -> Path:
    """Where runs are looked for: ``MODIS_RUNS``, default ``runs/`` (where ``modis discover`` puts them)."""
    return Path(os.environ.get("MODIS_RUNS", "runs"))


def list_runs(root: Path | None = None) -> list[Path]:
    """Run folders (those with a ``store.db``) under ``root`` (default :func:`runs_root`), newest first."""
    root = root or runs_root()
    runs = [p.parent for p in root.glob("*/store.db")] if root.is_dir() else []
    return sorted(runs, key=lambda p: (p / "store.db").stat().st_mtime, reverse=True)


def latest_run(root: Path | None = None) -> Path | None:
    """The most recently changed run folder, or None."""
    runs = list_runs(root)
    return runs[0] if runs else None


@dataclass
class Run:
    run_dir: Path
    config: dict
    designs: pd.DataFrame  # id, name, parents, mode, status, created, fitness, rung, val_loss, accuracy, params
    verifications: pd.DataFrame  # design_id, name, scale, data, status, val_loss, accuracy, params, wall_s, ...
    jobs: pd.DataFrame
    costs: dict[str, float]
    budgets: dict[str, dict[str, int]] = field(default_factory=dict)
    fitness: dict[tuple[str, str], float] = field(default_factory=dict)  # (design, rung) -> fitness there
    report: dict | None = None
    events: list[dict] = field(default_factory=list)

    @property
    def running(self) -> bool:
        """Whether something happened in the last two minutes (a live run)."""
        return bool(self.events) and time.time() - self.events[-1]["created"] < 120

    def design_row(self, name: str) -> pd.Series:
        return self.designs.loc[self.designs["name"] == name].iloc[0]


def load_run(run_dir: str | Path, events: int = 200) -> Run:
    """Reads the run in ``run_dir`` (its config, store and report)."""
    from model_discovery.workflow.build import CONFIG_FILE, REPORT_FILE, make_policy, open_run

    run_dir = Path(run_dir)
    config = json.loads((run_dir / CONFIG_FILE).read_text()) if (run_dir / CONFIG_FILE).is_file() else {}
    report = json.loads((run_dir / REPORT_FILE).read_text()) if (run_dir / REPORT_FILE).is_file() else None
    store = Store(config.get("store") or run_dir)
    designs = pd.DataFrame([{"id": d.id, "name": d.name, "parents": list(d.parents), "mode": d.mode,
                             "status": d.status, "created": d.created, "units": len(d.tree["units"])}
                            for d in store.designs()])
    names = dict(zip(designs["id"], designs["name"])) if len(designs) else {}
    rows = []
    for v in store.verifications(status=None):
        m = v.metrics or {}
        rows.append({"design_id": v.design_id, "name": names.get(v.design_id), "scale": v.scale, "data": v.data,
                     "status": v.status, "val_loss": m.get("val_loss"), "accuracy": kind_of(m).accuracy(m),
                     "seed": m.get("seed"),
                     "noise_run": DataKey.parse(v.data).noise_run, "params": m.get("params"), "wall_s": v.wall_s,
                     "created": v.created, "artifacts": v.artifacts,
                     "error": v.error})
    verifications = pd.DataFrame(rows, columns=["design_id", "name", "scale", "data", "status", "val_loss",
                                                "accuracy", "seed", "noise_run", "params", "wall_s",
                                                "created", "artifacts", "error"])
    jobs = pd.DataFrame([{"id": j.id, "design_id": j.design_id, "name": names.get(j.design_id), "scale": j.scale,
                          "data": j.data, "status": j.status, "worker": j.worker, "attempts": j.attempts,
                          "priority": j.priority} for j in store.jobs()],
                        columns=["id", "design_id", "name", "scale", "data", "status", "worker", "attempts",
                                 "priority"])
    budgets, fitness, by_rung = {}, {}, {}
    if config:
        from model_discovery.workflow.snapshot import Reader

        policy, snap = make_policy(open_run(run_dir).resolved()), Reader(store).snapshot()
        budgets = {r: {"budget": b, "used": int(((jobs["scale"] == r) & (jobs["data"] == policy.data(r)) & jobs[
            "name"].isin(designs.loc[designs["status"] != "reference", "name"])).sum())}  # seed runs are not budget
                   for r, b in policy.budgets().items()}
        for scale in policy.ladder.rungs:  # the highest rung wins
            report_at = policy.fitness(snap, scale.name)
            for s in report_at.scores if report_at else []:
                fitness[s.name] = (s.fitness, scale.name)
                by_rung[s.name, scale.name] = s.fitness
    for column, index in (("fitness", 0), ("rung", 1)):
        designs[column] = [fitness.get(n, (None, None))[index] for n in designs["name"]] if len(designs) else []
    done = verifications[(verifications["status"] == "done") & ~verifications["noise_run"].astype(bool)]
    done = done.sort_values("created")  # the run's own seed: other seeds measure noise
    last = done.groupby("name").last() if len(done) else pd.DataFrame(columns=["val_loss", "accuracy", "params"])
    for column in ("val_loss", "accuracy", "params"):
        designs[column] = designs["name"].map(last[column]) if len(designs) else []
    recent = [{"kind": e.kind, "message": e.message, "created": e.created}
              for e in store.events()[-events:]]
    store.engine.dispose()
    return Run(run_dir, config, designs, verifications, jobs, store.costs(), budgets, by_rung, report, recent)


def metrics_of(run: Run, name: str) -> list[dict]:
    """Every verification of one design with its full metrics (loss curve from train_log.jsonl when kept)."""
    store = Store(run.config.get("store") or run.run_dir)
    design = store.design(name)
    out = []
    for v in store.verifications(status=None):
        if v.design_id != design.id:
            continue
        curve = []
        log = Path(v.artifacts) / "train_log.jsonl" if v.artifacts and "://" not in v.artifacts else None
        if log and log.is_file():
            curve = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        out.append({"scale": v.scale, "data": v.data, "status": v.status, "metrics": v.metrics or {},
                    "error": v.error, "curve": curve, "artifacts": v.artifacts})
    store.engine.dispose()
    return out
