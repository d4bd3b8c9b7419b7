"""``check_design``: the static filter, then the dynamic checks in the sandbox, then costs against the reference.

The same function serves ``modis check`` and the agents; findings are what the coder gets back.
"""

from __future__ import annotations

import time
from pathlib import Path

from model_discovery.checker.findings import CheckReport, Finding
from model_discovery.checker.static import static_check
from model_discovery.design.library import library_design_path
from model_discovery.design.loader import read_source
from model_discovery.sandbox import Limits, ProcessSandbox, Sandbox, SandboxResult

DEFAULT_SCALE = "cpu-1m"
REFERENCE = "llama"
# cost relative to the reference at the same rung: (warn above, reject above)
COST_LIMITS = {"time_per_token": (1.5, 3.0), "flops_per_token": (1.5, 3.0), "bytes": (2.0, 4.0)}
MAX_OUTPUT_BYTES = 16384
# The checks' budget is CPU time, on one thread: what a design's work costs, whatever runs beside the checker. The
# wall clock only backstops a design that blocks without computing.
CHECK_LIMITS = Limits(cpu_s=120, wall_s=600, threads=1)


def check_design(design: str | Path, scale: str = DEFAULT_SCALE, *, sandbox: Sandbox | None = None,
                 limits: Limits | None = None, static: bool = True, dynamic: bool = True) -> CheckReport:
    """Checks a design file (path or source). ``static=False`` skips the filter (to test the sandbox alone)."""
    source, _ = read_source(design)
    sandbox = sandbox or ProcessSandbox(CHECK_LIMITS)
    start = time.perf_counter()
    findings = static_check(source) if static else []
    timings = {"static_s": time.perf_counter() - start}
    if any(f.severity == "error" for f in findings) or not dynamic:
        return CheckReport.from_findings(findings, isolation="static", timings=timings)
    reference = library_design_path(REFERENCE).read_text()
    payload = {"scale": scale, "confirm_above": COST_LIMITS["time_per_token"][1]}
    result = sandbox.run("model_discovery.checker.dynamic:run", payload,
                         files={"design.py": source, "reference.py": reference}, limits=limits)
    timings["sandbox_s"] = result.wall_s
    findings += _sandbox_findings(result, limits or getattr(sandbox, "limits", CHECK_LIMITS))
    value = result.value if result.ok and isinstance(result.value, dict) else {}
    findings += [Finding(**f) for f in value.get("findings", [])]
    metrics = value.get("cost") or {}
    if metrics and not any(f.severity == "error" for f in findings):
        findings += _cost_findings(metrics)
    timings.update(value.get("timings", {}))
    timings["total_s"] = time.perf_counter() - start
    return CheckReport.from_findings(findings, params=value.get("params"), isolation=result.isolation,
                                     timings=timings, metrics=metrics)


def _sandbox_findings(result: SandboxResult, limits: Limits) -> list[Finding]:
    found = [Finding(check="sandbox", message=f"the design tried something designs may never do: {v}")
             for v in dict.fromkeys(result.violations)]
    if result.output_bytes > MAX_OUTPUT_BYTES:
        found.append(Finding(check="output", message=f"the design printed {result.output_bytes:,} bytes; designs "
                             "must not print (remove print calls from _forward)."))
    where = f"(in '{result.progress or 'start-up'}')"
    if result.signal == "SIGXCPU":
        found.append(Finding(check="timeout", message=f"the checks used up their {limits.cpu_s} CPU-seconds {where}: "
                             "an endless loop, or far too slow."))
    elif result.timed_out:
        found.append(Finding(check="timeout", message=f"the checks did not finish in {limits.wall_s:.0f} s of wall "
                             f"time {where}: the design blocks or waits, or the machine is far too busy."))
    elif result.signal == "SIGXFSZ":
        found.append(Finding(check="output", message="the design wrote more than the file-size limit (an output "
                             "flood or a large file)."))
    elif result.signal in ("SIGKILL", "SIGSEGV", "SIGABRT", "SIGBUS"):
        what = "memory, or crashed the interpreter"
        found.append(Finding(check="memory" if result.signal == "SIGKILL" else "crash", message=f"the check process "
                             f"was killed by {result.signal} during '{result.progress}' (likely {what})."))
    elif not result.ok:
        found.append(Finding(check="sandbox", message=f"the check process failed: {result.error}"))
    return found


def _cost_findings(metrics: dict[str, float]) -> list[Finding]:
    found = []
    for key, (warn, reject) in COST_LIMITS.items():
        ratio = metrics.get(f"{key}_ratio")
        what = key.replace("_per_token", "").replace("bytes", "memory")
        if ratio is not None and ratio > warn:
            severity = "error" if ratio > reject else "warning"
            ratio_text = f"at least {ratio:.1f}x" if metrics.get(f"{key}_ratio_at_least") else f"{ratio:.1f}x"
            found.append(Finding(check=f"cost.{what}", severity=severity, message=f"{what} is {ratio_text} the "
                                 f"{REFERENCE} reference at this rung (warn above {warn}x, reject above {reject}x)."))
    return found
