"""How long the evolve loop takes to decide as the tree grows.

Builds a SQLite store of N designs shaped like a real run's (a library design's source with a variation, the
offline designer's unit tree, a ~1.5 KB proposal, lineage, one session per design, 64 verifications at the lowest
rung plus the references llama and rwkv6, a few promotions to the second rung), opens it with ``make_loop`` and
times, median over repeats, the policy's ``plan`` and ``candidates`` (each on a fresh snapshot of the store) and one
quadrant parent selection. A decision is the three together; "after a design" is a decision right after one more
design was recorded (what the loop does between sessions); "open" is opening the run and its first decision, which
reads the whole tree once.

    python scripts/bench_store.py [--sizes 1000,10000,50000] [--repeats 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from model_discovery.design.library import design_names, library_design_path
from model_discovery.evolution.selector import make_selector
from model_discovery.evolution.store import DesignRow, JobRow, SessionRow, Store, VerificationRow
from model_discovery.verify.grammar import PHENOMENA
from model_discovery.workflow.build import DiscoveryConfig, make_loop

REFERENCES, VERIFY_BUDGET, PROMOTED, GOAL_MS, GOAL_AT = ["llama", "rwkv6"], 64, 8, 50.0, 10_000
MODES = {"mutation": 0.6, "crossover": 0.25, "scratch": 0.15}


def metrics(rng: random.Random, rung: str) -> dict:
    """Metrics as ``verify.job`` writes them (what fitness reads: val_loss, blimp by phenomenon)."""
    by = {p: round(rng.uniform(0.45, 0.8), 4) for p in PHENOMENA}
    loss = rng.gauss(6.0, 0.15)
    return {"val_loss": loss, "perplexity": 2.718 ** loss, "params": rng.randint(900_000, 1_300_000),
            "blimp": {"acc": sum(by.values()) / len(by), "by_phenomenon": by, "n_pairs": 1810}, "n_block": 6,
            "scale": rung, "train_tokens": 131_072, "final_train_loss": loss - 0.1, "tokens_per_s": 9000.0,
            "train_s": 14.5, "eval_s": 3.2, "resumed_from_step": None, "device": "cpu"}


def design_rows(store: Store, n: int, rng: random.Random, prefix: str = "d") -> list[dict]:
    bases = design_names()
    sources = {b: library_design_path(b).read_text() for b in bases}
    trees = {b: store.design(b).tree for b in bases}
    first_id = max(d.id for d in store.designs("reference")) + 1 if prefix == "d" else None
    names, rows = list(bases), []
    for i in range(n):
        base, name = rng.choice(bases), f"{prefix}{i + 1:05d}"
        mode = rng.choices(list(MODES), weights=list(MODES.values()))[0]
        parents = rng.sample(names, {"mutation": 1, "crossover": 2, "scratch": 0}[mode])
        source = sources[base] + f"\n# {name}, {mode} of {', '.join(parents) or 'the catalogue'}: width x{1 + i % 7}\n"
        proposal = {"title": f"{mode}: vary {base} ({' × '.join(parents) or 'the catalogue'})",
                    "motivation": sources[base][:900], "operator": mode, "parents": parents, "selected_unit": base,
                    "change": f"replace a unit of {base} with a variant, width x{1 + i % 7}. " * 4,
                    "units": [{"name": base, "action": "reused", "children": {}, "args": {"width": 1 + i % 7}}]}
        ids = {"id": first_id + i} if first_id else {}
        rows.append(dict(**ids, name=name, tree=trees[base], source=source, parents=parents,
                         content_hash=hashlib.sha256(source.encode()).hexdigest()[:16], mode=mode,
                         status="checked" if rng.random() < 0.9 else "check_failed", prompt="discover me a new model",
                         proposal=proposal, created=time.time()))
        names.append(name)
    return rows


def build(run_dir: Path, n: int) -> None:
    """A store of ``n`` designs with the verifications of a run that spent a 64-design budget."""
    rng = random.Random(n)
    store = Store(run_dir, seed_references=True)
    loop = make_loop(config(run_dir, n), designing=False)
    rungs = [r.name for r in loop.policy.ladder.rungs][:2]
    designs = design_rows(store, n, rng)
    sessions = [dict(design_id=d["id"], operator=d["mode"], reason=f"{d['name']}: {d['proposal']['selected_unit']}",
                     outcome="registered" if d["status"] == "checked" else "check_failed", cost_usd=0.0, wall_s=2.0,
                     dialog=[{"role": "selector", "content": {"operator": d["mode"], "parents": d["parents"]}},
                             {"role": "proposer", "attempt": 0, "content": d["proposal"]}]) for d in designs]
    refs = [store.design(r).id for r in REFERENCES]
    verified = [d["id"] for d in designs if d["status"] == "checked"][:VERIFY_BUDGET]
    promoted = rng.sample(verified, min(PROMOTED, len(verified)))
    checks = [(i, rungs[0]) for i in refs + verified] + [(i, rungs[1]) for i in refs + promoted]
    verifications = [dict(design_id=i, scale=r, data=loop.policy.data(r), status="done", metrics=metrics(rng, r),
                          worker="bench:1", wall_s=20.0) for i, r in checks]
    jobs = [dict(design_id=i, scale=r, data=loop.policy.data(r), payload={"corpus": "synthetic", "seed": 0},
                 status="done", worker="bench:1", attempts=1) for i, r in checks]
    with store.session() as s:
        for table, rows in ((DesignRow, designs), (SessionRow, sessions), (VerificationRow, verifications),
                            (JobRow, jobs)):
            for start in range(0, len(rows), 2000):
                s.execute(insert(table), rows[start:start + 2000])


def config(run_dir: Path, n: int) -> DiscoveryConfig:
    return DiscoveryConfig(run_dir=run_dir, references=REFERENCES, check=False, verify_budget=VERIFY_BUDGET,
                           design_budget=n + 100).resolved()


def median_ms(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bench(run_dir: Path, n: int, repeats: int) -> dict[str, float]:
    start = time.perf_counter()
    loop = make_loop(config(run_dir, n), designing=False)
    selector = make_selector("quadrant")

    def candidates():
        return loop.policy.candidates(loop.snapshot())

    first = candidates()  # the first decision reads the whole tree once
    assert len(first) > n // 2 and loop.plan().action == "design", "the store is not shaped as intended"
    opened = (time.perf_counter() - start) * 1000
    times = {"plan": median_ms(loop.plan, repeats), "candidates": median_ms(candidates, repeats),
             "select": median_ms(lambda: selector.select(first, 2, random.Random(0)), repeats)}
    rng, added = random.Random(1), iter(range(10**6))

    def after_a_design():  # what the loop does between two sessions: one more design, then decide
        loop.store.record_session(design=design_rows(loop.store, 1, rng, f"x{next(added)}")[0], operator="mutation",
                                  outcome="registered")
        start = time.perf_counter()
        loop.plan()
        selector.select(candidates(), 2, random.Random(0))
        return (time.perf_counter() - start) * 1000

    next_ms = statistics.median(after_a_design() for _ in range(repeats))
    return {**times, "decision": sum(times.values()), "after_design": next_ms, "open": opened}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000", help="numbers of designs, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the stores under this folder and keep them")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-store-"))
    results = {}
    for n in [int(s) for s in args.sizes.split(",")]:
        run_dir = root / f"n{n}"
        start = time.perf_counter()
        build(run_dir, n)
        print(f"built {n:,} designs in {time.perf_counter() - start:.1f} s ({run_dir})", flush=True)
        results[n] = bench(run_dir, n, args.repeats)
        print(json.dumps({"designs": n, **{k: round(v, 1) for k, v in results[n].items()}}), flush=True)
        if not args.keep:
            shutil.rmtree(run_dir)
    if not args.keep:
        root.rmdir()
    print(f"\n{'designs':>8} | {'plan ms':>9} | {'candidates ms':>13} | {'select ms':>9} | {'decision ms':>11} | "
          f"{'after a design ms':>17} | {'open ms':>9}")
    for n, t in results.items():
        print(f"{n:>8,} | {t['plan']:>9.1f} | {t['candidates']:>13.1f} | {t['select']:>9.1f} | "
              f"{t['decision']:>11.1f} | {t['after_design']:>17.1f} | {t['open']:>9.1f}")
    print(f"\ngoal: ≤ {GOAL_MS:.0f} ms per decision at {GOAL_AT:,} designs")
    if GOAL_AT in results:
        ms = results[GOAL_AT]["decision"]
        print(f"{'met' if ms <= GOAL_MS else 'not met'}: {ms:.1f} ms")


if __name__ == "__main__":
    main()
