"""Do runs grow the same tree? Compares what each run folder's store decided — designs (parents, content, checker
verdicts and reasons), jobs, verification losses, budgets used — and prints their wall times side by side.

    python scripts/compare_runs.py RUN_DIR RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_discovery.evolution.store import Store  # noqa: E402


def outcome(run_dir: Path) -> dict:
    store = Store(run_dir)
    names = {d.id: d.name for d in store.designs()}
    checks = {c.design_id: c for c in store.checks()}
    report = json.loads((run_dir / "report.json").read_text()) if (run_dir / "report.json").is_file() else {}
    return {
        "designs": [(d.name, tuple(d.parents), d.content_hash[:12], d.status) for d in store.designs()
                    if d.status != "reference"],
        "verdicts": sorted((names.get(i, i), c.accepted, tuple(sorted({f["check"] for f in c.findings
                                                                        if f.get("severity") == "error"})))
                           for i, c in checks.items() if i in names),
        "jobs": sorted((names[j.design_id], j.scale, j.data, j.status) for j in store.jobs()),
        "losses": sorted((names[v.design_id], v.scale, v.data, round(v.metrics["val_loss"], 6))
                         for v in store.verifications()),
        "budgets": report.get("budgets"),
        "wall_s": report.get("wall_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    runs = {str(r): outcome(r) for r in args.runs}
    first = next(iter(runs.values()))
    for key in ("designs", "verdicts", "jobs", "losses", "budgets"):
        same = all(o[key] == first[key] for o in runs.values())
        print(f"{key:<9} {'same' if same else 'DIFFERENT'} ({len(first[key] or [])} entries)")
        if not same:
            for name, o in runs.items():
                print(f"  {name}: {o[key]}")
    print("designs:", *(f"{n} <- {','.join(p)} [{s}]" for n, p, _, s in first["designs"]), sep="\n  ")
    for name, o in runs.items():
        print(f"wall {o['wall_s']:.0f} s  {name}" if o["wall_s"] else f"wall ?  {name}")


if __name__ == "__main__":
    main()
