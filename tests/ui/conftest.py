"""A fixture run for the front-end: real designs from offline sessions, verifications with known metrics (no
training), so every page has something to show and the numbers are known."""

import json
from pathlib import Path

import pytest

from model_discovery.workflow.build import DiscoveryConfig, build_report, make_loop
from model_discovery.workflow.design import run_session
from tests.agents.test_session import offline_context

PHENOMENA = ("agreement", "npi_licensing", "island_effects")


def metrics(loss: float, acc: float, params: int) -> dict:
    return {"val_loss": loss, "params": params, "tokens_per_s": 12000.0, "device": "cpu",
            "blimp": {"acc": acc, "n_pairs": 300,
                      "by_phenomenon": {p: acc + i * 0.01 for i, p in enumerate(PHENOMENA)}}}


def make_run(path: Path, sessions: int = 6) -> dict:
    """Returns {name: val_loss at cpu-1m} for what it verified."""
    cfg = DiscoveryConfig(run_dir=path, prompt="recurrent memory", references=["llama"], check=False,
                          train_fraction=0.004, design_budget=sessions,
                          verify_budget={"cpu-1m": 5, "cpu-2m": 2}, noise_seeds=2).resolved()
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(cfg.model_dump_json(indent=2))
    loop = make_loop(cfg)
    store = loop.store
    for i in range(sessions):
        run_session(offline_context(store, seed=i, prompt="recurrent memory", check=False))
    produced = [d.name for d in store.designs() if d.status != "reference"][:4]
    losses = {"llama": 5.0, **{name: 4.6 + 0.2 * i for i, name in enumerate(produced)}}
    plan = [("llama", "cpu-1m", 0), *((n, "cpu-1m", 0) for n in produced), ("llama", "cpu-2m", 0),
            (produced[0], "cpu-2m", 0), (produced[1], "cpu-2m", 0),
            ("llama", "cpu-1m", 1), ("llama", "cpu-2m", 1), (produced[0], "cpu-2m", 1)]  # noise floor, confirmation
    for name, rung, seed in plan:
        store.enqueue(store.design(name).id, rung, loop.policy.data(rung, seed), loop.policy.payload(rung, seed))
        job = store.claim("fixture")
        folder = path / "verify" / f"{name}-{rung}-{seed}"
        folder.mkdir(parents=True)
        base = losses[name] - (0.5 if rung == "cpu-2m" else 0.0) + 0.05 * seed
        (folder / "train_log.jsonl").write_text("".join(
            json.dumps({"step": s, "loss": base + 3.0 / s}) + "\n" for s in range(1, 9)))
        done = {**metrics(base, 0.7 - 0.02 * len(name) % 0.1, 1_100_000), "seed": seed}
        store.complete(job.id, "fixture", done, 10.0, artifacts=str(folder))
    loser = [d.name for d in store.designs() if d.status != "reference"][4]  # a design stopped early
    store.enqueue(store.design(loser).id, "cpu-1m", loop.policy.data("cpu-1m"), loop.policy.payload("cpu-1m"))
    job = store.claim("fixture")
    point = {"step": 8, "fraction": 0.25, "tokens": 32768, "val_loss": 6.5}
    store.complete(job.id, "fixture", {"stopped": {**point, "rule": "held-out loss 6.5000 > the worst reference's "
                                                   "5.5000 + 3 x noise 0.0500"}, "curve": [point],
                                       "train_tokens": 32768, "seed": 0}, 2.0)
    store.add_event("step", "fixture built")
    build_report(loop, wall_s=60.0)  # report.json and fidelity.png, as a finished run leaves them
    return losses


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("ui") / "run"
    return path, make_run(path)
