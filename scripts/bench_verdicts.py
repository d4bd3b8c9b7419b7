"""Does the checker give the same verdict on a busy machine? Each design is checked idle, beside one `modis verify`
training and beside two, and the verdicts, reasons and cost ratios are compared.

The designs: every library design, the external fixture (tests/fixtures/external_design.py), the clean template
and the cost cases of the checker's corpus (tests/checker/corpus.py); `--corpus all` adds every corpus case,
`--corpus none` none. The
load is `modis verify llama --scale cpu-1m` in a loop, each in its own process with the default threads, started
before the checks of a condition and stopped after them.

    python scripts/bench_verdicts.py [--loads 0,1,2] [--corpus cost|all|none] [--designs llama,rwkv6,...]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the corpus lives with the tests

from model_discovery.checker import check_design  # noqa: E402
from model_discovery.checker.api import CHECK_LIMITS  # noqa: E402
from model_discovery.design.library import design_names, library_design_path  # noqa: E402
from model_discovery.sandbox import Limits  # noqa: E402
from tests.checker.corpus import CASES, CLEAN  # noqa: E402

COST_CASES = {"slow_forward", "parameter_explosion"}


def designs(corpus: str, names: list[str]) -> dict[str, str]:
    found = {name: library_design_path(name).read_text() for name in names}
    found["external_fixture"] = (ROOT / "tests" / "fixtures" / "external_design.py").read_text()
    if corpus == "none":
        return found
    found["corpus:clean"] = CLEAN.render()
    for case in CASES:
        if corpus == "all" or case.name in COST_CASES:
            found[f"corpus:{case.name}"] = case.render()
    return found


def start_load(n: int, folder: Path) -> list[subprocess.Popen]:
    """``n`` trainings in a loop, each a process group of its own (so the sandboxed child goes with it)."""
    loop = (f"i=0; while true; do i=$((i+1)); {sys.executable} -m model_discovery.cli verify llama --scale cpu-1m "
            f"--out {folder}/load-$$-$i --seed $i >/dev/null 2>&1; done")
    procs = [subprocess.Popen(["bash", "-c", loop], start_new_session=True) for _ in range(n)]
    time.sleep(15 if n else 0)  # past the trainings' start-up, into their steps
    return procs


def stop_load(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def limits_for(name: str) -> Limits:
    """The checker's own limits; a corpus case gets the CPU budget its test gives it (an endless loop: 8 s)."""
    case = next((c for c in CASES if f"corpus:{c.name}" == name), None)
    return CHECK_LIMITS if case is None else CHECK_LIMITS.model_copy(update={"cpu_s": case.cpu_s})


def check_all(sources: dict[str, str]) -> dict[str, dict]:
    rows = {}
    for name, source in sources.items():
        report = check_design(source, limits=limits_for(name))
        cost = report.metrics or {}
        rows[name] = {"accepted": report.accepted, "reasons": sorted({f.check for f in report.errors()}),
                      "time": cost.get("time_per_token_ratio"), "flops": cost.get("flops_per_token_ratio"),
                      "cost_s": report.timings.get("cost_s"), "total_s": report.timings.get("total_s")}
        print(f"  {name:<28} {'accepted' if report.accepted else 'rejected':<9} "
              f"{','.join(rows[name]['reasons']) or '-':<22} time x{_fmt(rows[name]['time'])} "
              f"flops x{_fmt(rows[name]['flops'])} check {_fmt(rows[name]['total_s'], 1)} s", flush=True)
    return rows


def _fmt(x, digits=2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", default="0,1,2", help="trainings beside the checks, one condition each")
    parser.add_argument("--corpus", choices=["cost", "all", "none"], default="cost")
    parser.add_argument("--designs", default=",".join(design_names()), help="library designs")
    args = parser.parse_args()
    sources = designs(args.corpus, [n for n in args.designs.split(",") if n])
    results = {}
    with tempfile.TemporaryDirectory(prefix="modis-load-") as tmp:
        os.environ.setdefault("MODIS_CACHE", tmp)
        for n in (int(x) for x in args.loads.split(",")):
            print(f"beside {n} training(s):", flush=True)
            procs = start_load(n, Path(tmp))
            try:
                results[n] = check_all(sources)
            finally:
                stop_load(procs)
    base, agree = min(results), 0
    print("\ndesign                        verdict agrees  time ratio per condition")
    for name in sources:
        verdicts = {(r[name]["accepted"], tuple(r[name]["reasons"])) for r in results.values()}
        same = len(verdicts) == 1
        agree += same
        ratios = " / ".join(_fmt(r[name]["time"]) for r in results.values())
        print(f"{name:<29} {'yes' if same else 'NO':<15} {ratios}")
    for n, rows in results.items():
        spread = [r["time"] / results[base][k]["time"] for k, r in rows.items()
                  if r["time"] and results[base][k]["time"]]
        if spread and n != base:
            print(f"beside {n}: time ratio / idle ratio median {statistics.median(spread):.2f}, "
                  f"range {min(spread):.2f}..{max(spread):.2f}")
    print(f"verdict_agreement={agree}/{len(sources)}")


if __name__ == "__main__":
    main()
