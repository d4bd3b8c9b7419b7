"""The Tree and Leaderboard pages with 2,000 designs in the store stay responsive (scripts/bench_ui.py prints
the figures; the bound here is loose, to catch a page that went quadratic, not to time it)."""

import importlib.util
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench_ui", ROOT / "scripts" / "bench_ui.py")
bench_ui = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_ui)


def test_tree_and_leaderboard_with_2000_designs(tmp_path, monkeypatch):
    bench_ui.build(tmp_path / "run", 2000)
    monkeypatch.setenv("MODIS_RUN_DIR", str(tmp_path / "run"))
    for page in ("tree", "leaderboard"):
        at = AppTest.from_file(str(ROOT / "model_discovery" / "ui" / "app.py"), default_timeout=120)
        at.run()
        at.switch_page(f"views/{page}.py")
        start = time.perf_counter()
        at.run()
        assert not at.exception, at.exception
        assert time.perf_counter() - start < 30
    assert "2010 of 2010 designs" in "\n".join(c.value for c in AppTest.from_file(
        str(ROOT / "model_discovery" / "ui" / "app.py")).run().switch_page("views/tree.py").run().caption)
