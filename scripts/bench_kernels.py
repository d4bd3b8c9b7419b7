"""Forward + backward time of the recurrence kernels at the library's shapes, against softmax attention.

Each kernel runs at a (B, H, L, d) that a library unit gives it at a CPU rung (batch of the rung, its context),
beside ``ops.causal_attention`` at the same shape in the same process (llama's mixer, what the checker's costs
are relative to); the two alternate in rounds after a warm-up and the median round counts. Decays are drawn down
to ``--low`` (the kernels are exact for any rate; a large one costs the same as a small one).

    python scripts/bench_kernels.py [--rounds 5] [--threads 2] [--low 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from model_discovery.design import ops

# name: (B, H, L, dk, dv, decay form, bonus, chunk), at the rungs' batch and context
CASES = {
    "rwkv6 cpu-1m": (32, 4, 128, 32, 32, "channel", True, 16),
    "rwkv6 cpu-2m": (32, 6, 256, 32, 32, "channel", True, 16),
    "gla (synthesized) cpu-1m": (32, 4, 128, 32, 32, "channel", False, 32),
    "mamba2 cpu-1m": (32, 4, 128, 16, 64, "head", False, 64),
    "retnet cpu-1m": (32, 4, 128, 32, 33, "fixed", False, 32),
}


def _race(steps: dict, rounds: int) -> dict[str, float]:
    """Median ms of each step (forward and backward), the steps alternating in rounds after a warm-up round, so that
    load on the machine hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds + 1):
        for name, step in steps.items():
            start = time.perf_counter()
            step().square().mean().backward()
            if r:
                samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(s) for name, s in samples.items()}


def _leaf(*shape, gen, scale=1.0):
    return (torch.randn(*shape, generator=gen) * scale).requires_grad_()


def _row(name: str, shape: tuple, ms: dict[str, float]) -> None:
    rec, att = ms["recurrence"], ms["attention"]
    print(f"{name:<26} {shape!s:<26} {rec:>14.1f} {att:>13.1f} {rec / att:>6.2f}")


def bench(rounds: int, low: float) -> None:
    gen = torch.Generator().manual_seed(0)
    print(f"{'case':<26} {'shape':<26} {'recurrence ms':>14} {'attention ms':>13} {'ratio':>6}")
    for name, (B, H, L, dk, dv, form, bonus, chunk) in CASES.items():
        q, k, v = _leaf(B, H, L, dk, gen=gen), _leaf(B, H, L, dk, gen=gen), _leaf(B, H, L, dv, gen=gen)
        decay_shape = {"channel": (B, H, L, dk), "head": (B, H, L), "fixed": (1, H, 1)}[form]
        a = (-torch.rand(*decay_shape, generator=gen) * low).requires_grad_()
        u = _leaf(H, dk, gen=gen) if bonus else None
        qa, ka, va = (_leaf(B, H, L, dk, gen=gen) for _ in range(3))
        steps = {"recurrence": partial(ops.linear_recurrence, q, k, v, a, bonus=u, chunk=chunk),
                 "attention": partial(ops.causal_attention, qa, ka, va)}
        _row(name, (B, H, L, dk, dv), _race(steps, rounds))
    B, L, D = 32, 128, 64  # the world model's belief state at cpu-1m
    a = (-torch.rand(B, L, D, generator=gen) * low).requires_grad_()
    qa, ka, va = (_leaf(B, 4, L, D // 4, gen=gen) for _ in range(3))
    steps = {"recurrence": partial(ops.diagonal_recurrence, a, _leaf(B, L, D, gen=gen)),
             "attention": partial(ops.causal_attention, qa, ka, va)}
    _row("world_model cpu-1m (diag)", (B, L, D), _race(steps, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--low", type=float, default=30.0, help="decays are drawn from [-LOW, 0]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench(args.rounds, args.low)


if __name__ == "__main__":
    main()
