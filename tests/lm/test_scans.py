"""Scans inside library units that are not `ops.linear_recurrence` equal their sequential forms (float64); the
units built on the vetted kernels compute what their papers write."""

import sys

import torch


def _helpers(library_design, name):
    return sys.modules[library_design(name).gab_cls.__module__]


def _rand(*shape, low=None):
    x = torch.randn(*shape, dtype=torch.float64, generator=GEN)
    return x if low is None else -torch.rand(*shape, dtype=torch.float64, generator=GEN) * low


GEN = torch.Generator().manual_seed(0)


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
    z, W_end = dual(q, k, v, eta, W0, chunk)
    assert torch.allclose(z, torch.stack(zs, 2), atol=1e-10) and torch.allclose(W_end, W, atol=1e-10)


def _unit(library_design, design, unit, embed_dim=32, **kwargs):
    cls = getattr(_helpers(library_design, design), unit)
    torch.manual_seed(0)
    return cls(embed_dim, (0, 2), kwarg_all={}, dtype=torch.float64, **kwargs)


def test_retention_unit_equals_the_parallel_form(library_design):
    """RetNet's parallel form (Sun et al., eq. 5-6 with the paper's normalisations), written out in full."""
    helpers = _helpers(library_design, "retnet")
    unit = _unit(library_design, "retnet", "MultiScaleRetention", num_heads=4)
    B, L, H = 2, 45, 4
    X = _rand(B, L, 32)
    angles = torch.outer(torch.arange(L, dtype=torch.float32), unit.inv_freq)  # the unit rotates in float32
    q = helpers.rotate_pairs(unit.q_proj(X).view(B, L, H, -1).transpose(1, 2), angles)
    k = helpers.rotate_pairs(unit.k_proj(X).view(B, L, H, -1).transpose(1, 2), angles) / unit.key_dim ** 0.5
    v = unit.v_proj(X).view(B, L, H, -1).transpose(1, 2)
    delta = torch.arange(L)[:, None] - torch.arange(L)[None, :]
    D = torch.exp(unit.log_gamma.double()[:, None, None] * delta).masked_fill(delta < 0, 0.0)
    scores = (q @ k.transpose(-1, -2)) * (D / D.sum(-1, keepdim=True).sqrt())
    scores = scores / scores.sum(-1, keepdim=True).abs().clamp(min=1.0)
    y = unit.group_norm((scores @ v).transpose(1, 2).reshape(B * L, -1)).view(B, L, -1)
    ref = unit.out_proj(torch.nn.functional.silu(unit.g_proj(X)) * y)
    assert torch.allclose(unit(X)[0], ref, atol=1e-9)


def test_world_model_belief_is_a_gated_average(library_design):
    """h_t = a_t h_{t-1} + (1 - a_t) s_t per channel, token by token."""
    unit = _unit(library_design, "world_model", "WorldModelMixer", wm_chunk=16)
    X = _rand(2, 40, 32)
    seen = {}
    unit.predict.register_forward_hook(lambda m, args, out: seen.setdefault("h", args[0]))
    unit(X)
    F = torch.nn.functional
    conv = F.conv1d(F.pad(X.transpose(1, 2), (unit.conv.kernel_size[0] - 1, 0)), unit.conv.weight, unit.conv.bias,
                    groups=32)  # the causal depthwise convolution, as torch computes it
    s = unit.represent(F.silu(conv.transpose(1, 2)))
    a = torch.sigmoid(unit.forget(X) + 2.0)
    h, hs = torch.zeros(2, s.shape[-1], dtype=torch.float64), []
    for t in range(40):
        h = a[:, t] * h + (1 - a[:, t]) * s[:, t]
        hs.append(h)
    assert torch.allclose(seen["h"], torch.stack(hs, 1), atol=1e-9)
