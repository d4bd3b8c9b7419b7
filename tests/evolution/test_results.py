"""The published page of a run (``modis results``): over a small run with known metrics, its margins over the best
known design, the noise they must clear, the confirmation, transfer, the best found against compute and whether an
invention beat the best known design."""

import math

import pytest

from model_discovery.agents import grammar
from model_discovery.cli import main
from model_discovery.design.library import library_tree
from model_discovery.design.tree import UnitTree
from model_discovery.evolution.store import design_fields
from model_discovery.workflow.build import DiscoveryConfig, make_loop
from model_discovery.workflow.results import margin_interval, wall_time, write_results
from tests.ui.conftest import metrics

NOISE = (0.0, 0.01, -0.01)  # the references' losses at the three seeds, around their seed-0 loss


def _verify(store, policy, name, rung, seed, loss, bpb):
    store.enqueue(store.design(name).id, rung, policy.data(rung, seed), policy.payload(rung, seed))
    job = store.claim("test")
    store.complete(job.id, "test", {**metrics(loss, 0.7, 1_000_000), "seed": seed,
                                    "transfer": {"tinyshakespeare": {"bpb": bpb}}}, 60.0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """llama and the best known design (from the shipped table) at both rungs and three seeds; ``syn`` (a
    synthesized mixer) beats the best known design by 0.3 nats at both rungs, confirmed over the seeds at cpu-2m;
    ``plain`` (library units only) loses by 0.1."""
    path = tmp_path_factory.mktemp("results") / "run"
    path.mkdir()
    cfg = DiscoveryConfig(run_dir=path, prompt="results", check=False, rungs=["cpu-1m", "cpu-2m"]).resolved()
    (path / "config.json").write_text(cfg.model_dump_json(indent=2))
    loop = make_loop(cfg, designing=False)
    store, policy = loop.store, loop.policy
    best = policy.best_known()["cpu-1m"].best
    gene = grammar.decode(grammar.SHORT_CONV)
    syn = library_tree("llama").model_copy(update={"name": "syn"}).graft(
        "CausalAttention", UnitTree(name=gene.name, root=gene.name, units={gene.name: gene}))
    store.add_design(**design_fields(syn), parents=["llama"], mode="mutation", status="checked")
    plain = library_tree("llama").model_copy(update={"name": "plain"})
    mlp = plain.units["GatedMLP"]
    plain.units["GatedMLP"] = mlp.model_copy(update={"args": {**mlp.args, "mlp_ratio": 3.0}})
    store.add_design(**design_fields(plain), parents=["llama"], mode="mutation", status="checked")
    for rung, base in (("cpu-1m", 5.0), ("cpu-2m", 4.5)):
        for seed, eps in enumerate(NOISE):
            _verify(store, policy, "llama", rung, seed, base + 0.2 + eps, 2.2)
            _verify(store, policy, best, rung, seed, base + eps, 2.0)
        _verify(store, policy, "syn", rung, 0, base - 0.3, 1.9)
        _verify(store, policy, "plain", rung, 0, base + 0.1, 2.1)
    for seed in (1, 2):
        _verify(store, policy, "syn", "cpu-2m", seed, 4.5 - 0.3 + NOISE[seed], 1.9)
    store.add_event("run", "started")
    store.add_event("run", "finished")
    return path, best, gene.name


def test_the_page_states_margins_over_the_best_known_design_with_the_noise_they_clear(run, tmp_path):
    path, best, unit = run
    page = write_results(path, tmp_path / "results.md").read_text()
    noise = 0.01  # the pooled std of NOISE over two references
    half = margin_interval(noise)
    assert half == pytest.approx(1.96 * math.sqrt(2) * 0.01)
    assert f"the held-out loss of **{best}** (the best known design, 5.0000)" in page
    syn_row = next(line for line in page.splitlines() if line.startswith("| 1 | syn |"))
    assert f"+0.300 ± {half:.3f} | yes | {unit} (synthesized)" in syn_row
    plain_row = next(line for line in page.splitlines() if line.startswith("| 2 | plain |"))
    assert f"-0.100 ± {half:.3f} | no | - |" in plain_row
    assert "- `syn`: `PreNormBlock(" in page and unit in page.split("- `syn`:")[1].splitlines()[0]
    assert f"**confirmation of syn** over seeds 0, 1, 2: margin +0.300 nats over {best}" in page
    assert "CONFIRMED" in page.split("**confirmation of syn**")[1].splitlines()[0]
    assert "| syn | 1.9000 (-0.1000) |" in page  # transfer against the best known design's bits per byte
    assert "**Designs with an invented unit that beat the best known design beyond noise (one seed):** syn at cpu-1m" \
        in page
    assert "| 1 | syn |" in page.split("## Top designs at cpu-2m")[1]
    curve = page.split("## Best design found against compute")[1]
    assert "| 4.5" not in curve and "| 5.1000 | plain |" not in curve  # plain was verified after syn: not a new best
    assert "| 4.7000 | syn |" in curve
    assert (tmp_path / "results-best-found.png").stat().st_size > 1000
    assert "model's card" not in page  # none asked for


def test_the_wall_time_adds_the_sessions_of_a_resumed_run():
    class E:
        def __init__(self, message, created, kind="run"):
            self.kind, self.message, self.created = kind, message, created

    killed_then_resumed = [E("started", 0.0), E("x", 50.0, "step"), E("resumed", 100.0), E("finished", 130.0)]
    assert wall_time(killed_then_resumed) == 80.0
    assert wall_time([E("started", 10.0), E("x", 25.0, "step")]) == 15.0  # still going


def test_modis_results_writes_the_page_or_says_why_not(run, tmp_path, capsys):
    path, _, _ = run
    assert main(["results", "--run-dir", str(path), "--out", str(tmp_path / "r.md"), "--top", "1"]) == 0
    page = (tmp_path / "r.md").read_text()
    assert "| 2 | plain |" not in page
    assert "## The exported best model's card" in page and "(no model card:" in page  # no files to export here
    assert main(["results", "--run-dir", str(tmp_path / "nothing")]) == 2
    assert "holds no run" in capsys.readouterr().err
