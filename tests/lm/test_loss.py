import torch
import torch.nn.functional as F

from model_discovery.lm import loss as loss_mod
from model_discovery.lm.loss import IGNORE_INDEX, cross_entropy


def test_matches_torch_cross_entropy_value_and_gradient(monkeypatch):
    monkeypatch.setattr(loss_mod, "_CHUNK_ELEMENTS", 3 * 37)  # several chunks, the last one short
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 37, dtype=torch.float64, generator=gen, requires_grad=True)
    targets = torch.randint(0, 37, (50,), generator=gen)
    targets[::7] = IGNORE_INDEX
    ours = cross_entropy(logits, targets)
    ref = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)
    assert torch.allclose(ours, ref)
    g_ours, = torch.autograd.grad(ours * 3, logits)
    g_ref, = torch.autograd.grad(ref * 3, logits)
    assert torch.allclose(g_ours, g_ref)
    assert torch.autograd.gradcheck(lambda x: cross_entropy(x, targets), (logits,))


def test_all_ignored_gives_zero_not_nan():
    logits = torch.randn(4, 5, requires_grad=True)
    out = cross_entropy(logits, torch.full((4,), IGNORE_INDEX))
    out.backward()
    assert out.item() == 0 and torch.equal(logits.grad, torch.zeros(4, 5))


def test_bf16_logits_reduce_in_float32():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 300, generator=gen).to(torch.bfloat16).requires_grad_()
    targets = torch.randint(0, 300, (64,), generator=gen)
    ours = cross_entropy(logits, targets)
    ref = F.cross_entropy(logits.float(), targets)
    assert ours.dtype == torch.float32 and torch.allclose(ours, ref, atol=1e-5)
    ours.backward()
    assert logits.grad.dtype == torch.bfloat16
