"""Executors: verifications running side by side with design sessions, in local worker processes and in Ray actors,
all claiming from the store's queue; the same seed grows the same tree as an inline run."""

import os

import pytest

from model_discovery import BuildSystem
from model_discovery.evolution.executors import make_executor, verify_through_queue
from model_discovery.evolution.store import Store

TINY = 0.004  # of each rung's tokens: 1 step at cpu-1m, 2 at cpu-2m
RUN = dict(design_budget=4, verify_budget={"cpu-1m": 3, "cpu-2m": 1}, references=["llama"], train_fraction=TINY,
           check=False, seed=2, progress=False, lookahead=1, noise_seeds=1)


def _intervals(store: Store) -> list[tuple[float, float, str]]:
    return sorted((j.started, j.finished, j.worker) for j in store.jobs() if j.status == "done")


def _overlapping(intervals) -> bool:
    return any(a_end > b_start and a_worker != b_worker
               for i, (_, a_end, a_worker) in enumerate(intervals) for b_start, _, b_worker in intervals[i + 1:])


# a run whose later sessions draw parents by fitness, with promotions: what the schedule must keep deterministic
SAME = {**RUN, "design_budget": 6, "verify_budget": {"cpu-1m": 4, "cpu-2m": 2}, "lookahead": 2, "threads": 1,
        "seed": 5}


def _outcome(run_dir):
    """Everything a run decides: the tree (parents, content, verdicts), the jobs, their results."""
    store = Store(run_dir)
    names = {d.id: d.name for d in store.designs()}
    tree = [(d.name, tuple(d.parents), d.mode, d.content_hash, d.status) for d in store.designs()]
    jobs = sorted((names[j.design_id], j.scale, j.data, j.status) for j in store.jobs())
    losses = sorted((names[v.design_id], v.scale, v.data, v.metrics["val_loss"]) for v in store.verifications())
    return tree, jobs, losses


@pytest.fixture(scope="module")
def inline_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("inline")
    return run_dir, BuildSystem(run_dir, **SAME)("memory")


def _same_as_inline(run_dir, report, inline_run) -> None:
    """The same seed grows the same tree whatever executes it: designs, parents, verdicts, jobs, budgets."""
    inline_dir, inline = inline_run
    (tree, jobs, losses), (inline_tree, inline_jobs, inline_losses) = _outcome(run_dir), _outcome(inline_dir)
    assert tree == inline_tree and jobs == inline_jobs
    # the same threads train the same sums (up to MKL's alignment-dependent paths: see the README)
    assert [row[:3] for row in losses] == [row[:3] for row in inline_losses]
    assert [row[3] for row in losses] == pytest.approx([row[3] for row in inline_losses], rel=1e-5)
    assert report.budgets == inline.budgets and report.n_promoted == inline.n_promoted >= 1
    assert sum(s == "done" for *_, s in jobs) == len(losses) > 6


def test_local_workers_verify_side_by_side_and_grow_the_inline_tree(tmp_path, inline_run):
    report = BuildSystem(tmp_path / "two", workers=2, executor="local", **SAME)("memory")
    store = Store(tmp_path / "two")
    intervals = _intervals(store)
    assert len({w for _, _, w in intervals}) == 2  # both worker processes verified
    assert _overlapping(intervals), intervals  # ... at the same time
    assert all(w.split(":")[-1] != str(os.getpid()) for _, _, w in intervals)  # none in this process
    assert [e.data["executor"] for e in store.events(kind="run") if "executor" in e.data] == ["local"]
    assert not any(j.status in ("queued", "running") for j in store.jobs())
    assert (tmp_path / "two" / "logs" / "worker-0.log").is_file()
    rows = store.verifications()
    assert len(rows) == len(store.jobs()) == len({(r.design_id, r.scale, r.data) for r in rows})
    _same_as_inline(tmp_path / "two", report, inline_run)


def test_the_inline_executor_refuses_more_than_one_worker(tmp_path):
    with pytest.raises(ValueError, match="one verification at a time"):
        BuildSystem(tmp_path, workers=2, executor="inline")
    with pytest.raises(KeyError, match="Did you mean"):
        make_executor("locale", Store(tmp_path, seed_references=True), tmp_path)


def test_ray_actors_run_the_queue_and_grow_the_inline_tree(tmp_path, local_ray, inline_run):
    report = BuildSystem(tmp_path / "run", workers=2, executor="ray", **SAME)("memory")
    _same_as_inline(tmp_path / "run", report, inline_run)
    store = Store(tmp_path / "run")
    workers = {v.worker for v in store.verifications()}
    assert workers and all(w.startswith("ray-") for w in workers), workers  # recorded with the actors' names
    assert local_ray.is_initialized()  # a Ray the caller started is left running
    metrics = verify_through_queue("gpt2", "cpu-1m", "ray", out=tmp_path / "one", blimp=None, max_steps=1)
    assert metrics["worker"].startswith("ray-0@") and metrics["train_tokens"] == 4096
    again = verify_through_queue("gpt2", "cpu-1m", "ray", out=tmp_path / "one", blimp=None, max_steps=1)
    assert again["val_loss"] == metrics["val_loss"]  # the job is done once
    assert len(Store(tmp_path / "one").jobs()) == 1


def test_a_local_worker_stopped_by_a_full_disk_stops_the_run_with_its_reason(tmp_path):
    """Not restarted three times: another worker would hit the same disk."""
    import subprocess

    pool = make_executor("local", Store(tmp_path, seed_references=True), tmp_path, workers=1)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "worker-0.log").write_text(
        f"job 1 ...\nmodis: no space left on the device of {tmp_path}: job 3 stopped. Free space there and run again\n")
    pool.procs, pool.names = [subprocess.Popen(["true"])], ["host:1"]
    pool.procs[0].wait()
    reason = f"^no space left on the device of {tmp_path}: job 3 stopped.*local worker 0"
    with pytest.raises(RuntimeError, match=reason):
        pool.check()
