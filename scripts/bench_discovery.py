"""Does the selector find better designs than random search, and does operator synthesis help? The same discovery
run — same designer, references, ladder and budgets — for each variant (a selector, and ``/off`` for synthesis off)
and several seeds; prints the best design each run found (fitness at the lowest rung, held-out loss and fitness at
the highest rung any design reached, and the best reference's loss there), the means over seeds, and draws
best-so-far curves (best fitness at the lowest rung against designs verified there).

    python scripts/bench_discovery.py [--out runs/bench-discovery] [--variants quadrant,ucb,random,quadrant/off]
        [--seeds 0,1,2] [--corpus gutenberg] [--design-budget 4] [--verify-budget cpu-1m=4] ...

Runs already in --out are resumed, not repeated, so an interrupted benchmark continues where it stopped. The
defaults take about 90 minutes on 2 cores (nine runs of 9.9 minutes measured: 4 checked sessions and 5
verifications at half of cpu-1m's tokens on Gutenberg); they are small, so larger settings go by flags. With no
$MODIS_DATA_DIR the corpus falls back to the built-in synthetic one. Prints `mean_best_lowest_<selector>=X`
lines for scripts to read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from statistics import fmean, stdev

from model_discovery.cli import per_rung
from model_discovery.workflow.build import BuildSystem, make_loop, open_run


def run_one(out: Path, variant: str, seed: int, settings: dict) -> dict:
    """One discovery run (resumed if its folder holds one); what it found. ``variant``: a selector, with ``/off``
    for synthesis off."""
    selector, _, synthesis = variant.partition("/")
    if synthesis not in ("", "on", "off"):
        raise ValueError(f"variant {variant!r}: write SELECTOR or SELECTOR/off")
    run_dir = out / f"{variant.replace('/', '-')}-seed{seed}"
    start = time.perf_counter()
    report = BuildSystem(run_dir, selector=selector, seed=seed, progress=False, synthesis=synthesis != "off",
                         **settings)("benchmark")
    loop = make_loop(open_run(run_dir).resolved(), designing=False)
    index = loop.index.refresh()
    lowest = loop.ladder.rungs[0].name
    fitness = loop.fitness(lowest)
    by_name = {s.name: s.fitness for s in fitness.scores} if fitness else {}
    order = [index.by_id[v.design_id].name for v in loop.store.verifications(scale=lowest, data=loop.data(lowest))
             if not index.by_id[v.design_id].reference]
    curve, best = [], float("-inf")
    for name in order:
        best = max(best, by_name.get(name, float("-inf")))
        curve.append(best)
    top = next((b for b in reversed(report.leaderboards) if any(not e.reference for e in b.entries)), None)
    mine = [e for e in top.entries if not e.reference] if top else []
    refs = [e for e in top.entries if e.reference] if top else []
    return {"selector": variant, "seed": seed, "run_dir": str(run_dir), "wall_s": time.perf_counter() - start,
            "best_lowest": curve[-1] if curve else None, "curve": curve, "top_rung": top.rung if top else None,
            "best_top_loss": min(e.val_loss for e in mine) if mine else None,
            "best_top_fitness": max(e.fitness for e in mine) if mine else None,
            "reference_top_loss": min(e.val_loss for e in refs) if refs else None}


def _mean(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    spread = f" ± {stdev(values):.3f}" if len(values) > 1 else ""
    return f"{fmean(values):.3f}{spread}"


def table(results: list[dict]) -> str:
    keys = ("best_lowest", "best_top_loss", "best_top_fitness", "reference_top_loss")
    lines = [f"{'variant':<14}{'seed':>5}{'best fitness (lowest)':>23}{'top rung':>10}{'best loss':>11}"
             f"{'best fitness':>14}{'ref. loss':>11}{'min':>6}"]
    for r in results:
        cells = [("-" if r.get(k) is None else f"{r[k]:.3f}") for k in keys]
        lines.append(f"{r['selector']:<14}{r['seed']:>5}{cells[0]:>23}{r['top_rung'] or '-':>10}{cells[1]:>11}"
                     f"{cells[2]:>14}{cells[3]:>11}{r['wall_s'] / 60:>6.1f}")
    lines.append("")
    lines.append(f"{'variant':<14}{'mean best fitness (lowest)':>28}{'mean best loss (top)':>24}"
                 f"{'mean best fitness (top)':>26}{'mean ref. loss':>17}")
    for selector in dict.fromkeys(r["selector"] for r in results):
        mine = [r for r in results if r["selector"] == selector]
        means = [_mean([r.get(k) for r in mine]) for k in keys]
        lines.append(f"{selector:<14}{means[0]:>28}{means[1]:>24}{means[2]:>26}{means[3]:>17}")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, selector in enumerate(dict.fromkeys(r["selector"] for r in results)):
        color = f"C{i}"
        curves = [r["curve"] for r in results if r["selector"] == selector and r["curve"]]
        for curve in curves:
            ax.plot(range(1, len(curve) + 1), curve, color=color, alpha=0.3, linewidth=1)
        if curves:
            n = min(map(len, curves))
            ax.plot(range(1, n + 1), [fmean(c[k] for c in curves) for k in range(n)], color=color, linewidth=2.2,
                    label=f"{selector} (mean of {len(curves)})")
    ax.set_xlabel("designs verified at the lowest rung")
    ax.set_ylabel("best fitness so far (lowest rung)")
    ax.set_title("selector vs random search: best-so-far")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bench-discovery", help="folder of the runs, results.json and curves.png")
    p.add_argument("--variants", "--selectors", dest="variants", default="quadrant,ucb,random",
                   help="comma-separated selectors; SELECTOR/off runs it with synthesis off")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--corpus", default=None, help="default: gutenberg under $MODIS_DATA_DIR, else synthetic")
    p.add_argument("--rungs", default="cpu-1m")
    p.add_argument("--design-budget", type=int, default=4)
    p.add_argument("--verify-budget", default="cpu-1m=4")
    p.add_argument("--train-fraction", default=None, help="share of each corpus rung's tokens (default: the "
                   "ladder's for the corpus)")
    p.add_argument("--references", default="llama")
    p.add_argument("--no-check", action="store_true", help="skip the sandboxed checker (smoke tests)")
    args = p.parse_args(argv)
    data = Path(os.environ.get("MODIS_DATA_DIR", "/nonexistent")) / "corpus" / "gutenberg"
    corpus = args.corpus or ("gutenberg" if data.is_dir() else "synthetic")
    settings = dict(corpus=corpus, blimp="none", rungs=args.rungs.split(","), design_budget=args.design_budget,
                    verify_budget=per_rung(args.verify_budget), train_fraction=per_rung(args.train_fraction, float),
                    references=args.references.split(","), noise_seeds=1, check=not args.no_check)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"corpus {corpus}; {json.dumps({k: v for k, v in settings.items() if k != 'corpus'})}", flush=True)
    results = []
    for seed in map(int, args.seeds.split(",")):
        for selector in args.variants.split(","):
            results.append(run_one(out, selector, seed, settings))
            r = results[-1]
            print(f"{selector} seed {seed}: best fitness {r['best_lowest']} at the lowest rung, "
                  f"{r['wall_s'] / 60:.1f} min", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"curves: {plot(results, out / 'curves.png')}")
    for selector in dict.fromkeys(r["selector"] for r in results):
        values = [r["best_lowest"] for r in results if r["selector"] == selector and r["best_lowest"] is not None]
        print(f"mean_best_lowest_{selector}={fmean(values) if values else float('nan'):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
