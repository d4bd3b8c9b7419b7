"""Screenshots of every front-end page over a run, in a headless Chromium:

    python scripts/screenshots.py RUN_DIR OUT_DIR [--design NAME]

Starts ./run_demo.sh on a free port, visits Overview, Tree, Design (the best design, or --design), Leaderboard,
Library (with a search) and Launch, and fails if any page shows a Streamlit exception.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--design", default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from model_discovery.ui.serve import serve

    report = args.run_dir / "report.json"
    design = args.design or (json.loads(report.read_text())["best"] or {}).get("name") if report.is_file() else None
    args.out.mkdir(parents=True, exist_ok=True)
    with serve(args.run_dir) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                        args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            views = [("overview", ""), ("tree", "tree"), ("design", f"design?design={design or ''}"),
                     ("leaderboard", "leaderboard"), ("units", "units"), ("library", "library"),
                     ("launch", "launch")]
            for name, path in views:
                page.goto(f"{url}/{path}")
                page.wait_for_selector("[data-testid='stMainBlockContainer'] h1", timeout=60_000)
                if name == "library":
                    page.get_by_label("Search designs, units and paper notes").fill("selective state space")
                    page.keyboard.press("Enter")
                    page.wait_for_timeout(1000)
                page.wait_for_timeout(1000)
                page.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=90_000)
                page.wait_for_timeout(2000)  # plotly draws after the script is done
                if page.locator("[data-testid='stException']").count():
                    raise SystemExit(f"{name}: the page shows an exception")
                page.screenshot(path=str(args.out / f"{name}.png"), full_page=True)
                print(f"wrote {args.out / f'{name}.png'}")
            browser.close()

if __name__ == "__main__":
    main()
