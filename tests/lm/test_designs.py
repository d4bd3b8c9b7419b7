"""Every library design at every cpu rung: fits, shapes, causality, batch independence, gradients, learning."""

import pytest
import torch

from model_discovery.lm import build_lm, fit_to_scale
from tests.conftest import CPU_RUNGS, LIBRARY

VOCAB = 96


def _model(design, scale, seed=0):
    torch.manual_seed(seed)
    return build_lm(design, scale, fit_to_scale(design, scale), vocab_size=VOCAB)


@pytest.fixture(scope="module")
def models(library_design, cpu_ladder):
    cache = {}

    def get(name, rung):
        if (name, rung) not in cache:
            cache[(name, rung)] = _model(library_design(name), cpu_ladder.rung(rung))
        return cache[(name, rung)]

    return get


@pytest.mark.parametrize("rung", CPU_RUNGS)
@pytest.mark.parametrize("name", LIBRARY)
def test_fits_rung_within_20_percent(name, rung, library_design, cpu_ladder):
    fit = fit_to_scale(library_design(name), cpu_ladder.rung(rung))
    assert abs(fit.rel_error) <= 0.20
    assert _model(library_design(name), cpu_ladder.rung(rung)).block_params() == fit.params


@pytest.mark.parametrize("rung", CPU_RUNGS)
@pytest.mark.parametrize("name", LIBRARY)
def test_causal_and_batch_independent(name, rung, models):
    model = models(name, rung).eval()
    L = 48
    ids = torch.randint(0, VOCAB, (2, L), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model(ids).logits
        assert base.shape == (2, L, VOCAB) and torch.isfinite(base).all()
        for t in (0, 7, 20, 33, L - 2):
            changed = ids.clone()
            changed[:, t + 1:] = torch.randint(0, VOCAB, (2, L - t - 1), generator=torch.Generator().manual_seed(t))
            leak = (model(changed).logits[:, :t + 1] - base[:, :t + 1]).abs().max().item()
            assert leak < 1e-5, f"{name}: positions <= {t} depend on later tokens (max change {leak:.2e})"
        other = ids.clone()
        other[1] = torch.randint(0, VOCAB, (L,), generator=torch.Generator().manual_seed(99))
        cross = (model(other).logits[0] - base[0]).abs().max().item()
        assert cross < 1e-5, f"{name}: batch element 0 depends on element 1 (max change {cross:.2e})"


@pytest.mark.parametrize("rung", CPU_RUNGS)
@pytest.mark.parametrize("name", LIBRARY)
def test_every_parameter_gets_a_finite_gradient(name, rung, models):
    model = models(name, rung).train()
    model.zero_grad()
    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(1))
    model(ids, labels=ids).loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{name}: {pname} gets no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {pname} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name}: {pname} has an all-zero gradient"
    model.zero_grad()


# learning is the same property at every rung: the default run trains at the two smallest, the rest are `slow`
LEARNING_RUNGS = [r if i < 2 else pytest.param(r, marks=pytest.mark.slow) for i, r in enumerate(CPU_RUNGS)]


@pytest.mark.parametrize("rung", LEARNING_RUNGS)
@pytest.mark.parametrize("name", LIBRARY)
def test_loss_falls_on_a_fixed_batch(name, rung, library_design, cpu_ladder):
    model = _model(library_design(name), cpu_ladder.rung(rung), seed=2).train()
    ids = torch.randint(0, VOCAB, (4, 32), generator=torch.Generator().manual_seed(2))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(ids, labels=ids).loss
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0], f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f} over 30 steps"


PIECES = [(0, 20), (20, 21), (21, 37), (37, 38), (38, 48)]  # a prompt, single tokens, across chunk and span ends


@pytest.mark.parametrize("name", LIBRARY)
def test_generation_with_a_cache_equals_recomputation(name, library_design, cpu_ladder):
    """Every library design is incremental: a sequence fed in pieces through a cache gives the logits of the whole
    sequence, and greedy generation with a cache gives the tokens of generation that recomputes the window."""
    model = _model(library_design(name), cpu_ladder.rung("cpu-1m")).eval().double()
    assert model.not_incremental() == []
    ids = torch.randint(0, 12, (2, 48), generator=torch.Generator().manual_seed(1))  # repeated tokens: tied keys
    with torch.no_grad():
        whole = model(ids).logits
        cache = model.new_cache()
        pieces = torch.cat([model(ids[:, s:e], cache=cache).logits for s, e in PIECES], dim=1)
    assert cache.seen == 48
    assert (pieces - whole).abs().max().item() < 1e-9
    prompt = ids[0, :9].tolist()
    cached = [t for _, t in zip(range(40), model.greedy(prompt))]
    assert cached == [t for _, t in zip(range(40), model.greedy(prompt, use_cache=False))]
