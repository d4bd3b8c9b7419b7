"""Every page over the fixture run with Streamlit's AppTest: no exception, and the numbers the store holds."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from model_discovery.evolution.store import Store

APP = str(Path(__file__).resolve().parents[2] / "model_discovery" / "ui" / "app.py")


@pytest.fixture
def app(fixture_run, monkeypatch):
    path, _ = fixture_run
    monkeypatch.setenv("MODIS_RUN_DIR", str(path))
    monkeypatch.setenv("MODIS_RUNS", str(path.parent))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _page(at, page):
    at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _text(at) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.value for e in at.text]
    return "\n".join(map(str, parts))


def test_overview_counts_and_best(app, fixture_run):
    _, losses = fixture_run
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Designs"] == "6" and metrics["Verified (lowest rung)"] == "4"
    assert metrics["CPU time"] == f"{112 / 60:.1f} min"  # 8 verifications of 10 s, 3 with another seed, 1 stopped
    best = min((n for n in losses if n != "llama"), key=losses.get)  # promoted: the best at cpu-2m
    assert f"**{best}** at cpu-2m" in _text(app)
    assert any("cpu-1m: 5 of 5 used" in p.proto.text for p in app.get("progress"))  # the stopped one counts
    fidelity = app.dataframe[-2].value  # llama and two designs verified at both rungs
    assert list(fidelity["rungs"].unique()) == ["cpu-1m → cpu-2m"] and set(fidelity["n"]) == {3}
    assert set(fidelity["95% CI"]) == {"too few (<10)"} and all(0 < p <= 1 for p in fidelity["p"])
    noise = app.dataframe[-1].value  # llama with seeds 0 and 1 at both rungs
    assert list(noise["rung"]) == ["cpu-1m", "cpu-2m"] and list(noise["seed 1"] - noise["seed 0"]) == \
        pytest.approx([0.05, 0.05])
    assert "**Claim confirmed** at cpu-2m: margin +0.400 nats over seeds 0, 1" in _text(app)
    assert "exact sign-flip p 0.250 (at least 0.250 with 2 seeds)" in _text(app)


def test_overview_ranks_the_library_where_the_best_known_designs_were_measured(fixture_run, tmp_path, monkeypatch):
    import shutil

    path = tmp_path / "run"
    shutil.copytree(fixture_run[0], path)
    report = json.loads((path / "report.json").read_text())
    report["best_known"] = {"cpu-1m": {"corpus": "synthetic", "rung": "cpu-1m", "tokens": 1024,
                                       "losses": {"llama": [4.0, 4.2], "mamba2": [3.9, 4.1], "gpt2": [4.4]}}}
    (path / "report.json").write_text(json.dumps(report))
    monkeypatch.setenv("MODIS_RUN_DIR", str(path))
    monkeypatch.setenv("MODIS_RUNS", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    (known,) = [d.value for d in at.dataframe if "rank" in d.value.columns]
    assert list(known["design"]) == ["mamba2", "llama", "gpt2"] and list(known["rank"]) == [1, 2, 3]
    assert list(known["seeds"]) == [2, 2, 1]


def test_tree_page_lists_and_opens_designs(app):
    at = _page(app, "tree")
    assert "16 of 16 designs" in _text(at)
    at.selectbox[0].select("d0002").run()  # the fallback to a click: open it
    assert not at.exception
    assert "**d0002**" in _text(at)


def test_design_page_shows_dialog_code_checks_and_metrics(app, fixture_run):
    _, losses = fixture_run
    app.session_state["design"] = "d0001"
    at = _page(app, "design")
    assert "**d0001**" in _text(at)
    assert any("class GAB" in c.value for c in at.code)
    labels = [e.label for e in at.expander]
    assert any(label.startswith("reviewer") for label in labels) and any(label == "proposer (attempt 0)"
                                                                        for label in labels)
    values = {m.label: m.value for m in at.metric}
    assert values["held-out loss"] in {f"{losses['d0001']:.3f}", f"{losses['d0001'] - 0.5:.3f}",
                                       f"{losses['d0001'] - 0.45:.3f}"}  # the last: its confirmation's seed 1
    assert any(b.label.startswith("Queue verification at") for b in at.button) or "cpu-2m" in _text(at)


def test_design_page_shows_a_design_stopped_early(app, fixture_run):
    store = Store(fixture_run[0])
    (stopped,) = store.verifications(status="stopped")
    app.session_state["design"] = store.design(stopped.design_id).name
    at = _page(app, "design")
    assert not at.exception
    assert any("stopped early at step 8 (25% of its tokens)" in w.value for w in at.warning)


def test_leaderboard_sorts_by_fitness(app):
    at = _page(app, "leaderboard")
    table = at.dataframe[0].value
    assert table["fitness"].notna().all()  # every design verified at this rung, the promoted ones included
    assert list(table["fitness"]) == sorted(table["fitness"], reverse=True)
    assert table["reference"].sum() == 1 and len(table) == 5  # llama + 4 designs at cpu-1m
    assert table.loc[table["name"] == "llama", "fitness"].item() == pytest.approx(1.0)


def test_units_page_lists_the_catalogue_and_a_units_designs(app, fixture_run):
    from model_discovery.design.library import unit_catalogue
    from model_discovery.ui.data import load_run

    path, _ = fixture_run
    at = _page(app, "units")
    table = at.dataframe[0].value
    assert list(table["unit"]) == unit_catalogue().names()  # the fixture's sessions wrote no unit of their own
    assert set(table["origin"]) == {"library"} and table["source"].str.endswith(".py").all()
    store = Store(path)
    users = [d.name for d in store.designs("checked") if "Mamba2Mixer" in d.unit_tree().preorder()]
    fitness = load_run(path).fitness
    at_1m = [fitness[name, "cpu-1m"] for name in users if (name, "cpu-1m") in fitness]
    mamba = table.set_index("unit").loc["Mamba2Mixer"]
    assert len(users) >= 2 and (mamba["checked"], mamba["verified"]) == (len(users), len(at_1m))
    assert mamba["best cpu-1m"] == pytest.approx(max(at_1m))
    assert mamba["mean cpu-1m"] == pytest.approx(sum(at_1m) / len(at_1m))

    at.selectbox(key="unit").select("Mamba2Mixer").run()  # what a click on its row does
    assert not at.exception
    assert list(at.dataframe[1].value["name"]) == users  # its lineage: the designs that use it
    assert any("class Mamba2Mixer" in c.value for c in at.code)  # a library unit's source
    at.selectbox(key="unit_design").select(users[0]).run()
    assert not at.exception
    assert f"**{users[0]}**" in _text(at)  # on the Design page


def test_units_page_opens_the_design_that_introduced_a_unit(tmp_path, monkeypatch):
    from model_discovery.workflow.design import import_design

    import_design(Store(tmp_path, seed_references=True), "tests/fixtures/external_design.py",
                  check=False)  # a store, no run config
    monkeypatch.setenv("MODIS_RUN_DIR", str(tmp_path))
    at = _page(AppTest.from_file(APP, default_timeout=60).run(), "units")
    at.multiselect(key="origins").set_value(["imported"]).run()
    table = at.dataframe[0].value
    assert sorted(table["unit"]) == ["ConvMLP", "GatedConvMixer", "SparseGate"]
    assert set(table["introduced_by"]) == {"external_design"} and table["source"].isna().all()
    at.selectbox(key="unit").select("ConvMLP").run()
    assert list(at.dataframe[1].value["name"]) == ["external_design"]
    next(b for b in at.button if b.label == "Open external_design").click().run()
    assert not at.exception
    assert "**external_design**" in _text(at) and any("class ConvMLP" in c.value for c in at.code)


def test_library_search_finds_units(app):
    at = _page(app, "library")
    at.text_input[0].input("state space model with selective scan").run()
    assert not at.exception
    assert any("Mamba" in e.label or "mamba" in e.label for e in at.expander)


def test_launch_page_offers_a_new_run_and_the_current_one(app, fixture_run):
    at = _page(app, "launch")
    assert at.text_input[0].value == "discover me a new model"
    assert any(b.label == "Resume" for b in at.button)


def test_launch_starts_a_run_in_the_background(app, tmp_path):
    import time

    at = _page(app, "launch")
    folder = tmp_path / "launched"
    at.number_input(key="new.design_budget").set_value(1)
    at.text_input(key="new.verify_budget").input("0")
    at.number_input(key="new.workers").set_value(2)
    at.checkbox(key="new.synthesis").uncheck()
    at.text_input(key="new.run_dir").input(str(folder))
    at.button[0].click().run()
    assert not at.exception
    assert (folder / "launch.pid").is_file()
    deadline = time.time() + 120
    while not (folder / "report.json").is_file() and time.time() < deadline:
        time.sleep(1)
    log = (folder / "launch.log").read_text()
    assert (folder / "report.json").is_file(), log[-2000:]
    assert "1 designs" in log or "0 designs" in log  # the report summary, written by the background process
    config = json.loads((folder / "config.json").read_text())
    assert config["workers"] == 2 and config["synthesis"] is False
    assert "verify_budget: 0" in (folder / "run.yaml").read_text()  # the form's settings, as a run file


def test_with_no_run_the_app_offers_to_start_one(tmp_path, monkeypatch):
    monkeypatch.delenv("MODIS_RUN_DIR", raising=False)
    monkeypatch.setenv("MODIS_RUNS", str(tmp_path))  # no run under it
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("No run yet" in i.value and "Launch" in i.value for i in at.info)
