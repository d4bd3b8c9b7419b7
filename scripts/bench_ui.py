"""How the front-end scales: a store with N designs (default 2,000) and verifications for half of them, then the
time to load the run, build the tree figure, and render the Tree and Leaderboard pages (Streamlit's AppTest, and,
with --browser, a real headless Chromium until the plot is drawn).

    python scripts/bench_ui.py [--designs 2000] [--browser]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(path: Path, n: int, seed: int = 0) -> None:
    from model_discovery.evolution.store import DesignRow, VerificationRow
    from model_discovery.workflow.build import DiscoveryConfig, make_loop

    cfg = DiscoveryConfig(run_dir=path, references=["llama"], check=False).resolved()
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(cfg.model_dump_json(indent=2))
    loop = make_loop(cfg)
    rng = random.Random(seed)
    names = [d.name for d in loop.store.designs()]
    tree = loop.store.design("llama").tree
    rows = []
    for i in range(1, n + 1):
        name = f"d{i:04d}"
        parents = rng.sample(names, 2 if rng.random() < 0.3 else 1)
        rows.append(DesignRow(name=name, tree=tree, source=f"# {name}", content_hash=f"h{i}", parents=parents,
                              mode="crossover" if len(parents) == 2 else "mutation",
                              status="checked" if rng.random() < 0.9 else "check_failed"))
        names.append(name)
    with loop.store.session() as s:
        s.add_all(rows)
    ids = {d.name: d.id for d in loop.store.designs()}
    verified = ["llama", *rng.sample([r.name for r in rows if r.status == "checked"], n // 2)]
    with loop.store.session() as s:
        for name in verified:
            loss = 5.0 + rng.gauss(0, 0.3)
            s.add(VerificationRow(design_id=ids[name], scale="cpu-1m", data=loop.policy.data("cpu-1m"), status="done",
                                  metrics={"val_loss": loss, "params": rng.randint(900_000, 1_300_000),
                                           "blimp": {"acc": 0.6 + rng.gauss(0, 0.02)}}, wall_s=20.0))
    loop.store.add_event("step", "bench store built")


def timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<44}{time.perf_counter() - t0:8.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=2000)
    parser.add_argument("--browser", action="store_true", help="also time a headless Chromium")
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    from model_discovery.ui.data import load_run
    from model_discovery.ui.tree import figure

    path = Path(tempfile.mkdtemp(prefix="modis-bench-ui-")) / "run"
    timed(f"build a store with {args.designs} designs", lambda: build(path, args.designs))
    run = timed("load_run", lambda: load_run(path))
    timed("tree figure", lambda: figure(run.designs).to_json())
    os.environ["MODIS_RUN_DIR"] = str(path)
    app = str(ROOT / "model_discovery" / "ui" / "app.py")
    for page in ("tree", "leaderboard"):
        at = AppTest.from_file(app, default_timeout=120)
        at.run()
        at.switch_page(f"views/{page}.py")
        timed(f"{page} page (AppTest, first render)", at.run)
        assert not at.exception, at.exception
        timed(f"{page} page (AppTest, rerun)", at.run)
    if args.browser:
        browser_time(path)
    shutil.rmtree(path.parent)


def browser_time(path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from model_discovery.ui.serve import serve

    with serve(path) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/")
        page.wait_for_selector("text=Overview", timeout=60_000)
        for view in ("tree", "leaderboard", "tree"):  # the second tree visit has plotly's code cached
            t0 = time.perf_counter()
            page.goto(f"{url}/{view}")
            page.wait_for_selector(".js-plotly-plot", timeout=120_000)
            print(f"{view + ' page in Chromium, until the plot is drawn':<44}{time.perf_counter() - t0:8.2f} s")
        browser.close()


if __name__ == "__main__":
    main()
