"""Early stopping inside a rung: a design whose held-out loss part-way through its training is already worse than
the references by more than their seed noise stops there, and its compute goes to the next design. And an
evaluation only where it separates: a design scores the minimal-pair phenomena on which the references beat chance
at the rung (:meth:`StopRule.phenomena`); fitness could keep no other, so it is the same as with all of them.

Every verification records its held-out loss at its probe steps (:data:`~model_discovery.verify.kinds.PROBES`: a
quarter and half of its tokens). A design on the run's seed pauses there: its worker publishes the point to the
store (an event of kind ``probe``), so the other workers see it, and asks :class:`StopRule` whether it goes on. A
job that cannot stop (a reference, a noise seed, a confirmation) trains without a pause, and its worker publishes
its points as they appear in its curve (:class:`ProbeWatcher`); a finished job's are also read from its curve
(:func:`points_at`).

The rule, at a probe step: the references' losses there on the run's seed give the bar (the ``against`` one of them:
the worst by default), the references' other seeds the noise (the pooled seed-to-seed standard deviation at that
step, :func:`~model_discovery.verify.noise.pooled_std`). A design is stopped when its loss exceeds the bar by more
than ``k`` times the noise. Without a noise estimate (one seed) nothing is stopped.

The verdict waits until every reference's point at that step is known (or its job ended without one), so it never
depends on which job happened to run first: the same seed stops the same designs with any executor. References are
queued before the designs of their rung, so the wait is short; a reference that never reports (its worker lost and
nobody to take its job) is waited for at most ``patience_s``, then left out.

And a rule by rank, in the manner of ASHA (successive halving without synchronous rounds): at the probe
``rank_at`` (half of the tokens by default) a design is also compared with the designs queued before it at its
rung, on the run's seed. When at least ``rank_min`` of them reached that probe and its loss there is above their
``rank_quantile`` (the median by default), it stops: the run spends its tokens on the better half. The earlier
designs are fixed when the job is queued (``earlier``) and their points are waited for as the references' are, so
the verdict does not depend on the executor either: with any executor the queue hands out a rung's jobs in their
order. A design that an earlier probe stopped never reached this one and is not counted.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from model_discovery.evolution.store import JobRow, Store
from model_discovery.verify.fitness import Verified, separating_phenomena
from model_discovery.verify.job import read_curve
from model_discovery.verify.kinds import PROBES
from model_discovery.verify.noise import pooled_std
from model_discovery.verify.run import PENDING

log = logging.getLogger(__name__)

FINISHED = ("done", "failed")


class StopSettings(BaseModel):
    """The rule's settings (a run's ``early_stop_*`` settings), carried in a design job's payload."""

    model_config = ConfigDict(extra="forbid")

    stop: bool = Field(True, description="stop a design past the bar (off: the probes are only recorded)")
    select_pairs: bool = Field(True, description="score only the minimal-pair phenomena that separate at the rung")
    k: float = Field(3.0, gt=0, description="how many noise standard deviations past the bar stop a design")
    against: Literal["best", "worst"] = Field("worst", description="which reference's loss is the bar")
    references: list[tuple[int, str]] = Field(default_factory=list, description="(design id, data) of each "
                                              "reference verification at the rung: the run's seed and the noise seeds")
    seed_data: str = Field("", description="the data key of the run's seed (the others are noise seeds)")
    rank_at: Literal[PROBES] | None = Field(0.5, description="the probe (fraction of the tokens) where a design "
                                            "is also ranked among the earlier designs of its rung (None: no rule "
                                            "by rank)")
    rank_quantile: float = Field(0.5, gt=0, lt=1, description="a design above this quantile of the earlier "
                                 "designs' losses at that probe stops")
    rank_min: int = Field(4, ge=1, description="how many earlier designs must have reached the probe")
    earlier: list[tuple[int, str]] = Field(default_factory=list, description="(design id, data) of the design "
                                           "verifications queued before this one at the rung, on the run's seed")


def publish(store: Store, job: JobRow, point: dict) -> None:
    """Records a probe of ``job`` where every worker sees it."""
    store.add_event("probe", f"design {job.design_id} at {job.scale}: held-out loss {point['val_loss']:.4f} at step "
                    f"{point['step']}", job_id=job.id, design_id=job.design_id, scale=job.scale, data=job.data,
                    **point)


def points_at(store: Store, scale: str, step: int, keys: list[tuple[int, str]]) -> dict:
    """``(design id, data) -> loss`` at ``step`` for the ``keys`` known so far: a published point, or (None where
    it ended without one) what a finished verification's curve holds there. Complete when it has every key."""
    found: dict[tuple[int, str], float | None] = {}
    for event in store.events(kind="probe"):
        d = event.data
        if d.get("scale") == scale and d.get("step") == step and (d["design_id"], d["data"]) in keys:
            found[(d["design_id"], d["data"])] = d["val_loss"]
    if len(found) < len(keys):
        status = {(j[1], j[3]): j[4] for j in store.job_keys() if j[2] == scale}
        ended = [key for key in keys if key not in found and status.get(key) in FINISHED]
        rows = store.verifications(scale=scale, status=None) if ended else []
        curves = {(v.design_id, v.data): (v.metrics or {}).get("curve", []) for v in rows}
        for key in ended:
            found[key] = next((p["val_loss"] for p in curves.get(key, []) if p["step"] == step), None)
    return found


class ProbeWatcher(threading.Thread):
    """Publishes the probes of a job that trains without pausing (a reference, a noise seed, a confirmation) as they
    appear in its folder's curve, so the designs waiting for them go on as soon as they are there."""

    def __init__(self, store: Store, job: JobRow, folder: Path, steps: int, poll_s: float = 1.0):
        super().__init__(daemon=True)
        self.store, self.job, self.folder, self.steps, self.poll_s = store, job, folder, steps, poll_s
        self.seen: set[int] = set()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.poll_s):
            self.publish_new()

    def publish_new(self) -> None:
        try:
            for point in read_curve(self.folder, self.steps):
                if point["step"] not in self.seen:
                    publish(self.store, self.job, point)
                    self.seen.add(point["step"])
        except Exception as exc:  # a store hiccup or a half-written line: the next poll tries again
            log.debug("job %s: probes not published yet (%s)", self.job.id, exc)

    def __enter__(self) -> ProbeWatcher:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.join()
        self.publish_new()


class StopRule:
    """The verdict for one design job at each of its probes (a ``decide`` for
    :func:`~model_discovery.verify.run.verify`)."""

    def __init__(self, store: Store, job: JobRow, settings: StopSettings | None, poll_s: float = 1.0,
                 patience_s: float = 1800.0):
        self.store, self.job, self.settings, self.poll_s, self.patience_s = store, job, settings, poll_s, patience_s

    @property
    def stops(self) -> bool:
        """Whether this job may stop early (else it need not pause at its probes)."""
        return self.settings is not None and self.settings.stop

    def __call__(self, point: dict) -> dict | None:
        publish(self.store, self.job, point)
        settings = self.settings
        if settings is None or not settings.stop:
            return None
        why = verdict(point["val_loss"], self._wait(point["step"], settings.references), settings)
        if why is None and settings.rank_at is not None and nearest_probe(point) == settings.rank_at:
            why = rank_verdict(point["val_loss"], self._wait(point["step"], settings.earlier), settings)
        return why

    def _wait(self, step: int, keys: list) -> dict:
        """The points of ``keys`` at ``step``, once all of them are known (at most ``patience_s``)."""
        keys = [tuple(k) for k in keys]
        if not keys:
            return {}
        deadline = time.monotonic() + self.patience_s
        while len(found := points_at(self.store, self.job.scale, step, keys)) < len(keys):
            if time.monotonic() > deadline:
                log.warning("job %s: verifications %s still silent at step %s after %.0f s; deciding without them",
                            self.job.id, sorted(set(keys) - set(found)), step, self.patience_s)
                break
            time.sleep(self.poll_s)
        return found

    def phenomena(self, wait: bool = True):
        """The minimal-pair phenomena the design's evaluation scores: those on which the references (the run's
        seed, at this rung) clearly beat chance (:func:`~model_discovery.verify.fitness.separating_phenomena`);
        all of them (None) when no reference has a result. Waits until the references' verifications ended
        (``wait=False``: :data:`~model_discovery.verify.run.PENDING` if they have not)."""
        if self.settings is None or not self.settings.select_pairs:
            return None
        keys = {tuple(k) for k in self.settings.references if k[1] == self.settings.seed_data}
        deadline = time.monotonic() + self.patience_s
        while True:
            status = {(j[1], j[3]): j[4] for j in self.store.job_keys() if j[2] == self.job.scale}
            if all(status.get(k) in FINISHED for k in keys) or time.monotonic() > deadline:
                break
            if not wait:
                return PENDING
            time.sleep(self.poll_s)
        rows = [v for v in self.store.verifications(scale=self.job.scale, data=self.settings.seed_data)
                if (v.design_id, v.data) in keys]
        return separating_phenomena([Verified(name=str(v.design_id), metrics=v.metrics, reference=True)
                                     for v in rows])


def verdict(loss: float, found: dict, settings: StopSettings) -> dict | None:
    """Why a design with held-out ``loss`` at a probe stops (None: it goes on), given the references' losses there
    (``(design id, data) -> loss``)."""
    on_seed = [v for (_, data), v in found.items() if data == settings.seed_data and v is not None]
    by_reference: dict[int, list[float | None]] = {}
    for (ref, _), v in found.items():
        by_reference.setdefault(ref, []).append(v)
    noise = pooled_std(by_reference)
    if not on_seed or not noise:
        return None
    bar = max(on_seed) if settings.against == "worst" else min(on_seed)
    if loss <= bar + settings.k * noise:
        return None
    return {"bar": bar, "noise": noise, "k": settings.k, "against": settings.against,
            "rule": f"held-out loss {loss:.4f} > the {settings.against} reference's {bar:.4f} + "
                    f"{settings.k:g} x noise {noise:.4f}"}


def nearest_probe(point: dict) -> float:
    """The :data:`~model_discovery.verify.kinds.PROBES` fraction a probe point stands for (its own fraction is
    rounded to whole steps)."""
    return min(PROBES, key=lambda f: abs(f - point["fraction"]))


def rank_verdict(loss: float, found: dict, settings: StopSettings) -> dict | None:
    """Why a design with held-out ``loss`` at the rank probe stops (None: it goes on), given the earlier designs'
    losses there (``(design id, data) -> loss``; None for those stopped before it)."""
    losses = sorted(v for v in found.values() if v is not None)
    if len(losses) < settings.rank_min:
        return None
    bar = float(np.quantile(losses, settings.rank_quantile))
    if loss <= bar:
        return None
    share = f"{settings.rank_quantile:.0%}" if settings.rank_quantile != 0.5 else "median"
    return {"bar": bar, "against": "earlier", "quantile": settings.rank_quantile, "earlier": len(losses),
            "rule": f"held-out loss {loss:.4f} > the {share} {bar:.4f} of the {len(losses)} designs before it at "
                    f"this rung"}
