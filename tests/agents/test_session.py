"""Design sessions into a run's store: outcomes recorded, duplicates never registered, the CLI summary, imports."""

import json
import random

import pytest

from model_discovery.cli import main
from model_discovery.evolution import Store
from model_discovery.evolution.index import TreeIndex
from model_discovery.workflow.design import Designers, SessionContext, import_design, run_session
from tests.conftest import LIBRARY

FIXTURE = "tests/fixtures/external_design.py"


def offline_context(store, seed=0, prompt="", **options) -> SessionContext:
    """One offline session's context over ``store`` (what the evolve loop and ``modis design`` build)."""
    index = TreeIndex(store).refresh()
    rng = random.Random(seed)
    roles, specs = Designers(prompt=prompt).roles(rng, index.catalogue)
    return SessionContext(store, index, roles, specs, rng, prompt, **options)


def test_store_is_seeded_with_the_references(tmp_path):
    store = Store(tmp_path, seed_references=True)
    assert sorted(d.name for d in store.designs("reference")) == sorted(LIBRARY)
    Store(tmp_path, seed_references=True)  # reopening does not seed twice
    assert len(store.designs()) == len(LIBRARY)
    assert all(d.unit_tree().root for d in store.designs())  # every design is a unit tree


def test_sessions_register_only_new_designs(tmp_path):
    store = Store(tmp_path, seed_references=True)
    results = [run_session(offline_context(store, seed=i, prompt="memory", check=False)) for i in range(12)]
    hashes = [d.content_hash for d in store.designs()]
    assert len(hashes) == len(set(hashes))
    assert sum(r.outcome == "registered" for r in results) >= 8
    sessions = store.sessions()
    assert len(sessions) == 12
    roles = {turn["role"] for turn in sessions[0].dialog}
    assert {"selector", "proposer", "reviewer"} <= roles
    registered = [s for s in sessions if s.outcome == "registered"]
    assert all(s.design_id is not None for s in registered)
    assert "observer" in {t["role"] for t in registered[0].dialog}


@pytest.mark.slow  # covered by the offline sessions of tests/evolution/test_llm_evolve.py, checked in the sandbox
def test_a_session_checks_its_design_in_the_sandbox(tmp_path):
    store = Store(tmp_path, seed_references=True)
    ctx = offline_context(store, seed=5, check=True, operator="mutation",
                          select_parents=lambda names, k, rng: ["llama"][:k])
    result = run_session(ctx)
    assert result.outcome == "registered" and result.check_passed, result.reason
    (design,) = [d for d in store.designs() if d.name == result.design]
    (check,) = store.checks(design.id)
    assert check.accepted and check.params > 0
    assert design.parents == ["llama"] and design.unit_tree().name == design.name


def test_cli_design_summary(tmp_path, capsys):
    assert main(["design", "linear-time recurrent", "--n", "4", "--run-dir", str(tmp_path), "--no-check",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sessions"] == 4 and summary["cost_usd"] == 0.0 and summary["designers"] == {"offline": 4}
    assert {"accepted", "check_passed", "unique", "operators"} <= set(summary)
    assert summary["unique"] == summary["accepted"]


def test_an_imported_design_is_a_parent_and_its_units_join_the_catalogue(tmp_path, capsys):
    assert main(["import", "tests/fixtures/external_design.py", "--run-dir", str(tmp_path)]) == 0
    assert "imported external_design (checked)" in capsys.readouterr().out
    store = Store(tmp_path, seed_references=True)
    row = store.design("external_design")
    assert row.mode == "import" and store.checks(row.id)[0].accepted
    assert import_design(store, "tests/fixtures/external_design.py").id == row.id  # the same file: no second row
    index = TreeIndex(store).refresh()
    assert "external_design" in {d.name for d in index.parents()}
    assert index.catalogue.get("ConvMLP").origin == "external_design"
    result = run_session(offline_context(store, seed=1, check=False, operator="mutation",
                                         select_parents=lambda names, k, rng: ["external_design"][:k]))
    assert result.outcome == "registered" and store.design(result.design).parents == ["external_design"]


def test_seed_designs_start_the_tree_of_a_run(tmp_path):
    """`BuildSystem(...).add_design(path)` (what `modis discover --seed-design` sets): the file is in the tree
    before the first session, a parent like any design, and a resumed run does not import it twice."""
    from model_discovery import BuildSystem
    from model_discovery.cli import _given, build_parser

    args = build_parser().parse_args(["discover", "--seed-design", FIXTURE, "--seed-design", FIXTURE])
    assert _given(args) == {"seed_designs": [FIXTURE, FIXTURE]}
    system = BuildSystem(tmp_path, design_budget=1, verify_budget=0, check=False, progress=False)
    system.add_design(FIXTURE)("seeded")
    store = Store(tmp_path, seed_references=True)
    row = store.design("external_design")
    assert row.mode == "import" and row.status == "checked" and store.n_sessions() == 1  # an import is no session
    BuildSystem(tmp_path, config=system.config, progress=False)("seeded")  # resumed
    assert [d.name for d in Store(tmp_path, seed_references=True).designs()].count("external_design") == 1


def test_a_session_cut_short_inside_a_checkpointed_graph_starts_again_on_resume(tmp_path):
    """The evolve graph is checkpointed and a session graph runs inside its ``design`` node: when the process dies
    mid-session, resuming re-runs the node, and the session must start from its first step (its brief and draft
    were in the dead process's memory), not from the session's own last checkpoint."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    store = Store(tmp_path, seed_references=True)
    ctx = offline_context(store, seed=3, check=False, operator="mutation")
    review, calls = ctx.roles.review, []

    def dies_once(*args, **kwargs):  # the process "dies" between the proposal and its review
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return review(*args, **kwargs)

    ctx.roles.review = dies_once

    class Parent(TypedDict, total=False):
        outcome: str

    graph = StateGraph(Parent)
    graph.add_node("design", lambda state: {"outcome": run_session(ctx).outcome})
    graph.add_edge(START, "design")
    graph.add_edge("design", END)
    parent = graph.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "evolve"}}
    with pytest.raises(KeyboardInterrupt):
        parent.invoke({}, config)
    assert parent.invoke(None, config)["outcome"] == "registered"
    (session,) = store.sessions()
    assert session.dialog[0]["role"] == "selector"
