"""Measures the best known designs of a ladder: every library design verified at each rung on a corpus, with the
token budget a run on that corpus gives it there (the ladder's default train fraction), over several training
seeds; writes the ladder's table (``etc/baselines_<ladder>.yaml``), which a run reads to put the best known design
among its references (the reference ``best``).

    python scripts/measure_baselines.py [--ladder cpu] [--corpus synthetic] [--rungs cpu-1m,cpu-2m]
        [--seeds 0,1,2] [--designs all] [--blimp synthetic] [--out runs/baselines] [--table PATH]
        [--train-fraction RUNG=SHARE,...] [--eval-corpora tinyshakespeare,...]

Each verification is the one a run makes of the same reference (same source, payload and seed), through the
verification cache, so a run on this machine afterwards trains none of them again, and a rerun of this script
resumes from what is there (``--eval-corpora``: the other corpora a run scores, so that its references come from the
cache too; they do not change the table). The table is written after each rung, with the command, machine and date.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path


def measure(args: argparse.Namespace, how: str) -> Path:
    from model_discovery.lm.baselines import Standing, baselines_path, load_baselines, save_baselines
    from model_discovery.verify.run import verify
    from model_discovery.workflow.build import make_loop
    from model_discovery.workflow.config import DiscoveryConfig

    cfg = DiscoveryConfig(run_dir=args.out / "run", ladder=args.ladder, corpus=args.corpus, blimp=args.blimp,
                          rungs=args.rungs, references=["llama"], verify_cache=args.verify_cache,
                          train_fraction=args.train_fraction, eval_corpora=args.eval_corpora).resolved()
    loop = make_loop(cfg, designing=False)
    names = [d.name for d in loop.store.designs("reference")] if args.designs == ["all"] else args.designs
    path = args.table or baselines_path(args.ladder)
    table = load_baselines(args.ladder, path)
    for rung in cfg.rungs:
        scale = loop.policy.ladder.rung(rung)
        if scale.kind != "lm":
            continue
        losses: dict[str, list[float]] = {}
        for name in names:
            design = loop.store.design(name)
            for seed in args.seeds:
                out = args.out / rung / f"{name}-seed{seed}"
                source = out / "source" / "design.py"
                source.parent.mkdir(parents=True, exist_ok=True)
                source.write_text(design.source)
                start = time.perf_counter()
                metrics = verify(source, scale, out=out, **loop.policy.payload(rung, seed))
                losses.setdefault(name, []).append(metrics["val_loss"])
                cached = " (from the cache)" if "cached_from" in metrics else ""
                print(f"{rung} {name} seed {seed}: held-out loss {metrics['val_loss']:.4f} in "
                      f"{time.perf_counter() - start:.0f} s{cached}", flush=True)
        standing = Standing(corpus=args.corpus, rung=rung, tokens=loop.policy.steps(rung) * scale.batch_tokens,
                            losses=losses)
        table = table.with_standing(standing, how)
        save_baselines(table, path)
        print(f"{rung}: best known {standing.best}; " + ", ".join(f"{n} {v:.4f}" for n, v in standing.ranked()),
              flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default="cpu")
    parser.add_argument("--corpus", default="synthetic")
    parser.add_argument("--blimp", default="synthetic")
    parser.add_argument("--rungs", type=lambda s: s.split(","), default=["cpu-1m", "cpu-2m"])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--designs", type=lambda s: s.split(","), default=["all"])
    parser.add_argument("--verify-cache", default=None, help="default: the user's (as a run's)")
    parser.add_argument("--eval-corpora", type=lambda s: s.split(","), default=[],
                        help="the corpora a run also scores (the campaign's), so that its references are cached")
    parser.add_argument("--out", type=Path, default=Path("runs/baselines"))
    parser.add_argument("--table", type=Path, default=None, help="default: etc/baselines_<ladder>.yaml")
    parser.add_argument("--train-fraction", default=None, help="rung=share,...: another budget than a run's default "
                        "(the table's rows then match only runs with that budget)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.train_fraction:
        from model_discovery.workflow.config import per_rung

        args.train_fraction = per_rung(args.train_fraction, float)
    how = (f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores ({platform.machine()}): python "
           f"scripts/measure_baselines.py {' '.join(argv)}")
    print(f"table: {measure(args, how)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
