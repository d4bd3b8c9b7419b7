"""Training throughput: DiscoveryLM(llama) vs Hugging Face LlamaForCausalLM, and every library design vs llama.

Both models of a comparison run in this process, on the same batches, with AdamW, alternating in rounds so that
machine noise hits both alike; the median round counts. Prints `ratio_vs_hf_llama=X` (our tokens/s over theirs).

    python scripts/bench_lm.py [--rounds 5] [--steps 5] [--designs llama mamba2 ...] [--skip-library]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from model_discovery.design import load_design
from model_discovery.design.library import design_names, library_design_path
from model_discovery.lm import DiscoveryLM, Scale, build_lm, load_ladder

VOCAB, D, LAYERS, CONTEXT, BATCH, HEADS, KV_HEADS, INTERMEDIATE = 4096, 128, 4, 128, 16, 4, 2, 352


def _step_fn(model, ids, hf: bool):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        out = model(input_ids=ids, labels=ids) if hf else model(ids, labels=ids)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    return step


def race(steps: dict, n_steps: int, rounds: int, tokens_per_step: int) -> dict[str, float]:
    """Median tokens/s of each step function, measured in alternating rounds after one warm-up round."""
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds + 1):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(n_steps):
                step()
            if r:  # round 0 warms up allocators and caches
                samples[name].append(n_steps * tokens_per_step / (time.perf_counter() - start))
    return {name: statistics.median(s) for name, s in samples.items()}


def bench_vs_hf(rounds: int, n_steps: int) -> float:
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (BATCH, CONTEXT))
    llama = load_design(library_design_path("llama"))
    scale = Scale(name="bench", d_model=D, n_block=LAYERS, context=CONTEXT, vocab=VOCAB, train_tokens=1,
                  batch_tokens=BATCH * CONTEXT, lr=1e-3, warmup=0, ref_params=1)
    ours = DiscoveryLM(llama.gab_cls, llama.gab_config, scale)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=CONTEXT,
                         tie_word_embeddings=True, rms_norm_eps=1e-5)
    theirs = LlamaForCausalLM(config)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    assert n_ours == n_theirs, f"not the same model size: {n_ours} vs {n_theirs}"
    print(f"# DiscoveryLM(llama) vs HF LlamaForCausalLM ({theirs.config._attn_implementation} attention): "
          f"{n_ours:,} parameters, vocab {VOCAB}, d {D}, {LAYERS} layers, context {CONTEXT}, batch {BATCH}, "
          f"{torch.get_num_threads()} threads")
    speeds = race({"ours": _step_fn(ours, ids, False), "hf": _step_fn(theirs, ids, True)}, n_steps, rounds,
                  BATCH * CONTEXT)
    print(f"tokens_per_s ours={speeds['ours']:.0f} hf={speeds['hf']:.0f}")
    ratio = speeds["ours"] / speeds["hf"]
    print(f"ratio_vs_hf_llama={ratio:.3f}")
    return ratio


def bench_library(names: list[str], rounds: int, n_steps: int) -> None:
    """Each design raced against a fresh llama, two models at a time (holding every model at once slows the
    allocator-heavy designs and would not measure them fairly)."""
    scale = load_ladder("cpu").rungs[0]
    torch.manual_seed(0)
    ids = torch.randint(0, scale.vocab, (scale.batch_size, scale.context))
    print(f"\n# library designs at {scale.name} (batch {scale.batch_size} x {scale.context}), each raced against "
          "llama in turn")
    print(f"{'design':<18} {'tokens/s':>9} {'llama':>9} {'vs llama':>9}")
    llama = load_design(library_design_path("llama"))
    for name in names:
        design = load_design(library_design_path(name))
        steps = {"llama": _step_fn(build_lm(llama, scale), ids, False),
                 name: _step_fn(build_lm(design, scale), ids, False)}
        speeds = race(steps, n_steps, rounds, scale.batch_tokens)
        print(f"{name:<18} {speeds[name]:>9.0f} {speeds['llama']:>9.0f} {speeds[name] / speeds['llama']:>9.2f}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="optimiser steps per round")
    parser.add_argument("--designs", nargs="*", default=None, help="library designs (default: all)")
    parser.add_argument("--skip-library", action="store_true")
    args = parser.parse_args()
    bench_vs_hf(args.rounds, args.steps)
    if not args.skip_library:
        bench_library(args.designs or [n for n in design_names() if n != "llama"], max(1, args.rounds // 2),
                      args.steps)


if __name__ == "__main__":
    main()
