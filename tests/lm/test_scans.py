"""The chunked/parallel scans inside library units equal their plain sequential recurrences (float64)."""

import sys

import pytest
import torch


def _helpers(library_design, name):
    return sys.modules[library_design(name).gab_cls.__module__]


def _rand(*shape, low=None):
    x = torch.randn(*shape, dtype=torch.float64, generator=GEN)
    return x if low is None else -torch.rand(*shape, dtype=torch.float64, generator=GEN) * low


GEN = torch.Generator().manual_seed(0)


def test_mamba2_ssd_scan(library_design):
    ssd = _helpers(library_design, "mamba2").ssd_scan
    b, L, h, p, n = 2, 64, 3, 4, 5
    x, log_a, B, C = _rand(b, L, h, p), _rand(b, L, h, low=1.0), _rand(b, L, n), _rand(b, L, n)
    state, ys = torch.zeros(b, h, p, n, dtype=torch.float64), []
    for t in range(L):
        state = log_a[:, t].exp()[..., None, None] * state + torch.einsum("bhp,bn->bhpn", x[:, t], B[:, t])
        ys.append(torch.einsum("bhpn,bn->bhp", state, C[:, t]))
    assert torch.allclose(ssd(x, log_a, B, C, 16), torch.stack(ys, 1), atol=1e-10)


def test_rwkv6_chunked_wkv(library_design):
    wkv = _helpers(library_design, "rwkv6").chunked_wkv
    B, H, L, dk, dv = 2, 3, 64, 4, 5
    r, k, v, log_w, u = _rand(B, H, L, dk), _rand(B, H, L, dk), _rand(B, H, L, dv), _rand(B, H, L, dk, low=5.0), \
        _rand(H, dk)
    S, ys = torch.zeros(B, H, dk, dv, dtype=torch.float64), []
    for t in range(L):
        kv = k[:, :, t, :, None] * v[:, :, t, None, :]
        ys.append(torch.einsum("bhk,bhkv->bhv", r[:, :, t], S + u[None, :, :, None] * kv))
        S = log_w[:, :, t].exp()[..., None] * S + kv
    assert torch.allclose(wkv(r, k, v, log_w, u, 16), torch.stack(ys, 2), atol=1e-10)


def test_ttt_dual_form(library_design):
    dual = _helpers(library_design, "ttt_linear").ttt_dual
    B, H, L, d, chunk = 2, 3, 32, 4, 8
    q, k, v = _rand(B, H, L, d), _rand(B, H, L, d), _rand(B, H, L, d)
    eta, W0 = torch.rand(B, H, L, dtype=torch.float64, generator=GEN) * 0.1, _rand(H, d, d)
    W, zs = W0.expand(B, H, d, d).clone(), []
    for c in range(L // chunk):  # per token: the mini-batch's start weights minus the gradients so far
        W_start, G = W.clone(), torch.zeros_like(W)
        for t in range(c * chunk, (c + 1) * chunk):
            err = torch.einsum("bhd,bhde->bhe", k[:, :, t], W_start) - v[:, :, t]
            G = G + eta[:, :, t, None, None] * k[:, :, t, :, None] * err[:, :, None, :]
            zs.append(torch.einsum("bhd,bhde->bhe", q[:, :, t], W_start - G))
        W = W_start - G
    assert torch.allclose(dual(q, k, v, eta, W0, chunk), torch.stack(zs, 2), atol=1e-10)


@pytest.mark.parametrize("low", [1.0, 5.0])
def test_world_model_gated_scan(library_design, low):
    scan = _helpers(library_design, "world_model").gated_scan
    B, L, D = 2, 64, 5
    log_a, b = _rand(B, L, D, low=low), _rand(B, L, D)
    h, hs = torch.zeros(B, D, dtype=torch.float64), []
    for t in range(L):
        h = log_a[:, t].exp() * h + b[:, t]
        hs.append(h)
    assert torch.allclose(scan(log_a, b, 16), torch.stack(hs, 1), atol=1e-10)
