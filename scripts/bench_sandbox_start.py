"""Start cost of a sandboxed run, cold (a new interpreter) and warm (a fork of the zygote): prints a table.

    python scripts/bench_sandbox_start.py [--repeat 5]

Rows: a target that imports nothing (``echo``), one that imports torch, and a real check of a library design
(``check_design``). The first warm run of the process starts the zygote; it is reported apart ("1st warm").
Times are medians of ``--repeat`` runs, in seconds, on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import statistics
import time

from model_discovery.checker import check_design
from model_discovery.checker.api import CHECK_LIMITS
from model_discovery.design.library import library_design_path
from model_discovery.sandbox import ProcessSandbox, isolation_level


def _timed(fn, sandbox: ProcessSandbox) -> float:
    start = time.perf_counter()
    fn(sandbox)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--design", default="llama")
    args = parser.parse_args()

    def echo(sandbox):
        assert sandbox.run("tests.sandbox.targets:echo", {}).ok

    def torch_target(sandbox):
        assert sandbox.run("tests.sandbox.torch_targets:threads", {}).ok

    def check(sandbox):
        assert check_design(library_design_path(args.design), sandbox=sandbox).accepted

    rows = []
    for name, fn, repeat in (("echo", echo, args.repeat), ("torch target", torch_target, args.repeat),
                             (f"check_design({args.design})", check, max(1, args.repeat // 2))):
        cold = [_timed(fn, ProcessSandbox(CHECK_LIMITS, warm=False)) for _ in range(repeat)]
        warm_sandbox = ProcessSandbox(CHECK_LIMITS, warm=True)
        first = _timed(fn, warm_sandbox)  # the zygote for these limits starts here (once per process)
        warm = [_timed(fn, warm_sandbox) for _ in range(repeat)]
        rows.append((name, repeat, statistics.median(cold), statistics.median(warm), first))

    print(f"isolation: {isolation_level()}; threads: {CHECK_LIMITS.threads}; medians of --repeat runs (s)")
    print(f"{'run':<24} {'n':>3} {'cold':>8} {'warm':>8} {'saved':>8} {'1st warm':>9}")
    for name, n, cold, warm, first in rows:
        print(f"{name:<24} {n:>3} {cold:>8.2f} {warm:>8.2f} {cold - warm:>8.2f} {first:>9.2f}")


if __name__ == "__main__":
    main()
