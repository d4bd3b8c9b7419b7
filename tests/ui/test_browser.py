"""End to end in a real headless Chromium: ./run_demo.sh serves the fixture run, the tree page draws, a click on a
node opens that design's page; screenshots are saved. Skips with the reason where Chromium or Playwright is
missing (.ci/run installs Debian's chromium)."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def demo(fixture_run):
    from model_discovery.ui.serve import serve

    with serve(fixture_run[0]) as url:
        yield url


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium; .ci/run does)")
def test_open_the_tree_and_follow_a_design(demo, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    shots = Path(os.environ.get("MODIS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{demo}/tree")
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "tree.png"), full_page=True)
        # the node of d0003, in page pixels, from plotly's own axes
        x, y = page.evaluate("""() => {
            const gd = document.querySelector('.js-plotly-plot');
            const trace = gd._fullData.find(t => t.customdata && Array.from(t.customdata).includes('d0003'));
            const i = Array.from(trace.customdata).indexOf('d0003');
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
            return [box.left + xa.l2p(trace.x[i]), box.top + ya.l2p(trace.y[i])];
        }""")
        page.mouse.click(x, y)
        page.wait_for_url("**/design**", timeout=30_000)
        page.wait_for_selector("text=d0003", timeout=30_000)
        page.wait_for_timeout(1000)
        assert page.locator("text=made by").first.is_visible()
        page.screenshot(path=str(shots / "design.png"), full_page=True)
        assert not page.locator("[data-testid='stException']").count()
        browser.close()
