"""Generation with a cache against recomputing the window: tokens/s for ``--new`` new tokens after a 16-token
prompt, through ``DiscoveryLM.greedy`` and through the Hugging Face export's ``generate()``, and whether the cached
tokens equal the recomputed ones (each way against itself).

The models are untrained (speed does not depend on the weights), at a rung's width and depth with its context
raised to ``--context`` so that prompt and continuation fit: then both ways read the same tokens. The two ways run
alternately in each of ``--rounds`` rounds after a warm-up, in this process; the median round counts. Prints
``speedup_<design>=X`` lines (cached over recomputed tokens/s, our path).

    python scripts/bench_generate.py [--designs llama,rwkv6,mamba2] [--new 256] [--rung cpu-2m] [--context 512]
        [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from model_discovery.design import load_design
from model_discovery.design.library import library_design_path
from model_discovery.export.hf import export_hf
from model_discovery.lm import build_lm, fit_to_scale, load_ladder
from model_discovery.verify.artifacts import save_model
from model_discovery.verify.data import EOS

PROMPT = 16


def _verified_folder(path: Path, name: str, model) -> Path:
    """What ``modis verify`` leaves, for an untrained model: design, weights, config and a word-level tokenizer."""
    path.mkdir(parents=True)
    (path / "design.py").write_text(library_design_path(name).read_text())
    save_model(path, model, name)
    tokenizer = Tokenizer(models.WordLevel({EOS: 0, **{f"w{i}": i for i in range(1, model.vocab_size)}}, EOS))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(path / "tokenizer.json"))
    return path


def _timed(fn) -> tuple[float, list[int]]:
    start = time.perf_counter()
    tokens = fn()
    return time.perf_counter() - start, tokens


def bench(name: str, rung: str, context: int, new: int, rounds: int, scratch: Path) -> dict:
    from transformers import AutoModelForCausalLM

    scale = load_ladder("cpu").rung(rung).model_copy(update={"context": context})
    design = load_design(library_design_path(name))
    torch.manual_seed(0)
    model = build_lm(design, scale, fit_to_scale(design, scale)).eval()
    prompt = torch.randint(1, model.vocab_size, (PROMPT,), generator=torch.Generator().manual_seed(0)).tolist()
    hf = AutoModelForCausalLM.from_pretrained(
        export_hf(_verified_folder(scratch / name / "verify", name, model), scratch / name / "hf"),
        trust_remote_code=True).eval()
    ids = torch.tensor([prompt])

    def ours(cache: bool):
        return lambda: list(islice(model.greedy(prompt, use_cache=cache), new))

    def theirs(cache: bool):
        return lambda: hf.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                   use_cache=cache)[0, PROMPT:].tolist()

    ways = {"ours, recomputed": ours(False), "ours, cached": ours(True),
            "hf, recomputed": theirs(False), "hf, cached": theirs(True)}
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    tokens: dict[str, list[int]] = {}
    for r in range(rounds + 1):
        for way, fn in ways.items():
            took, tokens[way] = _timed(fn)
            if r:  # round 0 warms up
                seconds[way].append(took)
    speed = {way: new / statistics.median(s) for way, s in seconds.items()}
    # each way against itself: generate()'s min_new_tokens bans the end-of-text token, which ours does not
    equal = all(tokens[f"{way}, cached"] == tokens[f"{way}, recomputed"] for way in ("ours", "hf"))
    return {"design": name, "params": model.block_params(), "n_block": model.n_block, **speed, "equal": equal}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--designs", default="llama,rwkv6,mamba2")
    p.add_argument("--new", type=int, default=256, help="new tokens per generation")
    p.add_argument("--rung", default="cpu-2m", help="the width, depth and vocabulary of the models")
    p.add_argument("--context", type=int, default=512, help="at least the prompt (16) plus --new")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--keep", default=None, help="keep the exported folders here (DIR/DESIGN/hf), e.g. to time them "
                   "in an environment with only torch and transformers")
    args = p.parse_args(argv)
    if args.context < PROMPT + args.new:
        p.error(f"--context {args.context} is shorter than the prompt ({PROMPT}) plus --new {args.new}")
    ways = ("ours, recomputed", "ours, cached", "hf, recomputed", "hf, cached")
    print(f"{'design':<10}{'params':>9}{'blocks':>7}" + "".join(f"{w:>18}" for w in ways) + f"{'speedup':>9}"
          f"{'hf speedup':>12}{'equal':>7}   (tokens/s, {args.new} new tokens, {torch.get_num_threads()} threads)")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.designs.split(","):
            r = bench(name, args.rung, args.context, args.new, args.rounds, Path(args.keep or scratch))
            rows.append(r)
            print(f"{name:<10}{r['params']:>9}{r['n_block']:>7}" + "".join(f"{r[w]:>18.1f}" for w in ways)
                  + f"{r['ours, cached'] / r['ours, recomputed']:>9.2f}"
                  + f"{r['hf, cached'] / r['hf, recomputed']:>12.2f}{'yes' if r['equal'] else 'NO':>7}", flush=True)
    for r in rows:
        print(f"speedup_{r['design']}={r['ours, cached'] / r['ours, recomputed']:.3f}")
    return 0 if all(r["equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
