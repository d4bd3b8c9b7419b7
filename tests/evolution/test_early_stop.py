"""Early stopping inside a rung: the rule, a verification paused at its probes, and a run that stops a loser."""

import json
import threading
import time
from pathlib import Path

import pytest

from model_discovery import DiscoveryConfig
from model_discovery.evolution.early_stop import StopRule, StopSettings, publish, rank_verdict, verdict
from model_discovery.evolution.store import Store
from model_discovery.evolution.worker import Worker
from model_discovery.sandbox import ProcessSandbox
from model_discovery.verify.kinds import probe_steps
from model_discovery.verify.run import PENDING, VERIFY_LIMITS, verify
from model_discovery.workflow.build import build_report, make_loop, show_run

REFS = [(1, "d"), (1, "d;seed=1"), (1, "d;seed=2"), (2, "d"), (2, "d;seed=1"), (2, "d;seed=2")]
SETTINGS = StopSettings(k=3.0, against="worst", references=REFS, seed_data="d")


def test_the_rule_stops_only_past_the_bar_by_k_noise():
    found = {(1, "d"): 5.0, (1, "d;seed=1"): 5.1, (1, "d;seed=2"): 4.9,  # noise 0.1 (both references)
             (2, "d"): 6.0, (2, "d;seed=1"): 6.1, (2, "d;seed=2"): 5.9}
    assert verdict(6.29, found, SETTINGS) is None  # the worst reference 6.0, + 3 x 0.1
    why = verdict(6.31, found, SETTINGS)
    assert why["bar"] == 6.0 and why["noise"] == pytest.approx(0.1) and "6.3100 > the worst" in why["rule"]
    best = SETTINGS.model_copy(update={"against": "best"})
    assert verdict(5.31, found, best) is not None and verdict(5.29, found, best) is None
    one_seed = {k: v for k, v in found.items() if k[1] == "d"}  # no noise estimate: nothing is stopped
    assert verdict(99.0, one_seed, SETTINGS) is None
    failed = {**found, (2, "d"): None}  # a reference that failed is left out of the bar
    assert verdict(5.4, failed, SETTINGS)["bar"] == 5.0


def test_the_rank_rule_stops_above_the_median_of_enough_earlier_designs():
    settings = StopSettings(rank_min=4)
    earlier = {(1, "d"): 5.0, (2, "d"): 5.2, (3, "d"): 5.4, (4, "d"): 5.6, (5, "d"): None}  # 5: stopped before
    assert rank_verdict(5.29, earlier, settings) is None  # the median of the four that got there: 5.3
    why = rank_verdict(5.31, earlier, settings)
    assert why["bar"] == pytest.approx(5.3) and why["earlier"] == 4
    assert "the median 5.3000 of the 4 designs" in why["rule"]
    assert rank_verdict(99.0, {k: v for k, v in earlier.items() if k[0] != 4}, settings) is None  # three: too few
    top_quarter = settings.model_copy(update={"rank_quantile": 0.25})
    assert rank_verdict(5.2, earlier, top_quarter) is not None and rank_verdict(5.1, earlier, top_quarter) is None


def test_the_verdict_waits_for_every_references_point(tmp_path):
    """A design's probe is judged only when the references' points at that step are in, whichever finished first."""
    store = Store(tmp_path, seed_references=True)
    ids = {n: store.design(n).id for n in ("llama", "rwkv6")}
    keys = [(ids["llama"], "d"), (ids["llama"], "d;seed=1"), (ids["rwkv6"], "d")]
    for design_id, data in [*keys, (ids["llama"], "mine")]:
        store.enqueue(design_id, "cpu-1m", data, {})
    jobs = {(j.design_id, j.data): j for j in store.jobs()}
    settings = StopSettings(references=keys, seed_data="d")
    rule = StopRule(store, jobs[ids["llama"], "mine"], settings, poll_s=0.05)
    assert rule.phenomena(wait=False) is PENDING  # the references have not ended: the design will ask again
    answer = []
    waiter = threading.Thread(target=lambda: answer.append(rule({"step": 4, "fraction": 0.25, "tokens": 1,
                                                                 "val_loss": 9.0})))
    waiter.start()
    publish(store, jobs[keys[0]], {"step": 4, "fraction": 0.25, "tokens": 1, "val_loss": 5.0})
    publish(store, jobs[keys[1]], {"step": 4, "fraction": 0.25, "tokens": 1, "val_loss": 5.2})
    time.sleep(0.5)
    assert waiter.is_alive() and not answer  # rwkv6 has not reported yet
    store.fail(jobs[keys[2]].id, "w", "crashed")  # it ended without a point: left out
    waiter.join(10)
    assert answer and answer[0]["bar"] == 5.0 and answer[0]["noise"] == pytest.approx(0.1414, abs=1e-3)
    # one that stays silent past the patience is left out, and the points that are in still count
    impatient = StopRule(store, jobs[ids["llama"], "mine"], settings, poll_s=0.05, patience_s=0.3)
    assert impatient._wait(8, keys) == {keys[2]: None}  # (the one that failed)
    publish(store, jobs[keys[0]], {"step": 8, "fraction": 0.5, "tokens": 1, "val_loss": 4.0})
    assert impatient._wait(8, keys) == {keys[0]: 4.0, keys[2]: None}


def test_a_job_that_cannot_stop_publishes_its_probes_while_it_trains(tmp_path):
    """A reference trains without a pause; its worker publishes each probe as it appears in its curve, so a design
    waiting for it goes on before the reference has finished."""
    store = Store(tmp_path, seed_references=True)
    store.enqueue(store.design("llama").id, "cpu-1m", "d", {"max_steps": 8})
    release = threading.Event()

    def training(design, scale, out, decide=None, **payload):
        assert decide is None  # no pause
        point = {"step": 2, "fraction": 0.25, "tokens": 8192, "val_loss": 5.0}
        Path(out, "curve.jsonl").write_text(json.dumps(point) + "\n")
        assert release.wait(60)
        return {"val_loss": 4.0, "curve": [point]}

    worker = threading.Thread(target=Worker(store, tmp_path, verify_fn=training).run)
    worker.start()
    deadline = time.monotonic() + 30
    while not store.events(kind="probe") and time.monotonic() < deadline:
        time.sleep(0.1)
    (event,) = store.events(kind="probe")
    assert event.data["step"] == 2 and event.data["val_loss"] == 5.0
    assert [j.status for j in store.jobs()] == ["running"]  # still training
    release.set()
    worker.join(60)
    assert [j.status for j in store.jobs()] == ["done"] and len(store.events(kind="probe")) == 1


def test_a_verification_pauses_at_its_probes_and_stops_when_told(tmp_path):
    seen = []

    def go_on(point):
        seen.append(point)

    full = verify("llama", "cpu-1m", blimp=None, out=tmp_path / "a", max_steps=8, decide=go_on)
    plain = verify("llama", "cpu-1m", blimp=None, out=tmp_path / "b", max_steps=8)
    assert probe_steps(8) == [2, 4] and [p["step"] for p in seen] == [2, 4]
    assert [p["step"] for p in full["curve"]] == [p["step"] for p in plain["curve"]] == [2, 4]
    assert full["val_loss"] == plain["val_loss"]  # the pauses change nothing
    assert [p["val_loss"] for p in full["curve"]] == [p["val_loss"] for p in plain["curve"]]
    stopped = verify("llama", "cpu-1m", blimp=None, out=tmp_path / "c", max_steps=8,
                     decide=lambda p: {"rule": "test"} if p["step"] == 4 else None)
    assert stopped["stopped"]["step"] == 4 and stopped["stopped"]["rule"] == "test"
    assert "val_loss" not in stopped and stopped["train_tokens"] == 4 * 4096 and len(stopped["curve"]) == 2
    assert not (tmp_path / "c" / "model.safetensors").exists()


def _fake_verify(store: Store, curves: dict[str, list[float]], jitter_s: float = 0.0):
    """Stands in for training: the design's held-out loss at its two probes and at the end, paused like
    :func:`verify` at each probe for ``decide``."""
    by_source = {d.source: d.name for d in store.designs()}

    def run(design, scale, out, decide=None, seed=0, phenomena=None, **payload):
        name = by_source[Path(design).read_text()]
        time.sleep(jitter_s * (hash(name) % 7) / 7)  # side by side, jobs end in another order than queued
        losses = [x + 0.1 * (seed - 1) for x in curves[name]]
        curve = []
        for step, loss in zip((1, 2), losses):
            curve.append({"step": step, "fraction": step / 4, "tokens": step * 4096, "val_loss": loss})
            if decide and (why := decide(curve[-1])):
                return {"stopped": {**curve[-1], **why}, "curve": curve, "train_tokens": step * 4096}
        scored = phenomena() if phenomena else None
        blimp = {"by_phenomenon": {"easy": 0.9, "hard": 0.51}, "n_pairs": 2000, "acc": 0.705}
        if scored is not None:  # a design scores what separates
            blimp = {**blimp, "by_phenomenon": {k: v for k, v in blimp["by_phenomenon"].items() if k in scored}}
        metrics = {"val_loss": losses[-1], "blimp": blimp, "curve": curve, "seed": seed, "scored": scored,
                   "pairs_skipped": 2 - len(blimp["by_phenomenon"])}
        Path(out, "metrics.json").write_text(json.dumps(metrics))
        return metrics

    return run


def test_a_design_scored_on_the_separating_phenomena_alone_gets_the_same_fitness():
    from model_discovery.verify.fitness import Verified, compute_fitness, separating_phenomena

    def pairs(by, n=1000):
        return {"by_phenomenon": by, "n_pairs": n * len(by)}

    refs = [Verified(name=f"r{i}", reference=True, metrics={"val_loss": 5.0 + i / 10, "blimp": pairs(
        {"easy": 0.8 + i / 50, "chance": 0.505 - i / 100, "weak": 0.54 + i / 100})}) for i in range(2)]
    assert separating_phenomena(refs) == ["easy", "weak"]  # "chance" (0.505, 0.495) is not above 0.5 + 2 SE
    whole = Verified(name="d", metrics={"val_loss": 4.8, "blimp": pairs({"easy": 0.85, "chance": 0.6, "weak": 0.5})})
    part = Verified(name="d", metrics={"val_loss": 4.8, "blimp": pairs({"easy": 0.85, "weak": 0.5})})
    assert compute_fitness([*refs, whole], 4096).of("d") == compute_fitness([*refs, part], 4096).of("d")
    assert separating_phenomena([Verified(name="r", reference=True, metrics={"val_loss": 5.0})]) is None


class _Counting(ProcessSandbox):
    """The real sandbox, counting the children each verification starts."""

    def __init__(self):
        super().__init__(VERIFY_LIMITS)
        self.untils = []

    def run(self, target, payload, *args, **kwargs):
        self.untils.append(payload.get("until"))
        return super().run(target, payload, *args, **kwargs)


def test_a_verification_scores_the_phenomena_it_is_given_without_a_pause_when_they_are_known(tmp_path):
    sandbox = _Counting()
    some = verify("llama", "cpu-1m", blimp="synthetic", out=tmp_path / "a", max_steps=2, sandbox=sandbox,
                  phenomena=lambda wait=True: ["transitivity"])
    assert list(some["blimp"]["by_phenomenon"]) == ["transitivity"] and some["pairs_skipped"] == 9
    assert sandbox.untils == [None]  # one child: trained and evaluated
    asked = []

    def later(wait=True):  # the references are still running: asked again, waiting, after the training
        asked.append(wait)
        return [] if wait else PENDING

    sandbox.untils.clear()
    none = verify("llama", "cpu-1m", blimp="synthetic", out=tmp_path / "b", max_steps=2, phenomena=later,
                  sandbox=sandbox)
    assert none["blimp"] is None and none["pairs_skipped"] == 10
    assert asked == [False, True] and sandbox.untils == [2, None]


def test_a_run_stops_a_clear_loser_records_and_never_promotes_it(tmp_path):
    cfg = DiscoveryConfig(run_dir=tmp_path, references=["llama"], check=False, train_fraction=0.004, noise_seeds=3,
                          design_budget=2, verify_budget={"cpu-1m": 2, "cpu-2m": 1}).resolved()
    loop = make_loop(cfg)
    store = loop.store
    for name in ("d0001", "d0002"):
        store.record_session(design=dict(name=name, tree=store.design("llama").tree, source=f"# {name}",
                                         content_hash=f"{name}-hash", parents=["llama"], mode="mutation",
                                         status="checked"), operator="mutation", outcome="registered")
    curves = {"llama": [6.0, 5.5, 5.0], "d0001": [7.0, 6.5, 6.0], "d0002": [6.05, 5.45, 4.9]}
    worker = Worker(store, tmp_path, verify_fn=_fake_verify(store, curves))
    for _ in range(10):
        plan = loop.plan()
        if plan.action == "report":
            break
        loop.enqueue(plan)
        worker.run()
    (stopped,) = store.verifications(status="stopped")
    assert store.design(stopped.design_id).name == "d0001" and stopped.metrics["stopped"]["step"] == 1
    (job,) = [j for j in store.jobs() if j.design_id == stopped.design_id]
    assert loop._describe(job).startswith("stopped d0001 at cpu-1m") and "worst reference" in loop._describe(job)
    assert "curve" in stopped.metrics and "val_loss" not in stopped.metrics
    report = build_report(loop, 0.0)
    assert [(s.name, s.step) for s in report.stopped] == [("d0001", 1)]
    assert "stopped early: d0001 at cpu-1m, step 1 (25% of its tokens)" in report.summary()
    assert report.budgets["cpu-1m"]["used"] == 2  # the stopped verification counts against the budget
    promoted = {store.design(v.design_id).name for v in store.verifications(scale="cpu-2m")}
    assert "d0001" not in promoted and "d0002" in promoted
    assert show_run(tmp_path)["stopped"] == 1
    assert all("early_stop" not in j.payload for j in store.jobs() if store.design(j.design_id).name == "llama")
    # minimal pairs: the references score every phenomenon, a design only "easy" (the references are at chance
    # on "hard": 0.51 over 1000 pairs is within two standard errors of 0.5), and fitness is the same either way
    scored = {store.design(v.design_id).name: v.metrics["scored"] for v in store.verifications(scale="cpu-1m")}
    assert scored == {"llama": None, "d0002": ["easy"]}
    fitness = loop.policy.fitness(loop.snapshot(), "cpu-1m")
    assert set(fitness.kept) | set(fitness.dropped) == {"pairs/easy", "val_loss"}
    assert "minimal pairs at cpu-1m: designs scored 1 of 2 phenomena" in build_report(loop, 0.0).summary()


def _rank_run(run_dir: Path, workers: int) -> dict[str, tuple[int, str]]:
    """A run of seven designs whose losses at half of their tokens differ, verified by ``workers`` workers side by
    side; which designs stopped, where, and by which rule."""
    cfg = DiscoveryConfig(run_dir=run_dir, references=["llama"], check=False, train_fraction=0.004, noise_seeds=3,
                          design_budget=7, verify_budget={"cpu-1m": 7, "cpu-2m": 1}).resolved()
    loop = make_loop(cfg)
    store = loop.store
    half = {"d0001": 5.0, "d0002": 5.6, "d0003": 5.2, "d0004": 5.4, "d0005": 5.1, "d0006": 5.9, "d0007": 5.35}
    for name in half:
        store.record_session(design=dict(name=name, tree=store.design("llama").tree, source=f"# {name}",
                                         content_hash=f"{name}-hash", parents=["llama"], mode="mutation",
                                         status="checked"), operator="mutation", outcome="registered")
    curves = {"llama": [6.0, 6.0, 5.0], **{n: [5.5, v, v - 0.4] for n, v in half.items()}}
    for _ in range(10):
        plan = loop.plan()
        if plan.action == "report":
            break
        loop.enqueue(plan)
        pool = [Worker(store, run_dir, name=f"w{i}", verify_fn=_fake_verify(store, curves, jitter_s=0.3))
                for i in range(workers)]
        threads = [threading.Thread(target=w.run) for w in pool]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    return {store.design(v.design_id).name: (v.metrics["stopped"]["step"], v.metrics["stopped"]["rule"])
            for v in store.verifications(status="stopped")}


def test_the_rank_rule_stops_the_same_designs_in_queue_order_with_one_worker_or_two(tmp_path):
    """At half of their tokens (the run's seed: 0.1 below the curves), designs above the median of at least four
    designs queued before them stop: d0006 (5.8) against d0001..d0005's median 5.1, d0007 (5.25) against six: 5.2;
    d0005 (5.0) is below its four's median 5.2. Two workers that finish in another order stop the same ones."""
    one = _rank_run(tmp_path / "one", workers=1)
    assert sorted(one) == ["d0006", "d0007"] and {step for step, _ in one.values()} == {2}
    assert "the median 5.1000 of the 5 designs before it" in one["d0006"][1]  # seed 0: 0.1 below the curves
    assert "the median 5.2000 of the 6 designs before it" in one["d0007"][1]
    assert _rank_run(tmp_path / "two", workers=2) == one
    store = Store(tmp_path / "one")  # only the designs paused and published their probes
    published = {store.design(e.data["design_id"]).name for e in store.events(kind="probe")}
    assert published == {f"d000{i}" for i in range(1, 8)}
