"""Design sessions into a run's store: outcomes recorded, duplicates never registered, the CLI summary."""

import json

from model_discovery.agents.offline import GeneticDesigner
from model_discovery.agents.session import run_session
from model_discovery.agents.spec import load_specs
from model_discovery.cli import main
from model_discovery.evolution import Store
from tests.conftest import LIBRARY


def test_store_is_seeded_with_the_references(tmp_path):
    store = Store(tmp_path)
    assert sorted(d.name for d in store.designs("reference")) == sorted(LIBRARY)
    Store(tmp_path)  # reopening does not seed twice
    assert len(store.designs()) == len(LIBRARY)


def test_sessions_register_only_new_designs(tmp_path):
    store = Store(tmp_path)
    designer = GeneticDesigner("memory", seed=0)
    results = [run_session(store, designer, load_specs(), "memory", check=False) for _ in range(12)]
    hashes = [d.content_hash for d in store.designs()]
    assert len(hashes) == len(set(hashes))
    assert sum(r.outcome == "registered" for r in results) >= 8
    sessions = store.sessions()
    assert len(sessions) == 12
    roles = {turn["role"] for turn in sessions[0].dialog}
    assert {"proposer", "reviewer"} <= roles
    registered = [s for s in sessions if s.outcome == "registered"]
    assert all(s.design_id is not None for s in registered)
    assert {"selector", "planner", "coder", "observer"} <= {t["role"] for t in registered[0].dialog}


def test_a_session_checks_its_design_in_the_sandbox(tmp_path):
    store = Store(tmp_path)
    designer = GeneticDesigner(seed=5)
    result = run_session(store, designer, load_specs(), check=True,
                         select_parents=lambda rows, n: [r for r in rows if r.name == "llama"][:n])
    assert result.outcome == "registered" and result.check_passed  # seed 5: a mutation of llama that passes
    (design,) = [d for d in store.designs() if d.name == result.design]
    (check,) = store.checks(design.id)
    assert check.accepted and check.params > 0
    assert design.parents == ["llama"]


def test_cli_design_summary(tmp_path, capsys):
    assert main(["design", "linear-time recurrent", "--n", "4", "--run-dir", str(tmp_path), "--no-check",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sessions"] == 4 and summary["cost_usd"] == 0.0
    assert {"accepted", "check_passed", "unique", "operators"} <= set(summary)
    assert summary["unique"] == summary["accepted"]
