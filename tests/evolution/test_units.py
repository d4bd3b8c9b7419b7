"""Which inventions pay: the catalogue's units with their origin, the designs that use them and their fitness
(``unit_uses``, ``modis show --units``), over a small run with a unit of every origin and known metrics."""

import json

import pytest

from model_discovery.agents import grammar
from model_discovery.cli import main
from model_discovery.design.library import library_tree, unit_catalogue
from model_discovery.design.tree import UnitTree
from model_discovery.evolution.store import Store, design_fields
from model_discovery.workflow.build import DiscoveryConfig, make_loop
from model_discovery.workflow.design import import_design
from model_discovery.workflow.units import unit_uses
from tests.ui.conftest import metrics

FIXTURE = "tests/fixtures/external_design.py"


def _llm_tree(name: str, unit: str) -> UnitTree:
    """llama with its GatedMLP rewritten as ``unit`` (what an LLM coder's unit looks like in the store)."""
    tree = library_tree("llama")
    old = tree.units["GatedMLP"]
    source = old.source.replace("return self.down_proj(", "return 0.5 * self.down_proj(").replace("GatedMLP", unit)
    spec = old.model_copy(update={"name": unit, "source": source, "origin": name})
    return tree.model_copy(update={"name": name}).graft("GatedMLP", UnitTree(name=unit, root=unit, units={unit: spec}))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run with llama verified, and four designs: an import (ConvMLP, SparseGate), a synthesized mixer, an LLM's
    new unit, and an LLM's unit under a name the library has (GatedMLP, joining as GatedMLP_clash); a fifth failed
    its check. Returns the run folder and the fitness of each verified design at cpu-1m."""
    path = tmp_path_factory.mktemp("units") / "run"
    path.mkdir()
    cfg = DiscoveryConfig(run_dir=path, prompt="units", references=["llama"], check=False,
                          verify_budget={"cpu-1m": 4}).resolved()
    (path / "config.json").write_text(cfg.model_dump_json(indent=2))
    loop = make_loop(cfg, designing=False)
    store = loop.store
    import_design(store, FIXTURE, check=False)
    gene = grammar.decode(grammar.SHORT_CONV)
    syn = library_tree("llama").model_copy(update={"name": "syn"}).graft(
        "CausalAttention", UnitTree(name=gene.name, root=gene.name, units={gene.name: gene}))
    for tree, status in ((syn, "checked"), (_llm_tree("tuned", "TunedMLP"), "checked"),
                         (_llm_tree("clash", "GatedMLP"), "checked"), (_llm_tree("broken", "BrokenMLP"),
                                                                       "check_failed")):
        store.add_design(**design_fields(tree), parents=["llama"], mode="mutation", status=status)
    for name, loss in (("llama", 5.0), ("external_design", 4.6), ("syn", 4.8), ("tuned", 5.2)):
        store.enqueue(store.design(name).id, "cpu-1m", loop.policy.data("cpu-1m"), loop.policy.payload("cpu-1m"))
        job = store.claim("test")
        store.complete(job.id, "test", {**metrics(loss, 0.7, 1_000_000), "seed": 0}, 1.0)
    report = loop.policy.fitness(loop.snapshot(), "cpu-1m")
    return path, {s.name: s.fitness for s in report.scores}


def test_every_unit_with_its_origin_designs_and_fitness(run):
    path, fitness = run
    rows = {r["unit"]: r for r in unit_uses(path)}
    library = unit_catalogue().names()
    assert list(rows)[:len(library)] == library  # the catalogue's order: the library first
    syn = next(n for n in rows if n.startswith("Syn_"))
    assert {n: (rows[n]["origin"], rows[n]["introduced_by"]) for n in rows if n not in library} == {
        "GatedConvMixer": ("imported", "external_design"), "SparseGate": ("imported", "external_design"),
        "ConvMLP": ("imported", "external_design"),
        syn: ("synthesized", "syn"), "TunedMLP": ("LLM", "tuned"), "GatedMLP_clash": ("LLM", "clash")}
    assert "BrokenMLP" not in rows  # its design failed the check: never in the catalogue

    conv = rows["ConvMLP"]
    assert (conv["checked"], conv["verified"], conv["designs"]) == (1, 1, ["external_design"])
    assert conv["best cpu-1m"] == conv["mean cpu-1m"] == pytest.approx(fitness["external_design"])
    assert conv["source"] is None and set(conv) >= {"best cpu-1m", "mean cpu-1m"}
    assert not any(key.endswith("cpu-2m") for key in conv)  # no rung without verifications
    assert rows["GatedMLP_clash"]["designs"] == ["clash"] and rows["GatedMLP_clash"]["verified"] == 0
    assert rows["GatedMLP_clash"]["best cpu-1m"] is None

    attention = rows["CausalAttention"]  # llama (a reference) aside; syn replaced it
    assert attention["designs"] == ["tuned", "clash"] and attention["verified"] == 1
    norm = rows["RMSNorm"]  # every design of llama's shape: syn, tuned and clash (the import has its own)
    assert norm["designs"] == ["syn", "tuned", "clash"] and (norm["checked"], norm["verified"]) == (3, 2)
    assert norm["best cpu-1m"] == pytest.approx(max(fitness["syn"], fitness["tuned"]))
    assert norm["mean cpu-1m"] == pytest.approx((fitness["syn"] + fitness["tuned"]) / 2)
    assert fitness["syn"] > fitness["tuned"]  # lower held-out loss
    assert norm["source"].endswith("library/units/RMSNorm.py")
    assert rows["GatedMLP"]["designs"] == ["syn"]  # tuned and clash rewrote it
    assert rows["TTTLinear"]["checked"] == 0 and rows["TTTLinear"]["designs"] == []


def test_show_units_prints_the_table_and_its_json(run, capsys):
    path, fitness = run
    assert main(["show", "--run-dir", str(path), "--units"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["unit", "slot", "origin", "introduced", "by", "checked", "verified", "cpu-1m",
                                "best/mean", "source"]
    conv = next(line for line in lines if line.startswith("ConvMLP "))
    value = f"{fitness['external_design']:.3f}"
    assert conv.split() == ["ConvMLP", "channel_mixer", "imported", "external_design", "1", "1", f"{value}/{value}",
                            "-"]
    rms = next(line for line in lines if line.startswith("RMSNorm "))
    assert rms.split()[3:6] == ["-", "3", "2"] and rms.split()[-1].endswith("library/units/RMSNorm.py")
    assert len(lines) == 1 + len(unit_catalogue().names()) + 6

    assert main(["show", "--run-dir", str(path), "--units", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == unit_uses(path)


def test_a_store_without_a_run_config_lists_units_without_rungs(tmp_path):
    # what `modis import` leaves: a store, no config
    import_design(Store(tmp_path, seed_references=True), FIXTURE, check=False)
    conv = next(r for r in unit_uses(tmp_path) if r["unit"] == "ConvMLP")
    assert conv == {"unit": "ConvMLP", "slot": "channel_mixer", "origin": "imported",
                    "introduced_by": "external_design", "checked": 1, "verified": 0, "source": None,
                    "designs": ["external_design"]}
