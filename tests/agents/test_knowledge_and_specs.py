"""Knowledge engine (BM25 over notes, designs, units) and strict agent specs."""

import pytest

from model_discovery.agents.knowledge import KnowledgeBase, arxiv_search
from model_discovery.agents.spec import load_spec, load_specs
from model_discovery.design.library import library_root


def test_at_least_twenty_paper_notes():
    notes = list((library_root() / "papers").glob("*.md"))
    assert len(notes) >= 20
    assert all(n.read_text().startswith("# ") for n in notes)


@pytest.mark.parametrize("query,expected", [("mixture of experts load balancing", "switch_moe"),
                                            ("rotary position embedding", "rope"),
                                            ("selective state space scan", "mamba"),
                                            ("test-time training hidden state", "ttt")])
def test_search_finds_the_right_note(query, expected):
    names = [h.document.name for h in KnowledgeBase().search(query, 3, {"paper"})]
    assert expected in names


def test_search_covers_designs_and_units():
    kinds = {h.document.kind for h in KnowledgeBase().search("retention decay recurrent", 10)}
    assert {"paper", "design", "unit"} <= kinds


def test_online_search_fails_soft_on_an_unreachable_server(monkeypatch):
    import time

    monkeypatch.setattr("model_discovery.agents.knowledge.ARXIV_API", "http://127.0.0.1:9/api/query")  # closed port
    start = time.perf_counter()
    assert arxiv_search("mamba", timeout=1.0) == []
    assert time.perf_counter() - start < 5


def test_specs_are_strict_and_have_the_thresholds(tmp_path):
    specs = load_specs()
    assert specs["reviewer"].accept_threshold == 4 and specs["observer"].accept_threshold == 3
    assert all(s.backend == "offline" for s in specs.values())
    (tmp_path / "coder.yaml").write_text("backend: offline\ntemprature: 0.2\n")
    with pytest.raises(ValueError, match="temprature"):
        load_spec("coder", tmp_path)
    with pytest.raises(ValueError, match="roles are"):
        load_spec("critic", tmp_path)
