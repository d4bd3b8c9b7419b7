"""Dynamic checks: run inside the sandbox child (see :mod:`model_discovery.checker.api`), never in the host.

Each check is a small function returning findings; :func:`run` calls them in order and records progress, so a
timeout names the phase it happened in.
"""

from __future__ import annotations

import math
import signal
import time
import traceback
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from model_discovery.checker.findings import Finding
from model_discovery.design import Design, load_design
from model_discovery.lm import DiscoveryLM, Scale, ScaleFitError, find_scale, fit_to_scale
from model_discovery.sandbox.progress import note

VOCAB = 256  # the head is not what is checked; a small vocabulary keeps every check fast
CAUSAL_TOL = {torch.float64: 1e-9, torch.float32: 1e-5}
TRAIN_STEPS, TRAIN_LR, TRAIN_DROP = 12, 3e-3, 0.9
CONTEXT_TOL = 1e-6  # relative change of the logits at t when every token before t changes
ZERO_GRAD_SHARE = 0.5  # after training, at most this share of the parameters may still get no gradient
DECISIVE_SLOWDOWN = 6.0  # a design this much slower than the reference needs no more timing
SETTLED_BELOW = 1.25  # after three pairs, a ratio under this (the warning is 1.5x) needs no more timing
TIMING_SHARE = 4  # the cost stage times a step on 1/TIMING_SHARE of the rung's batch
DESIGN_FILE = "design.py"
REFERENCE_FILE = "reference.py"  # the trusted reference design the costs are relative to


def _where(exc: BaseException) -> int | None:
    """The design file's line closest to where ``exc`` was raised."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(DESIGN_FILE)]
    return frames[-1].lineno if frames else None


def _failure(check: str, exc: BaseException) -> Finding:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "not enough memory" in text:
        return Finding(check="memory", line=_where(exc), message=f"ran out of memory during {check}: {text[:300]}")
    return Finding(check=check, line=_where(exc), message=f"{text[:500]}")


def _ids(batch: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def _build(design: Design, scale: Scale, n_block: int, config: dict, seed: int = 0, dtype=None) -> DiscoveryLM:
    torch.manual_seed(seed)
    return DiscoveryLM(design.gab_cls, config, scale, vocab_size=VOCAB, n_block=n_block, dtype=dtype)


# -- checks ----------------------------------------------------------------------------------------------------
def check_forward(model: DiscoveryLM, scale: Scale) -> list[Finding]:
    ids = _ids(2, scale.context, 0)
    with torch.no_grad():
        out = model(ids, labels=ids)
    found = []
    if out.logits.shape != (2, scale.context, VOCAB) or out.logits.dtype != torch.float32:
        found.append(Finding(check="forward", message=f"logits have shape {tuple(out.logits.shape)} and dtype "
                             f"{out.logits.dtype}; expected (2, {scale.context}, {VOCAB}) float32."))
    if not torch.isfinite(out.logits).all():
        found.append(Finding(check="finite", message="the forward pass produces NaN or Inf at initialisation."))
    elif not torch.isfinite(out.loss):
        found.append(Finding(check="finite", message="the loss is NaN or Inf at initialisation."))
    return found


def check_causality(model: DiscoveryLM, scale: Scale) -> list[Finding]:
    """Perturbs every position after t and checks nothing at or before t moves, for several t."""
    dtype = next(model.parameters()).dtype
    L = scale.context
    ids = _ids(2, L, 1)
    with torch.no_grad():
        base = model(ids).logits
        for t in sorted({0, L // 4, L // 2 - 1, (3 * L) // 4, L - 2}):
            changed = ids.clone()
            changed[:, t + 1:] = _ids(2, L - t - 1, 100 + t)
            diff = (model(changed).logits[:, :t + 1] - base[:, :t + 1]).abs()
            leak = diff.max().item()
            if not leak <= CAUSAL_TOL[dtype]:  # also catches NaN
                first = int((diff.amax(dim=(0, 2)) > CAUSAL_TOL[dtype]).nonzero()[0])
                return [Finding(check="causality", message=f"the output at position {first} changes (by {leak:.2e}) "
                                f"when only tokens after position {t} change: the block reads the future. Mask "
                                "attention, use causal convolutions and cumulative sums from the left.")]
    return []


def check_incremental(model: DiscoveryLM, scale: Scale) -> list[Finding]:
    """For a design whose units all declare ``incremental``: a sequence fed in pieces through a cache (as
    generation does) gives the outputs of the whole sequence."""
    if model.not_incremental():
        return []  # generation recomputes the window: nothing to check
    dtype = next(model.parameters()).dtype
    L = scale.context
    ids = _ids(2, L, 4)
    cuts = sorted({0, L // 3, L // 3 + 1, L // 2 + 3, L - 1, L})
    with torch.no_grad():
        whole = model(ids).logits
        cache = model.new_cache()
        pieces = torch.cat([model(ids[:, a:b], cache=cache).logits for a, b in pairwise(cuts)], dim=1)
    diff = (pieces - whole).abs()
    gap = diff.max().item()
    if not gap <= CAUSAL_TOL[dtype]:
        first = int((diff.amax(dim=(0, 2)) > CAUSAL_TOL[dtype]).nonzero()[0])
        return [Finding(check="incremental", message=f"every unit declares `incremental = True`, but fed in pieces "
                        f"({', '.join(f'{a}..{b - 1}' for a, b in pairwise(cuts))}) through a cache the "
                        f"sequence's output differs from the whole sequence's from position {first} on (by "
                        f"{gap:.2e}). A unit that declares it must keep in `self.state(Z)` what later pieces need "
                        "(keys and values, recurrent states, last inputs of shifts and convolutions) and offset "
                        "positions by `self.position(Z)`; or it leaves `incremental` unset.")]
    return []


def check_batch_independence(model: DiscoveryLM, scale: Scale) -> list[Finding]:
    dtype = next(model.parameters()).dtype
    ids = _ids(2, scale.context, 2)
    other = ids.clone()
    other[1] = _ids(1, scale.context, 3)[0]
    with torch.no_grad():
        diff = (model(other).logits[0] - model(ids).logits[0]).abs().max().item()
    if not diff <= CAUSAL_TOL[dtype]:
        return [Finding(check="batch_independence", message=f"sequence 0's output changes (by {diff:.2e}) when only "
                        "sequence 1 changes: the block mixes information across the batch (e.g. batch norm or "
                        "statistics over dim 0). Normalise per position.")]
    return []


def check_gradients(model: DiscoveryLM, scale: Scale) -> list[Finding]:
    """Every parameter gets a finite gradient. A parameter the first batch does not reach gets more batches (up to
    three batches of 8 sequences more): a routed expert that no token of a small batch chose is not unused."""
    model.train()
    model.zero_grad()
    length = min(64, scale.context)
    ids = _ids(2, length, 4)
    model(ids, labels=ids).loss.backward()
    for seed in range(40, 43):
        if all(p.grad is not None for p in model.parameters()):
            break
        ids = _ids(8, length, seed)  # gradients add up: the first batch's stay
        model(ids, labels=ids).loss.backward()
    found, zero = [], []
    for name, param in model.named_parameters():
        if param.grad is None:
            found.append(Finding(check="gradients", message=f"parameter {name} gets no gradient: it is unused or "
                                 "detached from the output. Use it, or delete it."))
        elif not torch.isfinite(param.grad).all():
            found.append(Finding(check="finite", message=f"parameter {name} has a NaN or Inf gradient."))
        elif not param.grad.any():
            zero.append(name)
    if zero:
        found.append(Finding(check="gradients", severity="warning", message=f"{len(zero)} parameters have an "
                             f"all-zero gradient at initialisation (e.g. {zero[0]}); check their initialisation."))
    model.zero_grad()
    return found[:5]


def check_training(model: DiscoveryLM, scale: Scale) -> list[Finding]:
    model.train()
    ids = _ids(4, min(64, scale.context), 5)
    opt = torch.optim.AdamW(model.parameters(), lr=TRAIN_LR)
    losses = []
    for _ in range(TRAIN_STEPS):
        loss = model(ids, labels=ids).loss
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    if not all(math.isfinite(x) for x in losses):
        return [Finding(check="finite", message=f"the loss became NaN or Inf during {TRAIN_STEPS} training steps.")]
    if not losses[-1] < TRAIN_DROP * losses[0]:
        return [Finding(check="training", message=f"{TRAIN_STEPS} AdamW steps on one fixed batch did not lower the "
                        f"loss by {1 - TRAIN_DROP:.0%} ({losses[0]:.3f} -> {losses[-1]:.3f}); the block does not "
                        "learn. Check residual connections, initialisation and gradient flow.")]
    return []


def check_context(model: DiscoveryLM, scale: Scale) -> list[Finding]:
    """After the training check: the output at a position must depend on the tokens before it, the embedding must
    get a gradient, and most parameters too. A block that discards its input (multiplies the stream by zero,
    returns a constant) or never mixes positions passes every other check, since the model still learns token
    frequencies, but it can never use context. Run after training, so that zero-initialised output projections,
    which leave the mixer's branch silent at initialisation, have moved."""
    L = min(64, scale.context)
    ids = _ids(2, L, 10)
    model.eval()
    with torch.no_grad():
        base = model(ids).logits[:, -1]
        earlier = ids.clone()
        earlier[:, :-1] = _ids(2, L - 1, 11)
        change = (model(earlier).logits[:, -1] - base).abs().max().item()
    found = []
    if not change > CONTEXT_TOL * (1.0 + base.abs().max().item()):
        found.append(Finding(check="context", message=f"after {TRAIN_STEPS} training steps the output at position "
                             f"{L - 1} does not change (max change {change:.1e}) when every token before it changes: "
                             "the block discards its input or never mixes positions, so the model can only learn "
                             "token frequencies. Keep the residual stream (return X + ..., never X * 0 or a "
                             "constant), and mix earlier positions into each one (attention, a recurrence, a causal "
                             "convolution, a token shift)."))
    model.train()
    model.zero_grad()
    model(ids, labels=ids).loss.backward()
    params = dict(model.named_parameters())
    zero = [n for n, p in params.items() if p.grad is None or not p.grad.any()]
    embedding = next((n for n in params if "emb" in n), None)
    if embedding in zero:
        found.append(Finding(check="context", message=f"after {TRAIN_STEPS} training steps the token embedding "
                             f"({embedding}) gets no gradient: nothing the block outputs depends on its input."))
    share = sum(params[n].numel() for n in zero) / sum(p.numel() for p in params.values())
    if share > ZERO_GRAD_SHARE:
        found.append(Finding(check="context", message=f"after {TRAIN_STEPS} training steps {share:.0%} of the "
                             f"parameters still get no gradient (e.g. {zero[0]}): most of the block does not reach "
                             "the output."))
    model.zero_grad()
    return found


def check_determinism(design: Design, scale: Scale, n_block: int, config: dict) -> list[Finding]:
    ids = _ids(2, min(64, scale.context), 6)
    with torch.no_grad():
        a = _build(design, scale, n_block, config, seed=7).eval()
        b = _build(design, scale, n_block, config, seed=7).eval()
        outs = [a(ids).logits, a(ids).logits, b(ids).logits]
    if not torch.equal(outs[0], outs[1]):
        return [Finding(check="determinism", message="two forward passes in eval mode on the same input differ: the "
                        "block draws random numbers at inference. Only dropout-style noise in train mode is fine.")]
    if not torch.equal(outs[0], outs[2]):
        return [Finding(check="determinism", message="two models built with the same seed differ; initialise only "
                        "through torch's seeded generators.")]
    return []


class _TooSlow(BaseException):  # not an Exception: design code that catches those does not swallow it
    """The design's step used more CPU time than it may (a decisive slowdown): no need to finish it."""


def _too_slow(signum, frame):
    raise _TooSlow


def _train_step_time(model: DiscoveryLM, opt: torch.optim.Optimizer, ids: torch.Tensor,
                     limit_s: float | None = None) -> float | None:
    """The CPU seconds this process spends on one AdamW step. Not wall time: other work on the machine (a training
    beside the checker) slices the wall clock, not the CPU time a step needs. With ``limit_s``, a step that uses
    more CPU time is cut short (a CPU-time alarm) and None returned."""
    start = time.process_time()
    if limit_s:
        previous = signal.signal(signal.SIGPROF, _too_slow)
        signal.setitimer(signal.ITIMER_PROF, limit_s)
    try:
        opt.zero_grad(set_to_none=True)
        model(ids, labels=ids).loss.backward()
        opt.step()
    except _TooSlow:
        return None
    finally:
        if limit_s:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)
    return time.process_time() - start


def _static_cost(model: DiscoveryLM, ids: torch.Tensor, batch_size: int) -> dict[str, float]:
    """FLOPs per token (3x the forward's matmul/conv/attention FLOPs: torch's counter overcounts grouped
    convolutions in backward) and bytes at ``batch_size`` rows (parameters, gradients, and the tensors saved for
    backward, which grow with the rows: counted on ``ids``' rows and scaled)."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), FlopCounterMode(display=False) as flops:
        loss = model(ids, labels=ids).loss
    loss.backward()
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"flops_per_token": 3 * flops.get_total_flops() / ids.numel(),
            "bytes": float(2 * param_bytes + sum(saved.values()) * batch_size / len(ids))}


def measure_cost(design: Design, reference: Design, scale: Scale, repeats: int = 5,
                 confirm_above: float | None = None) -> dict[str, float]:
    """Cost of an AdamW training step at the rung (its context and vocabulary; memory at its batch) relative to the
    reference.

    The gate's counts (FLOPs, bytes) do not depend on the machine. Time does, so it is measured under controlled
    conditions: on one thread (several threads oversubscribe the cores when anything runs beside the checker, and
    their spinning waits can slow a step tenfold), as CPU time, on a quarter of the rung's batch (a step's time is
    linear in its rows: the ratio is the same, at a quarter of the cost), in alternating pairs; the fastest of up to
    ``repeats`` steps counts (noise only ever adds time). It stops early when the answer is clear: a ratio far
    under the warning after three pairs, or far over the reject limit (:data:`DECISIVE_SLOWDOWN`) after two, or
    a design step that uses that much more CPU time than the reference's fastest (cut short by an alarm, so a design
    a thousand times slower is rejected for cost in seconds, not by the checks' CPU budget). A ratio above
    ``confirm_above`` (the reject limit) is measured again with fresh pairs, and the lower of the two ratios stands:
    a rejection needs both.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure_cost(design, reference, scale, repeats, confirm_above)
    finally:
        torch.set_num_threads(threads)


def _measure_cost(design: Design, reference: Design, scale: Scale, repeats: int,
                  confirm_above: float | None) -> dict[str, float]:
    rows = max(1, scale.batch_size // TIMING_SHARE)
    ids = torch.randint(0, scale.vocab, (rows, scale.context), generator=torch.Generator().manual_seed(8))
    models = []
    for d in (reference, design):
        fit = fit_to_scale(d, scale)
        torch.manual_seed(0)
        models.append(DiscoveryLM(d.gab_cls, fit.gab_config, scale, n_block=fit.n_block).train())
    costs = [_static_cost(m, ids, scale.batch_size) for m in models]  # also warms both up
    opts = [torch.optim.AdamW(m.parameters(), lr=scale.lr) for m in models]
    ratios = {f"{k}_ratio": costs[1][k] / costs[0][k] for k in costs[0]}
    first, step, bound = _time_ratio(models, opts, ids, repeats, "cost")
    ratios["time_per_token_ratio"] = first
    if confirm_above is not None and first > confirm_above and not bound:
        again, step, bound = _time_ratio(models, opts, ids, repeats, f"cost (confirming {first:.1f}x)")
        ratios.update(time_per_token_ratio=min(first, again), time_per_token_ratio_first=first)
    if bound:  # every design step was cut short: the ratio is a lower bound
        ratios["time_per_token_ratio_at_least"] = 1.0
    return {**ratios, "time_per_token": step / ids.numel(), **costs[1]}


def _time_ratio(models: list[DiscoveryLM], opts: list, ids: torch.Tensor, repeats: int,
                stage: str) -> tuple[float, float, bool]:
    """(the design's fastest step / the reference's, the design's fastest step, whether every design step was cut
    short) over up to ``repeats`` alternating pairs, the reference first; the progress note says the ratio so far,
    so a time-out reports what was measured. A design step cut short at :data:`DECISIVE_SLOWDOWN` times the
    reference's fastest counts as that ratio (at least); two of them end the timing."""
    times: list[list[float]] = [[], []]
    cut = 0
    for _ in range(repeats):
        times[0].append(_train_step_time(models[0], opts[0], ids))
        limit = DECISIVE_SLOWDOWN * min(times[0])
        took = _train_step_time(models[1], opts[1], ids, limit_s=limit)
        cut += took is None
        times[1].append(limit if took is None else took)
        ratio = min(times[1]) / min(times[0])
        at_least = "at least " if cut == len(times[1]) else ""
        note(f"{stage}: a training step takes {at_least}{ratio:.1f}x the reference's CPU time after "
             f"{len(times[0])} of {repeats} pairs")
        if len(times[0]) >= 2 and ratio >= DECISIVE_SLOWDOWN:
            break  # far past any threshold already (twice): more timing would only spend the time limit
        if len(times[0]) >= 3 and ratio < SETTLED_BELOW:
            break  # far under the warning: more pairs would not change the verdict
    return min(times[1]) / min(times[0]), min(times[1]), cut == len(times[1])


# -- entry points (called by the sandbox child) ------------------------------------------------------------
def _guarded(check: str, fn: Callable[[], list[Finding]]) -> list[Finding]:
    note(check)
    try:
        return fn()
    except Exception as exc:  # design code may raise anything; each becomes a finding
        return [_failure(check, exc)]


def run(payload: dict) -> dict:
    """All dynamic checks of ``design.py`` at ``payload['scale']``; returns findings and measurements."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    result: dict = {"findings": [], "params": None, "n_block": None, "cost": None, "timings": timings}
    findings: list[Finding] = []
    scale = find_scale(payload["scale"])
    note("build")
    try:
        design = load_design(Path(DESIGN_FILE).resolve())
        fit = fit_to_scale(design, scale)
        model = _build(design, scale, fit.n_block, fit.gab_config)
    except ScaleFitError as exc:
        findings.append(Finding(check="params", message=str(exc)))
    except Exception as exc:
        findings.append(_failure("build", exc))
    timings["build_s"] = time.perf_counter() - start
    if findings:
        result["findings"] = [f.model_dump() for f in findings]
        return result
    result.update(params=fit.params, n_block=fit.n_block)
    reference = Path(REFERENCE_FILE)
    steps: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("forward", lambda: check_forward(model, scale)),
        ("determinism", lambda: check_determinism(design, scale, fit.n_block, fit.gab_config)),
        ("causality", lambda: check_causality(_as_double(model), scale)),
        ("incremental", lambda: check_incremental(model, scale)),
        ("batch_independence", lambda: check_batch_independence(model, scale)),
        ("gradients", lambda: check_gradients(model.float(), scale)),
        ("training", lambda: check_training(model, scale)),
        ("context", lambda: check_context(model, scale)),
        ("cost", lambda: result.update(cost=measure_cost(design, load_design(reference.resolve()), scale,
                                                         confirm_above=payload.get("confirm_above"))) or []),
    ]
    for name, step in steps:
        if name == "cost" and (any(f.severity == "error" for f in findings) or not reference.is_file()):
            break  # costs matter only for a design that works
        t0 = time.perf_counter()
        found = _guarded(name, step)
        timings[f"{name}_s"] = time.perf_counter() - t0
        findings += found
        if name in ("forward", "determinism") and any(f.severity == "error" for f in found):
            break  # without a working, repeatable forward pass the other checks mean nothing
    timings["dynamic_s"] = time.perf_counter() - start
    result["findings"] = [f.model_dump() for f in findings]
    return result


def _as_double(model: DiscoveryLM) -> DiscoveryLM:
    """The model in float64 when the design supports it (tighter causality tolerance), else as it is."""
    try:
        model.double()
        with torch.no_grad():
            model(_ids(1, 8, 9))
        return model
    except Exception:
        return model.float()
