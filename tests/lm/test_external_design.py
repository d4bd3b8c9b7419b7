"""A design file written by someone else (the format of docs/architecture.md, "Design files") loads, fits a rung
and trains, unchanged."""

from pathlib import Path

import torch

from model_discovery.design import load_design
from model_discovery.lm import build_lm, fit_to_scale

EXTERNAL = Path(__file__).parents[1] / "fixtures" / "external_design.py"


def test_external_design_loads_fits_and_trains(cpu_ladder):
    design = load_design(EXTERNAL)
    assert design.gab_config == {"kernel_size": 4, "hidden_mult": 2, "gate_penalty": 0.01}
    scale = cpu_ladder.rung("cpu-1m")
    fit = fit_to_scale(design, scale)
    assert abs(fit.rel_error) <= 0.2
    torch.manual_seed(0)
    model = build_lm(design, scale, fit, vocab_size=128)
    ids = torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        out = model(ids, labels=ids)
        first = first if first is not None else out.loss.item()
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    # the gate penalty of every block reaches the loss: 0.01 * mean(sigmoid) per block
    assert out.aux_loss is not None and 0 < out.aux_loss.item() <= 0.01 * fit.n_block
    assert out.loss.item() < 0.5 * first
