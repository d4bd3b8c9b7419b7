"""Does the selector find better designs than random search, and does operator synthesis help? The same discovery
run — same designer, references, ladder and budgets — for each variant (a selector, and ``/off`` for synthesis off)
and several seeds; prints the best design each run found (fitness at the lowest rung, held-out loss and fitness at
the highest rung any design reached, and the best reference's loss there), the means over seeds, and draws
best-so-far curves: best fitness at the lowest rung against designs verified there, and best held-out loss there
against verification CPU-minutes (mean and a band of one standard deviation over seeds). It says whether the default
selector beats random search by more than twice the references' seed spread at the lowest rung (the run's noise
floor with noise seeds, else the ladder's table of best known designs).

    python scripts/bench_discovery.py [--out runs/bench-discovery] [--variants default,random,ucb,default/off]
        [--seeds 0,1,2] [--corpus gutenberg] [--design-budget 4] [--verify-budget cpu-1m=4]
        [--train-fraction cpu-1m=0.25] [--jobs 2] ...

The runs share a verification cache (``OUT/verify-cache``): a reference, or a design two runs both proposed (with one
seed, every variant's first design is the same), is trained once per seed. ``--jobs`` runs go at once, each in its
own process with an equal share of the cores; they are ordered so that runs going together have different seeds.
Runs already in --out are resumed, not repeated, so an interrupted benchmark continues where it stopped. With no
$MODIS_DATA_DIR the corpus falls back to the built-in synthetic one. Prints `mean_best_lowest_<variant>=X` lines for
scripts to read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import fmean, stdev

import numpy as np

from model_discovery.verify.noise import pooled_std
from model_discovery.workflow.build import BuildSystem, noise_floors, read_run
from model_discovery.workflow.config import DiscoveryConfig, per_rung
from model_discovery.workflow.results import best_found

DEFAULT = DiscoveryConfig.model_fields["selector"].default  # what the variant ``default`` runs


def reference_spread(policy, snap) -> float | None:
    """The references' seed-to-seed standard deviation of held-out loss at the lowest rung: the run's own noise
    floor where it trained noise seeds, else the ladder's table of best known designs for its corpus and budget."""
    lowest = policy.ladder.rungs[0].name
    floor = noise_floors(policy, snap).get(lowest)
    if floor is not None and floor.std is not None:
        return floor.std
    standing = policy.best_known().get(lowest)
    if standing is None:
        return None
    return pooled_std({n: v for n, v in standing.losses.items() if n in policy.config.references})


def run_one(out: Path, variant: str, seed: int, settings: dict) -> dict:
    """One discovery run (resumed if its folder holds one); what it found. ``variant``: a selector, with ``/off``
    for synthesis off."""
    selector, _, synthesis = variant.partition("/")
    if synthesis not in ("", "on", "off"):
        raise ValueError(f"variant {variant!r}: write SELECTOR or SELECTOR/off")
    selector = DEFAULT if selector == "default" else selector
    run_dir = _run_dir(out, variant, seed)
    start = time.perf_counter()
    report = BuildSystem(run_dir, selector=selector, seed=seed, progress=False, synthesis=synthesis != "off",
                         **settings)("benchmark")
    db, policy, snap = read_run(run_dir)
    threads = policy.config.threads or int(os.environ.get("MODIS_THREADS") or 2)
    found = [(minutes * threads, loss) for minutes, loss, _ in best_found(policy, snap, db)]
    db.engine.dispose()  # the snapshot holds what follows reads
    index = snap.index
    lowest = policy.ladder.rungs[0].name
    fitness = policy.fitness(snap, lowest)
    by_name = {s.name: s.fitness for s in fitness.scores} if fitness else {}
    order = [index.by_id[v.design_id].name for v in snap.rows(lowest, policy.data(lowest))
             if not index.by_id[v.design_id].reference]
    curve, best = [], float("-inf")
    for name in order:
        best = max(best, by_name.get(name, float("-inf")))
        curve.append(best)
    top = next((b for b in reversed(report.leaderboards) if any(not e.reference for e in b.entries)), None)
    mine = [e for e in top.entries if not e.reference] if top else []
    refs = [e for e in top.entries if e.reference] if top else []
    spent = json.loads((run_dir / "bench.json").read_text())["wall_s"] if (run_dir / "bench.json").is_file() else 0.0
    result = {"selector": variant, "seed": seed, "run_dir": str(run_dir), "wall_s": spent + time.perf_counter() - start,
            "best_lowest": curve[-1] if curve else None, "curve": curve, "top_rung": top.rung if top else None,
            "best_lowest_loss": found[-1][1] if found else None, "time_curve": found,
            "reference_spread": reference_spread(policy, snap),
            "best_top_loss": min(e.val_loss for e in mine) if mine else None,
            "best_top_fitness": max(e.fitness for e in mine) if mine else None,
            "reference_top_loss": min(e.val_loss for e in refs) if refs else None}
    (run_dir / "bench.json").write_text(json.dumps(result, indent=2))  # a resumed run adds to the time spent
    return result


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

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, selector in enumerate(dict.fromkeys(r["selector"] for r in results)):
        color = f"C{i}"
        mine = [r for r in results if r["selector"] == selector]
        curves = [r["curve"] for r in mine if r["curve"]]
        for curve in curves:
            ax.plot(range(1, len(curve) + 1), curve, color=color, alpha=0.3, linewidth=1)
        if curves:
            n = min(map(len, curves))
            ax.plot(range(1, n + 1), [fmean(c[k] for c in curves) for k in range(n)], color=color, linewidth=2.2,
                    label=f"{selector} (mean of {len(curves)})")
        band = time_band([r.get("time_curve") or [] for r in mine])
        if band is not None:
            grid, mean, std = band
            bx.plot(grid, mean, color=color, linewidth=2, label=f"{selector} (mean of {len(mine)}, ± 1 std)")
            bx.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2)
    ax.set_xlabel("designs verified at the lowest rung")
    ax.set_ylabel("best fitness so far (lowest rung)")
    ax.set_title("selector vs random search: best-so-far")
    ax.legend()
    bx.set_xlabel("verification CPU-minutes")
    bx.set_ylabel("best held-out loss so far (lowest rung)")
    bx.set_title("best found against compute")
    bx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def time_band(curves: list[list], points: int = 200):
    """(grid, mean, std) of step curves of (CPU-minutes, best loss) over a common grid, where every curve has a
    value (from the latest first point to the earliest last one's end); None without two points."""
    curves = [c for c in curves if c]
    if not curves:
        return None
    start, end = max(c[0][0] for c in curves), max(c[-1][0] for c in curves)
    if end <= start:
        return None
    grid = np.linspace(start, end, points)
    values = np.array([[next(loss for x, loss in reversed(c) if x <= g) for g in grid] for c in curves])
    return grid, values.mean(axis=0), values.std(axis=0)


def verdict(results: list[dict], default: str = "default", baseline: str = "random") -> dict | None:
    """The default against random search at the lowest rung: mean best held-out loss of each over seeds, the margin
    (random's minus the default's: positive means the default found better designs), the references' seed spread
    and whether the margin exceeds twice it. None without both variants."""
    def best(variant):
        return [r["best_lowest_loss"] for r in results if r["selector"] == variant and r.get("best_lowest_loss")]

    mine, theirs = best(default), best(baseline)
    spreads = [r["reference_spread"] for r in results if r.get("reference_spread")]
    if not mine or not theirs:
        return None
    margin = fmean(theirs) - fmean(mine)
    spread = fmean(spreads) if spreads else None
    return {"default": fmean(mine), "random": fmean(theirs), "margin": margin, "spread": spread,
            "seeds": min(len(mine), len(theirs)),
            "beats": spread is not None and margin > 2 * spread}


def _run_dir(out: Path, variant: str, seed: int) -> Path:
    return out / f"{variant.replace('/', '-')}-seed{seed}"


def run_apart(argv: list[str], out: Path, variant: str, seed: int, threads: int) -> dict:
    """One run in a process of its own (``--only``) with ``threads`` torch threads; what it found."""
    env = {**os.environ, "MODIS_THREADS": str(threads)}
    done = subprocess.run([sys.executable, __file__, *argv, "--only", f"{variant}@{seed}"], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{variant} seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads((_run_dir(out, variant, seed) / "bench.json").read_text())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bench-discovery", help="folder of the runs, results.json and curves.png")
    p.add_argument("--variants", "--selectors", dest="variants", default="default,random,ucb,default/off",
                   help=f"comma-separated selectors (default: the run's default, {DEFAULT}); SELECTOR/off runs it "
                   "with synthesis off")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--corpus", default=None, help="default: gutenberg under $MODIS_DATA_DIR, else synthetic")
    p.add_argument("--rungs", default="cpu-1m")
    p.add_argument("--design-budget", type=int, default=4)
    p.add_argument("--verify-budget", default="cpu-1m=4")
    p.add_argument("--train-fraction", default="cpu-1m=0.25",
                   help="share of each rung's tokens (the ladder's real-text share is 0.5: with it, the defaults take "
                   "about twice as long)")
    p.add_argument("--references", default="llama")
    p.add_argument("--jobs", type=int, default=2, help="runs at once, each with an equal share of the cores")
    p.add_argument("--no-check", action="store_true", help="skip the sandboxed checker (smoke tests)")
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)  # VARIANT@SEED: one run, in a child process
    args = p.parse_args(argv)
    data = Path(os.environ.get("MODIS_DATA_DIR", "/nonexistent")) / "corpus" / "gutenberg"
    corpus = args.corpus or ("gutenberg" if data.is_dir() else "synthetic")
    out = Path(args.out).resolve()
    settings = dict(corpus=corpus, blimp="none", rungs=args.rungs.split(","), design_budget=args.design_budget,
                    verify_budget=per_rung(args.verify_budget), train_fraction=per_rung(args.train_fraction, float),
                    references=args.references.split(","), noise_seeds=1, check=not args.no_check,
                    verify_cache=str(out / "verify-cache"))
    if args.only:
        variant, _, seed = args.only.rpartition("@")
        run_one(out, variant, int(seed), settings)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    shown = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items() if k != "corpus"}
    print(f"corpus {corpus}; {json.dumps(shown)}; {args.jobs} at once", flush=True)
    seeds, variants = list(map(int, args.seeds.split(","))), args.variants.split(",")
    todo = [(variant, seed) for variant in variants for seed in seeds]  # runs side by side: different seeds
    threads = max(1, (os.cpu_count() or 2) // args.jobs)
    start = time.perf_counter()

    def one(job: tuple[str, int]) -> dict:
        result = run_apart(argv, out, *job, threads) if args.jobs > 1 else run_one(out, *job, settings)
        print(f"{job[0]} seed {job[1]}: best fitness {result['best_lowest']} at the lowest rung, "
              f"{result['wall_s'] / 60:.1f} min", flush=True)
        return result

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        done = dict(zip(todo, pool.map(one, todo)))
    results = [done[(variant, seed)] for seed in seeds for variant in variants]
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"curves: {plot(results, out / 'curves.png')}")
    print(f"benchmark wall time: {(time.perf_counter() - start) / 60:.1f} min")
    for selector in dict.fromkeys(r["selector"] for r in results):
        values = [r["best_lowest"] for r in results if r["selector"] == selector and r["best_lowest"] is not None]
        print(f"mean_best_lowest_{selector}={fmean(values) if values else float('nan'):.4f}")
    v = verdict(results)
    if v:
        spread = "unknown" if v["spread"] is None else f"{v['spread']:.4f}"
        print(f"default ({DEFAULT}) against random over {v['seeds']} seeds: best held-out loss {v['default']:.4f} "
              f"against {v['random']:.4f}, margin {v['margin']:+.4f} nats; references' seed spread {spread}: "
              + ("beats random by more than twice the spread" if v["beats"]
                 else "does NOT beat random beyond twice the spread"))
        print(f"default_vs_random_margin={v['margin']:.4f} beats_random={int(v['beats'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
