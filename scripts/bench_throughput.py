"""Design evidence per CPU-hour: the same discovery run before (early stopping off, no verification cache) and after
(today's defaults), with the same seed on the same machine, in one invocation; and the early-stopping fidelity of the
"before" runs, whose designs all trained to the end.

    python scripts/bench_throughput.py [--out runs/bench-throughput] [--corpus gutenberg] [--seed 0]
        [--design-budget 24] [--verify-budget cpu-1m=20] [--rungs cpu-1m] [--train-fraction cpu-1m=0.5]

Variants, run one after the other, each in its own process. What a variant costs is the machine's time: its wall
time times the machine's cores ("CPU-hours": what a laptop gives the run), and beside it the CPU time the whole
machine was busy meanwhile (from ``/proc/stat``; run the benchmark on an otherwise idle machine). The process tree's
own ``getrusage`` cannot be used: the sandboxed children are reaped inside their namespaces and zygotes, so their
time never reaches it (it counted 0.6 CPU-minutes for a 37-minute run). Each variant's cost is kept in
``OUT/VARIANT/cost.json`` when it finishes, so a later invocation that resumes a finished run reports it unchanged.

- ``before``: ``--early-stop off --verify-cache none --pairs-everywhere`` and ``MODIS_SANDBOX_WARM=0``: every
  design trains to the end and scores every minimal pair, every reference is trained, every sandbox starts cold
  (the checker's faster cost stage has no switch: it is in both);
- ``after``: the defaults, with a verification cache new to this benchmark (``OUT/cache``): the first run on a
  machine;
- ``again``: the defaults once more on the same cache: a second run on the same machine (no reference is trained);
- ``next``: the defaults on the same cache with the next seed: a later run on the same machine that designs other
  designs (the references' noise seeds overlap its seeds, so only one seed of each reference is trained). Its best
  design is not comparable with the others' (other designs).

Per variant: designs trained (to the end or stopped) per CPU-hour, CPU-minutes per design, the share of the
verification time spent on references (their noise seeds included), and the best design found (held-out loss at the
lowest rung, on the run's seed). Then the fidelity table: over the "before" run's designs, the Spearman correlation
(bootstrap 95% interval) of the held-out loss at each probe (25% and 50% of the tokens) with the loss at 100%, and,
for each candidate stopping rule, how many designs it would have stopped and the false-stop rate (stopped designs
that were in the top k at the full budget, k = the run's promotion count, at least 3). Runs already in ``--out`` are
resumed, not repeated. Prints the tables and writes ``OUT/throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "before": {"early_stop": False, "verify_cache": "none", "pairs_everywhere": True},
    "after": {},
    "again": {},
    "next": {"seed_offset": 1},
}
RULES = [("worst", 2.0), ("worst", 3.0), ("worst", 5.0), ("best", 3.0), ("best", 5.0)]
RANK_QUANTILES, RANK_MIN = (0.5, 0.75), 4  # the rule by rank (--early-stop-rank): quantiles, earlier designs needed


def run_variant(out: Path, variant: str, settings: dict) -> dict:
    """One discovery run of ``variant`` in this process; what it spent and found."""
    from model_discovery.workflow.build import BuildSystem, read_run

    run_dir = out / variant
    extra = dict(VARIANTS[variant])
    settings = {**settings, "seed": settings["seed"] + extra.pop("seed_offset", 0)}
    if extra.get("verify_cache") is None:
        extra["verify_cache"] = str(out / "cache")
    start = time.perf_counter()
    BuildSystem(run_dir, progress=False, **settings, **extra)("benchmark")
    wall = time.perf_counter() - start
    db, policy, snap = read_run(run_dir)
    db.engine.dispose()  # the snapshot holds what follows reads
    index = snap.index
    lowest = policy.ladder.rungs[0].name
    rows = snap.rows(status=None)
    mine = [v for v in rows if not index.by_id[v.design_id].reference and v.status in ("done", "stopped")]
    refs = [v for v in rows if index.by_id[v.design_id].reference]
    trained_refs = [v for v in refs if "cached_from" not in (v.metrics or {})]
    total = sum(v.wall_s for v in rows) or 1.0
    designs = {v.design_id for v in mine if v.scale == lowest}
    best = min(((v.metrics["val_loss"], index.by_id[v.design_id].name) for v in mine
                if v.status == "done" and v.scale == lowest and v.data == policy.data(lowest)), default=(None, None))
    curves = {index.by_id[v.design_id].name: {**{p["fraction"]: p["val_loss"] for p in v.metrics.get("curve", [])},
                                              **({1.0: v.metrics["val_loss"]} if v.status == "done" else {})}
              for v in mine if v.scale == lowest and v.data == policy.data(lowest)}
    references = {f"{index.by_id[v.design_id].name}@{v.data}": {
        **{p["fraction"]: p["val_loss"] for p in v.metrics.get("curve", [])}, 1.0: v.metrics["val_loss"]}
        for v in refs if v.status == "done" and v.scale == lowest}
    return {"variant": variant, "wall_s": wall, "designs": len(designs),
            "stopped": sum(v.status == "stopped" for v in mine), "promoted": len({v.design_id for v in mine
                                                                                  if v.scale != lowest}),
            "reference_share": sum(v.wall_s for v in refs) / total, "references_trained": len(trained_refs),
            "best_val_loss": best[0], "best": best[1], "curves": curves, "reference_curves": references,
            "seed_data": policy.data(lowest)}


def machine_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy since boot (all but idle and I/O wait), or None off Linux."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def run_apart(argv: list[str], variant: str, out: Path) -> dict:
    """``variant`` in a child process; adds what it cost (``cost.json`` of its first complete run)."""
    kept = out / variant / "cost.json"
    cost = json.loads(kept.read_text()) if kept.is_file() else None
    start, busy = time.perf_counter(), machine_busy_s()
    env = {**os.environ, **({"MODIS_SANDBOX_WARM": "0"} if variant == "before" else {})}
    done = subprocess.run([sys.executable, __file__, *argv, "--only", variant], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{done.stderr[-3000:]}")
    if cost is None:
        end = machine_busy_s()
        cost = {"wall_s": time.perf_counter() - start, "cores": os.cpu_count(),
                "busy_cpu_s": None if busy is None or end is None else end - busy}
        kept.write_text(json.dumps(cost))
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, **cost, "cpu_s": cost["wall_s"] * cost["cores"]}


def fidelity(result: dict, top_k: int) -> dict:
    """Spearman of the loss at each probe with the final loss, and each rule's stops and false stops."""
    from model_discovery.verify.fidelity import rank_agreement
    from model_discovery.verify.noise import pooled_std

    # fractions are JSON object keys on the way from the variant's process: strings again here
    curves = {n: {float(f): loss for f, loss in c.items()} for n, c in result["curves"].items()}
    curves = {n: c for n, c in curves.items() if 1.0 in c}
    fractions = sorted({f for c in curves.values() for f in c if f < 1.0})
    table = {"n": len(curves), "spearman": {}, "rules": {}}
    for f in fractions:
        names = [n for n, c in curves.items() if f in c]
        x, y = [curves[n][f] for n in names], [curves[n][1.0] for n in names]
        if agreement := rank_agreement(x, y):
            table["spearman"][f] = (agreement.spearman, agreement.spearman_ci, agreement.p)
    top = set(sorted(curves, key=lambda n: curves[n][1.0])[:top_k])
    refs = {key: {float(f): loss for f, loss in c.items()} for key, c in result["reference_curves"].items()}
    for against, k in RULES:
        stopped = set()
        for f in fractions:
            on_seed = [c[f] for key, c in refs.items() if key.endswith("@" + result["seed_data"]) and f in c]
            by_ref: dict[str, list[float]] = {}
            for key, c in refs.items():
                if f in c:
                    by_ref.setdefault(key.split("@")[0], []).append(c[f])
            noise = pooled_std(by_ref)
            if not on_seed or not noise:
                continue
            bar = max(on_seed) if against == "worst" else min(on_seed)
            stopped |= {n for n, c in curves.items() if f in c and c[f] > bar + k * noise}
        table["rules"][f"{against} + {k:g} x noise"] = {
            "stopped": len(stopped), "false_stops": len(stopped & top),
            "false_stop_rate": len(stopped & top) / len(stopped) if stopped else 0.0}
    for f in fractions:  # the rule by rank, in queue order (the designs' names), as the runs apply it
        for quantile in RANK_QUANTILES:
            stopped = set()
            order = sorted(curves)
            for i, name in enumerate(order):
                earlier = [curves[n][f] for n in order[:i] if f in curves[n]]
                if f in curves[name] and len(earlier) >= RANK_MIN and curves[name][f] > np.quantile(earlier, quantile):
                    stopped.add(name)
            table["rules"][f"rank {quantile:g} at {f:.0%}"] = {
                "stopped": len(stopped), "false_stops": len(stopped & top),
                "false_stop_rate": len(stopped & top) / len(stopped) if stopped else 0.0}
    table["top_k"] = top_k
    return table


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-throughput"))
    parser.add_argument("--corpus", default="gutenberg")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--design-budget", type=int, default=24)
    parser.add_argument("--verify-budget", default="cpu-1m=20")
    parser.add_argument("--rungs", default="cpu-1m")
    parser.add_argument("--train-fraction", default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from model_discovery.workflow.config import per_rung

    settings = {"corpus": args.corpus if os.environ.get("MODIS_DATA_DIR") else "synthetic", "seed": args.seed,
                "design_budget": args.design_budget, "verify_budget": per_rung(args.verify_budget),
                "rungs": args.rungs.split(",")}
    if args.train_fraction:
        settings["train_fraction"] = per_rung(args.train_fraction, float)
    if args.only:
        print(json.dumps(run_variant(args.out, args.only, settings)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    passed = ["--out", str(args.out), "--corpus", args.corpus, "--seed", str(args.seed), "--design-budget",
              str(args.design_budget), "--verify-budget", args.verify_budget, "--rungs", args.rungs,
              *(["--train-fraction", args.train_fraction] if args.train_fraction else [])]
    results = []
    for variant in args.variants.split(","):
        results.append(run_apart(passed, variant, args.out))
        print(f"{variant}: {results[-1]['designs']} designs in {results[-1]['cpu_s'] / 60:.1f} CPU-min", flush=True)
    base = results[0]
    print(f"\n{'variant':<8}{'designs':>8}{'stopped':>8}{'wall min':>9}{'CPU-min':>9}{'busy':>6}{'designs/CPU-h':>14}"
          f"{'x':>6}{'CPU-min/design':>15}{'refs share':>11}{'refs trained':>13}{'best loss':>10}  best")
    for r in results:
        rate = r["designs"] / (r["cpu_s"] / 3600)
        r["designs_per_cpu_hour"] = rate
        ratio = rate / (base["designs"] / (base["cpu_s"] / 3600))
        loss = "-" if r["best_val_loss"] is None else f"{r['best_val_loss']:.4f}"
        busy = "-" if r["busy_cpu_s"] is None else f"{r['busy_cpu_s'] / r['cpu_s']:.0%}"
        print(f"{r['variant']:<8}{r['designs']:>8}{r['stopped']:>8}{r['wall_s'] / 60:>9.1f}{r['cpu_s'] / 60:>9.1f}"
              f"{busy:>6}{rate:>14.1f}{ratio:>6.2f}"
              f"{r['cpu_s'] / 60 / max(1, r['designs']):>15.2f}{r['reference_share']:>11.0%}"
              f"{r['references_trained']:>13}{loss:>10}  {r['best']}")
    before = next((r for r in results if r["variant"] == "before"), None)
    if before:
        from model_discovery.verify.fidelity import ci_text

        table = fidelity(before, top_k=max(3, round(0.25 * before["designs"])))
        print(f"\nearly-stop fidelity over {table['n']} designs trained to the end ({args.corpus}):")
        for f, (rho, ci, p) in table["spearman"].items():
            print(f"  loss at {float(f):.0%} vs 100%: Spearman {rho:+.2f} (95% interval {ci_text(ci)}; permutation "
                  f"p {p:.4f})")
        for rule, row in table["rules"].items():
            print(f"  rule {rule:<22}: would stop {row['stopped']:>2}, of which {row['false_stops']} in the top "
                  f"{table['top_k']} at 100% (false-stop rate {row['false_stop_rate']:.0%})")
        for r in results:
            r["fidelity"] = table if r is before else None
    (args.out / "throughput.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
