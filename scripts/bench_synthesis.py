"""How well does the offline designer invent? Runs offline design sessions with synthesis on (sandboxed checker,
no training) and reports: the share of designs with a synthesized operator that pass the checker, the number of
distinct synthesized operators among them, the median check time, and each operator family's training tokens/s
relative to llama at the checker's rung (cpu-1m), as the checker measured it in the sandbox.

    python scripts/bench_synthesis.py [--out runs/bench-synthesis] [--sessions 50] [--seed 0] [--prompt TEXT]

Sessions already in --out count towards --sessions (the run resumes). Prints `pass_share=X` and
`distinct_operators=N` lines for scripts to read.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from statistics import median

from model_discovery.agents.grammar import gene_of
from model_discovery.evolution.store import Store
from model_discovery.workflow.design import design_sessions


def family(gene) -> str:
    if gene.kind == "channel_mixer":
        return f"channel:{gene.form}"
    return f"{gene.structure}" + (f"/{gene.decay}" if gene.structure == "recurrence" else
                                  f"/window={gene.window}" if gene.structure == "attention" else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bench-synthesis")
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", default="discover me a new model")
    p.add_argument("--no-check", action="store_true", help="skip the sandboxed checker (smoke tests)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = Store(str(out), seed_references=True)
    done = len(store.sessions())
    if done < args.sessions:
        design_sessions(args.prompt, args.sessions - done, str(out), seed=args.seed, check=not args.no_check,
                        synthesis=True)
    store = Store(str(out), seed_references=True)
    sessions = {s.design_id: s for s in store.sessions()}
    checks = {c.design_id: c for c in store.checks()}
    synthesized, passed, operators, times, speed = 0, 0, set(), [], defaultdict(list)
    for design in store.designs():
        if design.mode == "reference":
            continue
        tree = design.unit_tree()
        genes = [g for g in (gene_of(s) for s in tree.units.values() if s.decl and s.decl.gene) if g is not None]
        times.append(sessions[design.id].wall_s if design.id in sessions else float("nan"))
        if not genes:
            continue
        synthesized += 1
        if design.status != "checked":
            findings = checks[design.id].findings if design.id in checks else []
            print(f"  failed: {design.name}: {[f['message'][:160] for f in findings][:2]}")
            continue
        passed += 1
        operators.update(s.name for s in tree.units.values() if s.decl and s.decl.gene)
        ratio = (checks[design.id].metrics or {}).get("time_per_token_ratio") if design.id in checks else None
        if ratio:
            for g in genes:
                speed[family(g)].append(1.0 / ratio)
    print(f"{len(store.sessions())} sessions; {len(times)} designs checked; median session (proposal + check) "
          f"{median(times):.1f} s")
    print(f"synthesized designs: {synthesized}; passed the checker: {passed} ({passed / max(synthesized, 1):.0%}); "
          f"distinct synthesized operators that passed: {len(operators)}")
    print("operator family            designs  tokens/s relative to llama (median, min-max)")
    for fam in sorted(speed):
        v = speed[fam]
        print(f"{fam:<26}{len(v):>8}  {median(v):.2f} ({min(v):.2f}-{max(v):.2f})")
    print(f"pass_share={passed / max(synthesized, 1):.4f}")
    print(f"distinct_operators={len(operators)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
