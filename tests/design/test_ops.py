"""The vetted kernels equal their plain per-token forms in float64, are causal, and pass gradients."""

import math

import pytest
import torch

from model_discovery.design import ops

GEN = torch.Generator().manual_seed(0)


def _rand(*shape, low=None):
    if low is None:
        return torch.randn(*shape, dtype=torch.float64, generator=GEN)
    return -torch.rand(*shape, dtype=torch.float64, generator=GEN) * low  # log-decays in [-low, 0]


def naive_recurrence(q, k, v, log_decay, bonus=None, initial_state=None):
    """h_t = diag(exp(a_t)) h_{t-1} + k_t v_t^T; y_t = q_t h_t, or q_t (h_{t-1} + diag(u) k_t v_t^T); token by token."""
    B, H = torch.broadcast_shapes(q.shape[:2], k.shape[:2], v.shape[:2], log_decay.shape[:2])
    L, dk, dv = v.shape[2], k.shape[-1], v.shape[-1]
    q, k, v = q.expand(B, H, L, dk), k.expand(B, H, L, dk), v.expand(B, H, L, dv)
    a = log_decay.expand(B, H, L, dk) if log_decay.dim() == 4 else log_decay.expand(B, H, L)[..., None]
    h, ys = torch.zeros(B, H, dk, dv, dtype=torch.float64), []
    if initial_state is not None:
        h = h + initial_state
    for t in range(L):
        kv = k[:, :, t, :, None] * v[:, :, t, None, :]
        if bonus is None:
            h = a[:, :, t].exp().expand(B, H, dk)[..., None] * h + kv
            ys.append(torch.einsum("bhk,bhkv->bhv", q[:, :, t], h))
        else:
            ys.append(torch.einsum("bhk,bhkv->bhv", q[:, :, t], h + bonus[None, :, :, None] * kv))
            h = a[:, :, t].exp().expand(B, H, dk)[..., None] * h + kv
    return torch.stack(ys, 2)


@pytest.mark.parametrize("L", [64, 50])
@pytest.mark.parametrize("decay", ["scalar", "vector", "vector30", "fixed", "none"])
@pytest.mark.parametrize("bonus", [False, True])
def test_linear_recurrence_equals_its_recurrent_form(L, decay, bonus):
    B, H, dk, dv = 2, 3, 4, 5
    q, k, v = _rand(B, H, L, dk), _rand(B, H, L, dk), _rand(B, H, L, dv)
    a = {"scalar": _rand(B, H, L, low=8.0),  # Mamba-2 style: large per-head rates are exact on the scalar path
         "vector": _rand(B, H, L, dk, low=5.0),  # GLA / RWKV-6 style
         "vector30": _rand(B, H, L, dk, low=30.0),  # a channel that forgets at once: exact, not clamped
         "fixed": _rand(1, H, 1, low=1.0),  # RetNet style: one rate per head
         "none": torch.zeros(1, 1, 1, dtype=torch.float64)}[decay]  # plain linear attention
    u = _rand(H, dk) if bonus else None
    got = ops.linear_recurrence(q, k, v, a, bonus=u, chunk=16)
    assert got.shape == (B, H, L, dv) and got.dtype == torch.float64
    assert torch.allclose(got, naive_recurrence(q, k, v, a, u), atol=1e-9)


def test_linear_recurrence_shares_keys_across_heads():
    """Mamba-2's B and C are shared by the heads: q and k with one head broadcast against v's heads."""
    B, H, L, n, p = 2, 3, 40, 5, 4
    q, k, v, a = _rand(B, 1, L, n), _rand(B, 1, L, n), _rand(B, H, L, p), _rand(B, H, L, low=3.0)
    assert torch.allclose(ops.linear_recurrence(q, k, v, a, chunk=8), naive_recurrence(q, k, v, a), atol=1e-10)


@pytest.mark.parametrize("chunk", [2, 8, 16, 32, 64])
def test_linear_recurrence_is_exact_for_any_decay(chunk):
    """Decays from -30 to 0 a step, on both forms and every chunk size: nothing is clamped or overflows."""
    B, H, L, d = 1, 2, 70, 3
    q, k, v = _rand(B, H, L, d), _rand(B, H, L, d), _rand(B, H, L, d)
    for a in (_rand(B, H, L, d, low=30.0), _rand(B, H, L, low=30.0), torch.full((B, H, L, d), -30.0).double()):
        for u in (None, _rand(H, d)):
            got = ops.linear_recurrence(q, k, v, a, bonus=u, chunk=chunk)
            assert torch.allclose(got, naive_recurrence(q, k, v, a, u), atol=1e-12, rtol=0)


def _decay_grads(kernel, reference, inputs, seed=1):
    """Gradients of the same random projection of ``kernel``'s and ``reference``'s outputs w.r.t. ``inputs``."""
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    grads = []
    for f in (kernel, reference):
        out = f(*inputs)
        weight = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(seed))
        grads.append(torch.autograd.grad((out * weight).sum(), inputs))
    return grads


@pytest.mark.parametrize("decay", ["scalar", "vector"])
@pytest.mark.parametrize("bonus", [False, True])
def test_linear_recurrence_gradients_equal_the_recurrent_forms(decay, bonus):
    """The gradients of q, k, v, the decays (down to -30), the bonus and the initial state equal the per-token
    form's in float64: a channel that forgets fast still learns."""
    B, H, L, dk, dv = 2, 2, 45, 4, 3
    a = _rand(B, H, L, dk, low=30.0) if decay == "vector" else _rand(B, H, L, low=30.0)
    h0 = _rand(B, H, dk, dv)
    inputs = [_rand(B, H, L, dk), _rand(B, H, L, dk), _rand(B, H, L, dv), a, h0] + ([_rand(H, dk)] if bonus else [])

    def kernel(q, k, v, a, h0, u=None):
        return ops.linear_recurrence(q, k, v, a, bonus=u, chunk=16, initial_state=h0)

    def reference(q, k, v, a, h0, u=None):
        return naive_recurrence(q, k, v, a, u, initial_state=h0)

    got, want = _decay_grads(kernel, reference, inputs)
    for name, g, w in zip(["q", "k", "v", "log_decay", "initial_state", "bonus"], got, want):
        assert torch.allclose(g, w, atol=1e-10, rtol=0), name
    fast = inputs[3][:, :, :-1] < -5  # decays a clamp at -5 once cut off (the last one reaches no output)
    assert fast.any() and (got[3][:, :, :-1][fast] != 0).all()


def test_linear_recurrence_float32_is_stable_and_differentiable():
    B, H, L, d = 2, 2, 128, 8
    q, k, v = (torch.randn(B, H, L, d, requires_grad=True) for _ in range(3))
    a = (-torch.rand(B, H, L, d) * 30).requires_grad_()
    y = ops.linear_recurrence(q, k, v, a, chunk=64)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v, a))
    ref = naive_recurrence(*(t.detach().double() for t in (q, k, v, a)))
    assert torch.allclose(y.detach().double(), ref, atol=1e-3, rtol=1e-3)


def test_linear_recurrence_is_causal():
    B, H, L, d = 1, 2, 48, 4
    q, k, v, a = _rand(B, H, L, d), _rand(B, H, L, d), _rand(B, H, L, d), _rand(B, H, L, low=1.0)
    y = ops.linear_recurrence(q, k, v, a, chunk=16)
    t = 20
    k2, v2 = k.clone(), v.clone()
    k2[:, :, t + 1:] += 1.0
    v2[:, :, t + 1:] -= 2.0
    y2 = ops.linear_recurrence(q, k2, v2, a, chunk=16)
    assert torch.allclose(y[:, :, :t + 1], y2[:, :, :t + 1], atol=1e-12)
    assert not torch.allclose(y[:, :, t + 1:], y2[:, :, t + 1:])


def test_causal_attention_equals_masked_softmax():
    B, H, Hkv, L, d = 2, 4, 2, 20, 8
    q, k, v = _rand(B, H, L, d), _rand(B, Hkv, L, d), _rand(B, Hkv, L, d)
    for window in (0, 5):
        got = ops.causal_attention(q, k, v, window=window)
        kk, vv = k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1)
        scores = q @ kk.transpose(-1, -2) / math.sqrt(d)
        pos = torch.arange(L)
        delta = pos[:, None] - pos[None, :]
        allowed = (delta >= 0) & ((delta < window) if window else True)
        ref = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ vv
        assert torch.allclose(got, ref, atol=1e-10), window


def test_rotary_rotates_pairs_and_preserves_norms():
    x = _rand(1, 2, 10, 8)
    y = ops.rotary(x, theta=100.0)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-6)
    t, i = 7, 1  # pair (i, i + hd/2) at position t turns by t * theta^(-2i/hd)
    angle = t * 100.0 ** (-2 * i / 8)
    c, s = math.cos(angle), math.sin(angle)
    assert torch.allclose(y[..., t, i], x[..., t, i] * c - x[..., t, i + 4] * s, atol=1e-5)
    assert torch.allclose(y[..., t, i + 4], x[..., t, i + 4] * c + x[..., t, i] * s, atol=1e-5)
    assert torch.allclose(ops.rotary(x[..., 3:, :], theta=100.0, offset=3), y[..., 3:, :], atol=1e-6)
    # scores depend only on the distance between positions
    q = ops.rotary(x[:, :1, :1].expand(1, 1, 10, 8), theta=100.0)  # one vector at every position
    assert torch.allclose((q[..., 2, :] * q[..., 5, :]).sum(), (q[..., 4, :] * q[..., 7, :]).sum(), atol=1e-6)


def test_causal_conv_and_token_shift():
    B, L, C, K = 2, 12, 3, 4
    x, w, b = _rand(B, L, C), _rand(C, K), _rand(C)
    ref = torch.zeros(B, L, C, dtype=torch.float64)
    for t in range(L):
        for i in range(K):
            s = t - K + 1 + i
            if s >= 0:
                ref[:, t] += w[:, i] * x[:, s]
    assert torch.allclose(ops.causal_conv(x, w, b), ref + b, atol=1e-12)
    assert torch.allclose(ops.causal_conv(x, w), ref, atol=1e-12)
    shifted = ops.token_shift(x, 2)
    assert torch.equal(shifted[:, 2:], x[:, :-2]) and not shifted[:, :2].any()
    assert torch.equal(ops.token_shift(x, 0), x)


def naive_diagonal(a, b, h0):
    h, hs = h0, []
    for t in range(b.shape[1]):
        h = a[:, t].exp() * h + b[:, t]
        hs.append(h)
    return torch.stack(hs, 1)


@pytest.mark.parametrize("L", [64, 37, 1])
@pytest.mark.parametrize("low", [1.0, 5.0, 30.0])
@pytest.mark.parametrize("chunk", [1, 5, 16])
def test_diagonal_recurrence_equals_its_recurrent_form(L, low, chunk):
    B, D = 2, 5
    a, b, h0 = _rand(B, L, D, low=low), _rand(B, L, D), _rand(B, D)
    got, last = ops.diagonal_recurrence(a, b, chunk=chunk, initial_state=h0, output_final_state=True)
    want = naive_diagonal(a, b, h0)
    assert got.shape == (B, L, D) and torch.allclose(got, want, atol=1e-12, rtol=0)
    assert torch.allclose(last, want[:, -1], atol=1e-12, rtol=0)


def test_diagonal_recurrence_gradients_equal_the_recurrent_form():
    B, L, D = 2, 45, 4
    got, want = _decay_grads(lambda a, b, h0: ops.diagonal_recurrence(a, b, chunk=8, initial_state=h0), naive_diagonal,
                             [_rand(B, L, D, low=30.0), _rand(B, L, D), _rand(B, D)])
    for name, g, w in zip(["log_decay", "b", "initial_state"], got, want):
        assert torch.allclose(g, w, atol=1e-12, rtol=0), name


def test_diagonal_recurrence_float32_is_stable():
    a, b = -torch.rand(2, 300, 8) * 30, torch.randn(2, 300, 8)
    got = ops.diagonal_recurrence(a, b)
    want = naive_diagonal(a.double(), b.double(), torch.zeros(2, 8, dtype=torch.float64))
    assert torch.isfinite(got).all() and torch.allclose(got.double(), want, atol=1e-5)


def test_edge_cases_are_handled_or_refused():
    q, k, v = _rand(1, 2, 9, 3), _rand(1, 2, 9, 3), _rand(1, 2, 9, 3)
    a = _rand(1, 2, 9, 3, low=1.0)
    assert torch.allclose(ops.linear_recurrence(q, k, v, a, chunk=1), naive_recurrence(q, k, v, a), atol=1e-10)
    with pytest.raises(ValueError, match=r"\(B, H, L\) \(a decay per head\) or \(B, H, L, 3\)"):
        ops.linear_recurrence(q, k, v, _rand(2, 1, low=1.0))
    x = _rand(2, 3, 4)
    assert not ops.token_shift(x, 5).any()
    assert torch.allclose(ops.diagonal_recurrence(_rand(2, 9, 4, low=1.0) * 0, x[:, :1].expand(2, 9, 4), chunk=1),
                          torch.cumsum(x[:, :1].expand(2, 9, 4), 1), atol=1e-10)


@pytest.mark.parametrize("L", [9, 40])  # inside one chunk, and across chunks
def test_shapes_off_the_documented_layout_are_errors_naming_it(L):
    B, H, dk, dv = 2, 4, 8, 32
    q, k, v = _rand(B, H, L, dk), _rand(B, H, L, dk), _rand(B, H, L, dv)
    a = _rand(B, H, L, dk, low=1.0)
    with pytest.raises(ValueError, match=r"bonus must be \(H, dk\) = \(4, 8\)"):
        ops.linear_recurrence(q, k, v, a, bonus=_rand(dk), chunk=16)  # (dk,): once a wrong-shaped output
    with pytest.raises(ValueError, match="bonus"):
        ops.linear_recurrence(q, k, v, a, bonus=_rand(H, dv), chunk=16)
    with pytest.raises(ValueError, match=r"a decay per head is \(B, H, L\)"):
        ops.linear_recurrence(q, k, v, a[..., :1], chunk=16)  # a trailing 1 does not pick the form
    with pytest.raises(ValueError, match=r"\(B, H, L, 8\)"):
        ops.linear_recurrence(q, k, v, a[..., :3], chunk=16)
    with pytest.raises(ValueError, match="log_decay"):
        ops.linear_recurrence(q, k, v, a[:, :, :L - 1], chunk=16)
    with pytest.raises(ValueError, match="q and k"):
        ops.linear_recurrence(q[..., :4], k, v, a, chunk=16)
    with pytest.raises(ValueError, match="must agree or be 1"):
        ops.linear_recurrence(q, k[:, :3], v, a, chunk=16)
    with pytest.raises(ValueError, match=r"v must be \(B, H, L, d\)"):
        ops.linear_recurrence(q, k, v[0], a, chunk=16)
    with pytest.raises(ValueError, match=r"diagonal_recurrence: log_decay must be \(B, L, D\)"):
        ops.diagonal_recurrence(_rand(B, L, 3, low=1.0), _rand(B, L, 5))
    with pytest.raises(ValueError, match=r"b must be \(B, L, D\)"):
        ops.diagonal_recurrence(_rand(B, L, low=1.0), _rand(B, L))
    # the documented broadcasts still work: a decay per head fixed over time, a bonus shared by the heads
    assert ops.linear_recurrence(q, k, v, _rand(1, H, 1, low=1.0), bonus=_rand(1, dk), chunk=16).shape == v.shape


PIECES = [(0, 7), (7, 8), (8, 30), (30, 31), (31, 37)]  # a prompt, single tokens, a longer piece, the end


@pytest.mark.parametrize("decay", ["scalar", "vector", "vector30", "fixed"])
@pytest.mark.parametrize("bonus", [False, True])
def test_linear_recurrence_fed_in_pieces_equals_it_fed_whole(decay, bonus):
    """What generation with a cache does: each piece starts from the state the previous one ended with."""
    B, H, L, dk, dv = 2, 3, 37, 4, 5
    q, k, v = _rand(B, H, L, dk), _rand(B, 1, L, dk), _rand(B, H, L, dv)
    a = {"scalar": _rand(B, H, L, low=30.0), "vector": _rand(B, H, L, dk, low=5.0), "fixed": _rand(1, H, 1, low=1.0),
         "vector30": _rand(B, H, L, dk, low=30.0)}[decay]
    u = _rand(H, dk) if bonus else None
    whole, last = ops.linear_recurrence(q, k, v, a, bonus=u, chunk=16, output_final_state=True)
    state, ys = None, []
    for s, e in PIECES:
        piece = a if decay == "fixed" else a[:, :, s:e]
        y, state = ops.linear_recurrence(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], piece, bonus=u, chunk=16,
                                         initial_state=state, output_final_state=True)
        ys.append(y)
    assert torch.allclose(torch.cat(ys, 2), whole, atol=1e-9) and torch.allclose(state, last, atol=1e-9)
    assert torch.allclose(whole, naive_recurrence(q, k, v, a, u), atol=1e-9)


@pytest.mark.parametrize("low", [5.0, 30.0])
def test_diagonal_recurrence_fed_in_pieces_equals_it_fed_whole(low):
    B, L, D = 2, 37, 5
    a, b = _rand(B, L, D, low=low), _rand(B, L, D)
    whole, last = ops.diagonal_recurrence(a, b, output_final_state=True)
    state, hs = None, []
    for s, e in PIECES:
        h, state = ops.diagonal_recurrence(a[:, s:e], b[:, s:e], initial_state=state, output_final_state=True)
        hs.append(h)
    assert torch.allclose(torch.cat(hs, 1), whole, atol=1e-10) and torch.allclose(state, last, atol=1e-10)


def test_shifts_and_convolution_fed_in_pieces_equal_them_fed_whole():
    B, L, C, K = 2, 37, 3, 4
    x, w, b = _rand(B, L, C), _rand(C, K), _rand(C)
    conv, shift = [], []
    conv_prefix, shift_prefix = torch.zeros(B, K - 1, C, dtype=x.dtype), torch.zeros(B, 2, C, dtype=x.dtype)
    for s, e in PIECES:
        conv.append(ops.causal_conv(x[:, s:e], w, b, prefix=conv_prefix))
        shift.append(ops.token_shift(x[:, s:e], 2, prefix=shift_prefix))
        conv_prefix = torch.cat([conv_prefix, x[:, s:e]], 1)[:, -(K - 1):]
        shift_prefix = torch.cat([shift_prefix, x[:, s:e]], 1)[:, -2:]
    assert torch.allclose(torch.cat(conv, 1), ops.causal_conv(x, w, b), atol=1e-12)
    assert torch.equal(torch.cat(shift, 1), ops.token_shift(x, 2))


@pytest.mark.parametrize("window", [0, 5, 40])
def test_causal_attention_of_the_last_queries(window):
    """Queries for the last positions of the keys (the keys before them from a cache) equal those rows of the
    full attention; more queries than keys is refused."""
    B, H, Hkv, L, d = 2, 4, 2, 20, 8
    q, k, v = _rand(B, H, L, d), _rand(B, Hkv, L, d), _rand(B, Hkv, L, d)
    full = ops.causal_attention(q, k, v, window=window)
    for n in (1, 3, L):
        assert torch.allclose(ops.causal_attention(q[:, :, -n:], k, v, window=window), full[:, :, -n:], atol=1e-10)
    with pytest.raises(ValueError, match="last positions"):
        ops.causal_attention(q, k[:, :, :3], v[:, :, :3])
