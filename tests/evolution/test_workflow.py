"""The evolve loop: what it decides from the store, a whole run with a promotion, a run killed with SIGKILL and
resumed, and the same seed reproducing the same tree."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model_discovery import BuildSystem, DiscoveryConfig
from model_discovery.cli import main
from model_discovery.evolution.store import Store
from model_discovery.workflow.build import make_loop, show_run

TINY = 0.004  # of each rung's tokens: 1 step at cpu-1m, 2 at cpu-2m
ROOT = Path(__file__).resolve().parents[2]


def _loop(tmp_path, **settings):
    cfg = DiscoveryConfig(run_dir=tmp_path, check=False, train_fraction=TINY,
                          **{"references": ["llama"], "noise_seeds": 1, **settings}).resolved()
    return make_loop(cfg)


def _add(store, name):
    store.record_session(design=dict(name=name, tree=store.design("llama").tree, source=f"# {name}",
                                     content_hash=f"{name}-hash", parents=["llama"], mode="mutation",
                                     status="checked"), operator="mutation", outcome="registered")


def _run_planned(loop, losses):
    """Enqueues what the plan asks for and 'verifies' it with the given held-out losses."""
    plan = loop.plan()
    loop.enqueue(plan)
    order = []
    while (job := loop.store.claim("test")) is not None:
        name = loop.store.design(job.design_id).name
        order.append((name, job.scale))
        loop.store.complete(job.id, "test", {"val_loss": losses[name], "blimp": None}, 1.0)
    return plan, order


def test_the_loop_designs_verifies_references_first_then_promotes(tmp_path):
    loop = _loop(tmp_path, design_budget=4, verify_budget={"cpu-1m": 4, "cpu-2m": 1}, lookahead=2)
    store = loop.store
    assert loop.plan().action == "design"
    _add(store, "d0001")
    assert loop.plan().action == "design"  # only the newest `lookahead` designs: nothing to wait for
    _add(store, "d0002")
    _add(store, "d0003")
    # the next session sees d0001 (and the references): it waits for their lowest-rung results
    assert loop.plan().action == "verify"
    _, order = _run_planned(loop, {"llama": 6.0, "d0001": 5.5, "d0002": 6.5, "d0003": 5.0})
    assert order == [("llama", "cpu-1m"), ("d0001", "cpu-1m"), ("d0002", "cpu-1m"), ("d0003", "cpu-1m")]
    assert loop.plan().action == "design"
    _add(store, "d0004")
    for _ in range(2):  # a session of the budget is still left in the store's count: fill it
        store.record_session(operator="mutation", outcome="rejected")
    _, order = _run_planned(loop, {"llama": 6.0, "d0003": 5.0, "d0004": 6.2})
    assert ("d0004", "cpu-1m") in order
    # rung 1 settled: the best (lowest loss: d0003) goes up, after the reference there
    _, order = _run_planned(loop, {"llama": 5.0, "d0003": 4.5})
    assert order == [("llama", "cpu-2m"), ("d0003", "cpu-2m")]
    assert loop.plan().action == "report"
    fitness = {s.name: s.fitness for s in loop.policy.fitness(loop.snapshot(), "cpu-1m").scores}
    assert fitness["llama"] == pytest.approx(1.0) and fitness["d0003"] > fitness["d0001"] > 1.0 > fitness["d0002"]


def test_decisions_read_the_tree_incrementally_and_agree_with_a_fresh_read(tmp_path):
    loop = _loop(tmp_path, design_budget=10, verify_budget={"cpu-1m": 4, "cpu-2m": 1}, lookahead=1)
    before = loop.policy.candidates(loop.snapshot())
    _add(loop.store, "d0001")
    _add(loop.store, "d0002")
    _run_planned(loop, {"llama": 6.0, "d0001": 5.5, "d0002": 6.5})
    _add(loop.store, "d0003")  # a child of llama: llama's child count moves
    after = loop.policy.candidates(loop.snapshot())
    fresh = _loop(tmp_path, design_budget=10, verify_budget={"cpu-1m": 4, "cpu-2m": 1}, lookahead=1)
    assert (sorted(after, key=lambda c: c.name)
            == sorted(fresh.policy.candidates(fresh.snapshot()), key=lambda c: c.name))
    assert len(after) == len(before) + 3
    by_name = {c.name: c for c in after}
    assert by_name["d0001"].fitness > by_name["llama"].fitness > by_name["d0002"].fitness
    assert by_name["llama"].children == 3 and by_name["d0003"].fitness is None
    assert loop.index.n_sessions == 3 == loop.store.n_sessions()
    assert loop.plan() == fresh.plan()


def test_a_session_sees_all_but_the_newest_lookahead_designs(tmp_path):
    """Whatever else finished: parents are drawn from the references and the designs older than the newest
    ``lookahead``, and a session waits for those."""
    loop = _loop(tmp_path, design_budget=10, verify_budget={"cpu-1m": 4}, lookahead=2)
    for name in ("d0001", "d0002", "d0003"):
        _add(loop.store, name)
    assert loop.plan().action == "verify"  # d0001 and the reference first
    _run_planned(loop, {"llama": 6.0, "d0001": 5.5, "d0002": 5.0, "d0003": 4.0})  # the newest finished too
    fitness = {c.name: c.fitness for c in loop.policy.candidates(loop.snapshot())}
    assert fitness["llama"] == pytest.approx(1.0) and fitness["d0001"] > 1.0
    assert fitness["d0002"] is None and fitness["d0003"] is None
    assert loop.plan().action == "design"


def test_library_designs_start_with_their_known_standing_as_a_prior(tmp_path, monkeypatch):
    """With the ladder's table, the first sessions do not draw blind: a library design the run has not verified
    carries the fitness its mean loss gives on the table's scale (the references' mean is 1); the run's own result
    replaces it once the view has one. Without a row, nothing is known."""
    from model_discovery.evolution.selector import make_selector
    from model_discovery.lm.baselines import BaselineTable, Standing

    none = _loop(tmp_path / "none")
    assert all(c.fitness is None for c in none.policy.candidates(none.snapshot()))
    loop = _loop(tmp_path / "run", design_budget=10, verify_budget={"cpu-1m": 4}, lookahead=0)
    tokens = loop.policy.steps("cpu-1m") * loop.policy.ladder.rung("cpu-1m").batch_tokens
    row = Standing(corpus="synthetic", rung="cpu-1m", tokens=tokens,
                   losses={"llama": [6.0, 6.2], "mamba2": [5.6], "gpt2": [6.6]})
    loop.policy.table = BaselineTable(ladder="cpu", standings=[row])
    fitness = {c.name: c.fitness for c in loop.policy.candidates(loop.snapshot())}
    assert fitness["llama"] == pytest.approx(1.0) and fitness["mamba2"] > 1.0 > fitness["gpt2"]
    assert fitness["rwkv6"] is None  # not in the table
    selector = make_selector("quadrant", explore=0.0)
    picks = [selector.select(loop.policy.candidates(loop.snapshot()), 1, random.Random(s))[0].name for s in range(20)]
    assert set(picks) <= {"mamba2", "llama"}  # the better half of what is known
    _add(loop.store, "d0001")
    _run_planned(loop, {"llama": 6.0, "d0001": 5.5})
    fitness = {c.name: c.fitness for c in loop.policy.candidates(loop.snapshot())}
    assert fitness["llama"] == pytest.approx(1.0) and fitness["d0001"] > 1.0 and fitness["mamba2"] > 1.0


def _finish_in(loop, key, losses):
    """A pool of workers that takes every queued job at once and finishes them in the order ``key`` (of design
    names) gives, the loop planning after each; returns the designs queued at cpu-2m, in queue order."""
    store, held = loop.store, []
    while True:
        loop.enqueue(loop.plan())
        while (job := store.claim("test")) is not None:
            held.append(job)
        if not held:
            break
        held.sort(key=lambda j: key(store.design(j.design_id).name))
        job = held.pop(0)
        store.complete(job.id, "test", {"val_loss": losses[store.design(job.design_id).name], "blimp": None}, 1.0)
    return [store.design(j.design_id).name for j in store.jobs() if j.scale == "cpu-2m"]


@pytest.mark.parametrize("order", ["queue", "reversed"])
def test_promotions_do_not_depend_on_which_job_finished_first(tmp_path, order):
    """Results replayed in queue order, as a one-job-at-a-time run sees them: the first four promote their best
    (ratio 1/4: d0001), the first five theirs (d0005), and the budget of two is spent. Finishing the jobs in reverse,
    the references last, promotes the same (taking results as they came would promote d0006 first)."""
    loop = _loop(tmp_path, design_budget=8, verify_budget={"cpu-1m": 8, "cpu-2m": 2})
    loop.policy.ladder = loop.policy.ladder.model_copy(update={"selection_ratio": 0.25})  # not the cpu ladder's 1/16
    names = [f"d000{i}" for i in range(1, 9)]
    for name in names:
        _add(loop.store, name)
    losses = {"llama": 6.0, "d0001": 5.0, "d0002": 5.5, "d0003": 5.6, "d0004": 5.7, "d0005": 4.0, "d0006": 3.9,
              "d0007": 5.8, "d0008": 5.9}
    rank = {"queue": ["llama", *names], "reversed": [*reversed(names), "llama"]}[order]
    promoted = _finish_in(loop, rank.index, losses)
    assert promoted == ["llama", "d0001", "d0005"]  # the reference there, then the designs in promotion order


def _tree(run_dir):
    return [(d.name, tuple(d.parents), d.mode, d.content_hash) for d in Store(run_dir, seed_references=True).designs()]


def test_the_same_seed_reproduces_the_tree(tmp_path):
    # one verification of a design besides the reference, so later parents are drawn by fitness
    settings = dict(design_budget=4, verify_budget={"cpu-1m": 1}, references=["llama"], train_fraction=TINY,
                    check=False, seed=3, progress=False, noise_seeds=1)
    cache = str(tmp_path / "verify-cache")  # the second run trains nothing: the first one's are copied
    first = BuildSystem(tmp_path / "a", **settings, verify_cache=cache)("recurrent memory")
    assert first.n_verified == 1 and first.best is not None
    BuildSystem(tmp_path / "b", **settings, verify_cache=cache)("recurrent memory")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    trained, copied = (Store(tmp_path / run, seed_references=True).verifications() for run in "ab")
    assert not any("cached_from" in v.metrics for v in trained)
    assert len(copied) == len(trained) == 2 and all("cached_from" in v.metrics for v in copied)
    BuildSystem(tmp_path / "c", **{**settings, "seed": 4, "verify_budget": 0})("recurrent memory")
    assert _tree(tmp_path / "c")[:10] == _tree(tmp_path / "a")[:10]  # the references
    assert _tree(tmp_path / "c") != _tree(tmp_path / "a")


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _default_sigint() -> None:
    # a shell starting pytest in the background ignores SIGINT, and children inherit that; Ctrl-C needs it back
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args, run_dir):
    return subprocess.Popen([sys.executable, "-m", "model_discovery.cli", *args], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_default_sigint)


def _wait_for_running_job(proc, run_dir, done: int):
    """Until the run has ``done`` verifications finished and another one running."""
    deadline = time.time() + 180
    while time.time() < deadline:
        time.sleep(0.2)
        if (run_dir / "store.db").is_file():
            jobs = Store(run_dir).jobs()
            if sum(j.status == "done" for j in jobs) >= done and any(j.status == "running" for j in jobs):
                return
        if proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"the run never got there: {proc.stderr.read().decode()[-2000:]}")


def _processes_in(folder: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder) in os.readlink(proc / "cwd"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _wait_until_gone(run_dir: Path) -> None:
    """The kernel delivers the parent-death signals at once, but the processes take a moment to exit."""
    deadline = time.time() + 10
    while _processes_in(run_dir) and time.time() < deadline:
        time.sleep(0.1)
    assert not _processes_in(run_dir)


def test_a_run_stopped_or_killed_resumes_without_loss_or_repeats(tmp_path):
    """With two local workers: Ctrl-C stops the driver and its workers, each handing its job back; SIGKILL of the
    driver takes its workers and their trainings down with it, and the next resume takes their jobs back at once."""
    run_dir = tmp_path / "run"
    proc = _start(["discover", "memory", "--run-dir", str(run_dir), "--design-budget", "4", "--verify-budget",
                   "cpu-1m=3,cpu-2m=1", "--train-fraction", str(TINY), "--references", "llama", "--no-check",
                   "--noise-seeds", "1", "--seed", "1", "--workers", "2", "--json"], run_dir)
    _wait_for_running_job(proc, run_dir, done=0)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop, the job goes back to the queue
    assert proc.wait(60) == 130
    assert "modis evolve --run-dir" in proc.stderr.read().decode()
    assert not any(j.status == "running" for j in Store(run_dir).jobs())
    _wait_until_gone(run_dir)

    proc = _start(["evolve", "--run-dir", str(run_dir), "--resume", "--json"], run_dir)
    _wait_for_running_job(proc, run_dir, done=2)
    os.killpg(proc.pid, signal.SIGKILL)  # SIGKILL of the driver in the middle of a verification
    proc.wait()
    _wait_until_gone(run_dir)  # its worker processes and their sandboxed trainings died with it
    store = Store(run_dir)
    killed = [j for j in store.jobs() if j.status == "running"]
    assert 1 <= len(killed) <= 2  # held by the two dead workers
    designs_before = {d.name: d.content_hash for d in store.designs()}

    assert main(["evolve", "--run-dir", str(run_dir)]) == 2  # started already: --resume is required
    out = subprocess.run([sys.executable, "-m", "model_discovery.cli", "evolve", "--run-dir", str(run_dir),
                          "--resume", "--json"], env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["n_verified"] == 3 and report["n_promoted"] == 1 and report["n_designs"] >= 3
    assert {b["rung"] for b in report["leaderboards"]} == {"cpu-1m", "cpu-2m"}
    best = report["best"]
    assert best["rung"] == "cpu-2m" and Path(best["code_path"]).read_text().startswith('"""')
    assert set(best["vs_references"]) == {"llama"} and report["costs"]["cpu_s"] > 0
    assert report["budgets"] == {"cpu-1m": {"budget": 3, "used": 3}, "cpu-2m": {"budget": 1, "used": 1},
                                 "cpu-5m": {"budget": 0, "used": 0}}
    assert json.loads(Path(report["paths"]["report"]).read_text())["best"]["name"] == best["name"]
    jobs = store.jobs()
    assert {j.status for j in jobs} == {"done"}  # none stuck
    assert all(store.job(j.id).attempts >= 2 for j in killed)  # the killed jobs were taken back and finished
    rows = store.verifications()
    assert len(rows) == len(jobs) == len({(r.design_id, r.scale, r.data) for r in rows})  # none verified twice
    after = {d.name: d.content_hash for d in store.designs()}
    assert all(after[name] == digest for name, digest in designs_before.items())  # no design lost
    assert len(store.sessions()) == 4
    assert [e.message for e in store.events(kind="run")][-2:] == ["resumed", "finished"]
    assert main(["show", "--run-dir", str(run_dir), "--json"]) == 0
    shown = show_run(run_dir)
    assert {d["name"] for d in shown["designs"] if d["fitness"] is not None} >= {"llama", best["name"]}
    assert len(shown["verifications"]) == len(rows) and shown["jobs"]["done"] == len(jobs)


def test_no_minimal_pairs_and_the_token_budget_are_part_of_the_data(tmp_path):
    loop = _loop(tmp_path, blimp="none", corpus="gutenberg")
    assert loop.policy.payload("cpu-1m") == {"corpus": "gutenberg", "blimp": None, "seed": 0, "max_steps": 1,
                                      "threads": loop.policy.config.threads}
    assert loop.policy.data("cpu-1m") == "corpus=gutenberg;pairs=none;tokens=4096"
    assert loop.policy.data("cpu-2m") == "corpus=gutenberg;pairs=none;tokens=16384"  # 2 steps of 8192


def _drive(loop, metrics_of) -> list[tuple[str, str]]:
    """Plans, enqueues and 'verifies' until the loop would report; ``metrics_of(name, job)`` gives the metrics.
    Returns the (design, rung) verified, in order."""
    order = []
    for _ in range(20):
        plan = loop.plan()
        if plan.action == "report":
            return order
        loop.enqueue(plan)
        while (job := loop.store.claim("test")) is not None:
            name = loop.store.design(job.design_id).name
            loop.store.complete(job.id, "test", metrics_of(name, job), 1.0)
            order.append((name, job.scale))
    raise AssertionError("the loop never reached its report")


@pytest.mark.parametrize("better", [True, False])
def test_references_get_noise_seeds_and_a_winning_best_design_is_confirmed_with_them(tmp_path, better):
    from model_discovery.workflow.build import build_report

    loop = _loop(tmp_path, design_budget=1, verify_budget={"cpu-1m": 1}, noise_seeds=3)
    _add(loop.store, "d0001")
    ref = {0: 6.0, 1: 6.1, 2: 5.9}
    gain = 0.5 if better else -0.5
    _drive(loop, lambda name, job: {"val_loss": ref[job.payload["seed"]] - gain * (name == "d0001"), "blimp": None})
    seeds = {(loop.store.design(j.design_id).name, j.payload["seed"]) for j in loop.store.jobs()}
    assert {("llama", 0), ("llama", 1), ("llama", 2), ("d0001", 0)} <= seeds
    assert (("d0001", 1) in seeds) == better  # confirmation only for a claim the report makes
    data = loop.policy.data
    assert data("cpu-1m", 1) == data("cpu-1m") + ";seed=1" and data("cpu-1m", 0) == data("cpu-1m")
    # noise runs stay out of fitness
    assert [s.name for s in loop.policy.fitness(loop.snapshot(), "cpu-1m").scores] == ["llama", "d0001"]
    report = build_report(loop, 0.0)
    floor = report.noise["cpu-1m"]
    assert floor.losses == {"llama": [6.0, 6.1, 5.9]} and floor.std == pytest.approx(0.1)
    assert report.best.beats_every_reference == better
    if better:
        c = report.best.confirmation
        assert c.margins == pytest.approx([0.5, 0.5, 0.5]) and c.confirmed and report.best.confirmed
        assert "CONFIRMED" in report.summary() and "exact sign-flip p 0.125 (at least 0.125 with 3 seeds)" in \
            report.summary()
    else:
        assert report.best.confirmation is None and report.best.confirmed is None


def test_a_win_inside_the_noise_is_not_confirmed():
    from model_discovery.verify.noise import confirm, pooled_std

    refs = {"llama": [6.0, 6.3, 5.7], "rwkv6": [6.1, 6.0, 6.2]}
    noise = pooled_std(refs)
    assert noise == pytest.approx(((0.09 + 0.01) / 2) ** 0.5)
    small = confirm("cpu-1m", [0, 1, 2], [5.95, 5.95, 5.65], refs, noise)  # better at every seed, by < noise
    assert min(small.margins) > 0 and not small.confirmed
    mixed = confirm("cpu-1m", [0, 1, 2], [5.5, 6.4, 5.5], refs, noise)  # one seed worse: the interval spans zero
    assert mixed.low < 0 < mixed.mean and not mixed.confirmed
    assert confirm("cpu-1m", [0, 1, 2], [5.0, None, None], refs, noise) is None  # one seed: nothing to confirm


def test_a_claim_over_few_seeds_states_its_exact_bound():
    """The t-interval assumes normal margins; the exact sign-flip p-value beside it does not, and with 3 seeds it
    cannot go below 1/8, however large the margins."""
    from model_discovery.verify.noise import confirm, sign_flip_p, sign_flip_text

    refs = {"llama": [6.0, 6.1, 5.9]}
    won = confirm("cpu-1m", [0, 1, 2], [5.0, 5.2, 4.8], refs, 0.1)
    assert won.confirmed and won.p_exact == pytest.approx(1 / 8)
    assert sign_flip_p([0.5, -0.1, 0.4, 0.3]) == pytest.approx(2 / 16)  # the observed pattern and all-positive
    assert sign_flip_p([0.2, 0.2]) == pytest.approx(1 / 4) and sign_flip_p([-0.2, -0.3]) == pytest.approx(1)
    assert sign_flip_text(won.p_exact, 3) == "exact sign-flip p 0.125 (at least 0.125 with 3 seeds)"
    tied = confirm("cpu-1m", [0, 1], [5.7, 5.8], refs, 0.1)  # two margins of exactly 0.3: not an exact margin
    assert tied.margins == pytest.approx([0.3, 0.3]) and tied.low < 0 and not tied.confirmed
    assert tied.high - tied.low == pytest.approx(2 * 12.706 * 0.1 / 2 ** 0.5, rel=1e-3)  # t(1) with the noise


def test_designs_climb_from_the_mechanistic_tasks_to_the_corpus_rungs(tmp_path):
    loop = _loop(tmp_path, design_budget=4, verify_budget={"mad": 4, "cpu-1m": 1})
    assert [r.name for r in loop.policy.ladder.rungs] == ["mad", "cpu-1m", "cpu-2m", "cpu-5m"]
    assert loop.policy.config.check_scale == "cpu-1m"  # the checker still builds designs on a corpus rung
    assert DiscoveryConfig(rungs=["mad"]).resolved().check_scale == "cpu-1m"  # even when the run climbs none
    # all its steps, whatever the train fraction
    assert loop.policy.data("mad") == "corpus=mad;pairs=none;tokens=122880"
    for name in ("d0001", "d0002", "d0003", "d0004"):
        _add(loop.store, name)
    accuracy = {"llama": 0.3, "d0001": 0.2, "d0002": 0.5, "d0003": 0.25, "d0004": 0.1}

    def metrics(name, job):
        if job.scale == "mad":
            return {"val_loss": 2.0, "mad": {"by_task": {"recall": accuracy[name]}, "chance": {"recall": 1 / 16},
                                             "n_examples": 256}}
        return {"val_loss": 6.0, "blimp": None}

    order = _drive(loop, metrics)
    assert ("d0002", "cpu-1m") in order and not any(s == "cpu-1m" and n not in ("llama", "d0002") for n, s in order)
    assert loop.policy.fitness(loop.snapshot(), "mad").of("d0002").fitness > 1.0  # fitness over the task accuracies


def test_a_run_saved_before_rung_mad_climbs_the_rungs_it_started_with(tmp_path):
    from model_discovery.workflow.build import open_run

    saved = DiscoveryConfig(run_dir=tmp_path).model_dump(mode="json", exclude={"rungs", "noise_seeds"})
    (tmp_path / "config.json").write_text(json.dumps(saved))
    cfg = open_run(tmp_path).resolved()
    assert cfg.rungs == ["cpu-1m", "cpu-2m", "cpu-5m"]
    assert cfg.noise_seeds == 1  # nor did it measure a noise floor: resuming queues no seed runs


def test_budgets_and_shares_name_real_rungs_and_unnamed_rungs_keep_the_ladder_share():
    with pytest.raises(KeyError, match=r"no rung 'cpu1m'.*Did you mean cpu-1m"):
        DiscoveryConfig(verify_budget={"cpu1m": 8}).resolved()  # not a run that verifies nothing
    with pytest.raises(KeyError, match="no rung 'cpu-2n'"):
        DiscoveryConfig(train_fraction={"cpu-2n": 0.5}).resolved()
    with pytest.raises(ValueError, match="names mad, which this run does not climb"):
        DiscoveryConfig(rungs=["cpu-1m", "cpu-2m"], verify_budget={"mad": 8, "cpu-1m": 2}).resolved()
    cfg = DiscoveryConfig(corpus="gutenberg", train_fraction={"cpu-1m": 0.25}).resolved()
    assert cfg.train_fraction == {"cpu-1m": 0.25, "cpu-2m": 0.125, "cpu-5m": 0.05}
    assert DiscoveryConfig(train_fraction={"cpu-2m": 0.5}).resolved().train_fraction == {
        "cpu-1m": 0.125, "cpu-2m": 0.5, "cpu-5m": 0.125}


@pytest.mark.parametrize("known", ["llama", "gpt2", None])
def test_the_report_names_the_best_known_design_and_the_margin_against_it(tmp_path, monkeypatch, capsys, known):
    """With the ladder's table, the report lists the library's standing at the rung and says whether the best design
    beats the best known one; without a row, it says the best known design is unknown there."""
    from model_discovery.lm.baselines import BaselineTable, Standing
    from model_discovery.workflow import build

    loop = _loop(tmp_path, design_budget=1, verify_budget={"cpu-1m": 1}, references=["llama", "gpt2"],
                 rungs=["cpu-1m"])
    tokens = loop.policy.steps("cpu-1m") * loop.policy.ladder.rung("cpu-1m").batch_tokens
    losses = {"llama": [4.0, 4.1], "gpt2": [4.5, 4.4]} if known == "llama" else {"llama": [4.6], "gpt2": [4.2]}
    table = BaselineTable(ladder="cpu", standings=[Standing(corpus="synthetic", rung="cpu-1m", tokens=tokens,
                                                            losses=losses)] if known else [])
    loop.policy.table = table
    monkeypatch.setattr(build, "load_baselines", lambda ladder: table)  # what `modis show` reads
    _add(loop.store, "d0001")
    _drive(loop, lambda name, job: {"val_loss": {"llama": 6.0, "gpt2": 5.7, "d0001": 5.8}[name], "blimp": None})
    report = build.build_report(loop, 0.0)
    text = report.summary()
    if known == "llama":
        assert list(report.best_known) == ["cpu-1m"] and "cpu-1m: llama 4.050, gpt2 4.450" in text
        assert "beats the best known design (llama) by 0.200 nats" in text
        (tmp_path / "config.json").write_text(loop.policy.config.model_dump_json())
        capsys.readouterr()
        assert main(["show", "--run-dir", str(tmp_path)]) == 0
        shown = capsys.readouterr().out
        assert "library rank 1/2 at cpu-1m (best known)" in shown and "library rank 2/2 at cpu-1m" in shown
    elif known == "gpt2":
        assert "does not beat the best known design (gpt2): 0.100 nats behind it" in text
    else:
        assert report.best_known == {} and "the best known design at cpu-1m is unknown" in text
