"""Vetted kernels design code may call: ``from model_discovery.design import ops``.

Each kernel here equals its plain per-token form in float64 (``tests/design/test_ops.py``), is causal, and has
no per-token Python loop. Library units and synthesized operators are written over them, so a scan exists once.

Shapes: sequences are ``(B, L, D)`` for the stream and ``(B, H, L, d)`` per head. Broadcasting over batch and
heads is allowed wherever a size is 1 (e.g. keys shared by every head, or a decay fixed per head).

Generation with a cache (``GAUBase.state``) feeds a sequence in consecutive pieces. Each kernel continues one: the
shifts and the convolution take the previous piece's last inputs (``prefix``), the recurrences take the state it
ended with (``initial_state``) and hand theirs on (``output_final_state``), and attention takes queries for the last
positions of its keys. A sequence fed in pieces equals it fed whole (``tests/design/test_ops.py``).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def carry(state, key, x, n):
    """The ``prefix`` for a shift or a convolution while generating: the ``n`` inputs before ``x`` (B, L, ...), kept
    in a unit's cache ``state[key]`` by the previous piece (zeros at the first piece); keeps ``x``'s last ``n``
    for the next. None when ``state`` is None (the whole sequence is given) or ``n`` is 0."""
    if state is None or n == 0:
        return None
    prev = state.get(key)
    if prev is None:
        prev = x.new_zeros(x.shape[0], n, *x.shape[2:])
    state[key] = torch.cat([prev, x], dim=1)[:, -n:]
    return prev


def cached(state, key, x, keep=0):
    """While generating, keys or values (B, H, L, d) after those of the earlier pieces, kept in a unit's cache
    ``state[key]`` (the last ``keep`` positions when > 0, e.g. an attention window); ``x`` itself when ``state`` is
    None."""
    if state is None:
        return x
    if key in state:
        x = torch.cat([state[key], x], dim=2)
    state[key] = x[:, :, max(0, x.shape[2] - keep):] if keep else x
    return x


def token_shift(x, n=1, prefix=None):
    """``x_{t-n}`` for x of shape (B, L, D): zeros where ``t < n``, or the previous piece's last ``n`` inputs
    ``prefix`` (B, n, D)."""
    if prefix is not None:
        return torch.cat([prefix, x], dim=1)[:, :x.shape[1]]
    if n >= x.shape[1]:
        return torch.zeros_like(x)
    return F.pad(x, (0, 0, n, -n)) if n else x


def causal_conv(x, weight, bias=None, prefix=None):
    """Depthwise causal convolution: ``y_t[c] = sum_i weight[c, i] x_{t-K+1+i}[c]`` (+ bias).

    x: (B, L, C); weight: (C, K); bias: (C,) or None; prefix: the previous piece's last ``K - 1`` inputs
    (B, K - 1, C), zeros when None. A sum of K shifted copies: no transposes, and faster than a grouped ``Conv1d``
    on CPU for the short kernels designs use.
    """
    K, L = weight.shape[-1], x.shape[1]
    xp = F.pad(x, (0, 0, K - 1, 0)) if prefix is None else torch.cat([prefix, x], dim=1)
    out = xp[:, K - 1:] * weight[:, K - 1]
    for i in range(K - 1):
        out = out + xp[:, i:i + L] * weight[:, i]
    return out if bias is None else out + bias


def rotary(x, theta=10000.0, offset=0):
    """Rotary position embedding (rotate-half convention, as Hugging Face Llama) of x (B, H, L, hd) whose first
    position is ``offset``. Tables are computed in float32 (float64 for float64 inputs)."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    cos, sin = _rotary_tables(x.shape[-2], x.shape[-1], float(theta), offset, x.device, dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return (x * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)


@functools.lru_cache(maxsize=64)
def _rotary_tables(L, hd, theta, offset, device, dtype):
    inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2, device=device, dtype=dtype) / hd)
    pos = torch.arange(offset, offset + L, device=device, dtype=dtype)
    emb = torch.outer(pos, inv_freq).repeat(1, 2)  # (L, hd)
    return emb.cos(), emb.sin()


def causal_attention(q, k, v, window=0, scale=None):
    """Softmax attention of each position over itself and the past (the last ``window`` positions when > 0).

    q: (B, H, Lq, d); k, v: (B, Hkv, L, d) with H a multiple of Hkv (grouped-query attention) and ``Lq <= L``: the
    queries are the last Lq positions (Lq < L when earlier keys come from a cache). ``scale`` defaults to
    ``d ** -0.5``. Returns (B, H, Lq, d).
    """
    Lq, L = q.shape[-2], k.shape[-2]
    if Lq > L:
        raise ValueError(f"causal_attention: {Lq} queries for {L} keys; queries are the last positions of the keys")
    gqa = k.shape[1] != q.shape[1]
    if (window and window < L) or Lq not in (1, L):
        pos = torch.arange(L, device=q.device)
        delta = pos[L - Lq:, None] - pos[None, :]
        mask = (delta >= 0) & (delta < (window or L))  # (Lq, L), True = attend
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)
    # one query (the last position) sees every key; or as many queries as keys
    return F.scaled_dot_product_attention(q, k, v, is_causal=Lq > 1, scale=scale, enable_gqa=gqa)


def diagonal_recurrence(log_decay, b, chunk=16, initial_state=None, output_final_state=False):
    """``h_t = exp(log_decay_t) * h_{t-1} + b_t`` channel by channel (a diagonal state, as in S4D or a gated EMA).

    log_decay: (B, L, D) or broadcastable to b's shape, <= 0, any size (exact for every rate: no clamp); b: (B, L, D).
    A parallel scan: inside each chunk of ``chunk`` positions, log2(chunk) steps of
    ``h_t += (prod_{t-s<r<=t} exp(a_r)) h_{t-s}``; the chunks' ends are scanned the same way, so there is no Python
    loop over positions or chunks. Every factor is a product of decays <= 1: nothing overflows, and a decay that
    underflows to 0 is the true value's rounding. ``initial_state``: h before the first position (B, D), zeros when
    None. Returns h: (B, L, D), and with ``output_final_state`` also the last h (B, D) in float32 at least.
    """
    if b.dim() != 3:
        raise ValueError(f"diagonal_recurrence: b must be (B, L, D); got shape {tuple(b.shape)}")
    _broadcastable("diagonal_recurrence: log_decay", log_decay, b.shape, "(B, L, D)")
    with torch.autocast(b.device.type, enabled=False):  # products of decays keep float32 even under autocast
        h, last = _diagonal(log_decay, b, max(1, min(chunk, b.shape[1])), initial_state)
    return (h, last) if output_final_state else h


def _broadcastable(name, t, shape, layout):
    try:
        if t.dim() == len(shape) and torch.broadcast_shapes(t.shape, shape) == shape:
            return
    except RuntimeError:
        pass
    raise ValueError(f"{name} must be {layout} or broadcastable to {tuple(shape)}; got shape {tuple(t.shape)}")


def _scan(A, h, dim):
    """Inclusive scan of ``h_t = A_t h_{t-1} + h_t`` from a zero state along ``dim`` (Hillis-Steele: log2 steps).
    Returns (the product of A through t, h_t)."""
    step, n = 1, A.shape[dim]
    while step < n:
        h = torch.cat([h.narrow(dim, 0, step), h.narrow(dim, step, n - step) + A.narrow(dim, step, n - step)
                       * h.narrow(dim, 0, n - step)], dim)
        A = torch.cat([A.narrow(dim, 0, step), A.narrow(dim, step, n - step) * A.narrow(dim, 0, n - step)], dim)
        step *= 2
    return A, h


def _diagonal(log_decay, b, C, initial_state):
    out_dtype, dtype = b.dtype, torch.promote_types(b.dtype, torch.float32)
    B, L, D = b.shape
    pad, n = (-L) % C, (L + (-L) % C) // C
    A = F.pad(torch.exp(log_decay.to(dtype)).expand(B, L, D), (0, 0, 0, pad), value=1.0)  # padding keeps the state
    x = F.pad(b.to(dtype), (0, 0, 0, pad))
    A, h = _scan(A.view(B, n, C, D), x.view(B, n, C, D), dim=2)  # inside each chunk, from a zero state
    through, ends = _scan(A[:, :, -1], h[:, :, -1], dim=1)  # (B, n, D): the state after each chunk, from zero
    h0 = torch.zeros(B, D, device=b.device, dtype=dtype) if initial_state is None else initial_state.to(dtype)
    after = ends + through * h0[:, None]  # the state after each chunk
    entering = torch.cat([h0[:, None], after[:, :-1]], dim=1)  # (B, n, D)
    h = h + A * entering[:, :, None]
    return h.reshape(B, n * C, D)[:, :L].to(out_dtype), after[:, -1]


def linear_recurrence(q, k, v, log_decay, bonus=None, chunk=32, initial_state=None, output_final_state=False):
    """The linear recurrence behind RetNet, GLA, RWKV-6 and Mamba-2, computed in chunks.

    Per head a state ``h`` (dk x dv) evolves as ``h_t = diag(exp(log_decay_t)) h_{t-1} + k_t v_t^T``; the output is

    - ``y_t = q_t h_t`` when ``bonus`` is None (RetNet, GLA, Mamba-2), or
    - ``y_t = q_t (h_{t-1} + diag(bonus) k_t v_t^T)`` with ``bonus`` of shape (H, dk) (RWKV-6's ``u``).

    q, k: (B, H, L, dk); v: (B, H, L, dv); any of their batch or head sizes may be 1 (shared). ``log_decay`` <= 0,
    its form told by its shape:

    - (B, H, L), or broadcastable like (1, H, 1) for a fixed rate per head: one decay per head and step;
    - (B, H, L, dk), or broadcastable in B, H and L: one decay per key channel (GLA, RWKV-6).

    Both forms are exact for any rate: every exponential the kernel takes is of a difference of cumulative
    log-decays that is <= 0. Inside a chunk the pairwise decays make the recurrence a masked attention; per key
    channel, pairs of positions less than 8 apart take their own decays and farther pairs factorise at the start
    of the query's block of 8. A loop over chunks, not tokens, carries the state. Computed in float32 at least
    (autocast is off inside). ``initial_state``: h before the first position (B, H, dk, dv), zeros when None.
    Returns (B, H, L, dv) in v's dtype, and with ``output_final_state`` also the last h (B, H, dk, dv) in float32
    at least.
    """
    vector = _check_recurrence(q, k, v, log_decay, bonus)
    with torch.autocast(v.device.type, enabled=False):
        y, state = _recurrence(q, k, v, log_decay, bonus, vector, max(2, min(chunk, v.shape[2])), initial_state)
    return (y, state) if output_final_state else y


def _check_recurrence(q, k, v, log_decay, bonus):
    """The documented layout, or a ValueError naming it; returns whether the decay is per key channel."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"linear_recurrence: {name} must be (B, H, L, d); got shape {tuple(t.shape)}")
    L, dk = v.shape[2], k.shape[-1]
    if q.shape[-1] != dk or q.shape[2] != L or k.shape[2] != L:
        raise ValueError(f"linear_recurrence: q and k must be (B, H, L, dk) with v's L; got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    try:
        B, H = torch.broadcast_shapes(q.shape[:2], k.shape[:2], v.shape[:2], log_decay.shape[:2])
    except RuntimeError:
        raise ValueError(f"linear_recurrence: the batch and head sizes of q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)} and log_decay {tuple(log_decay.shape)} must agree or be 1") from None
    if log_decay.dim() == 4 and log_decay.shape[-1] == 1 and dk != 1:
        raise ValueError(f"linear_recurrence: log_decay {tuple(log_decay.shape)} ends in 1: a decay per head is "
                         f"(B, H, L) (drop the last dimension), one per key channel (B, H, L, {dk})")
    layout = {3: "(B, H, L)", 4: f"(B, H, L, {dk})"}.get(log_decay.dim())
    if layout is None:
        raise ValueError(f"linear_recurrence: log_decay must be (B, H, L) (a decay per head) or (B, H, L, {dk}) "
                         f"(one per key channel), broadcastable; got shape {tuple(log_decay.shape)}")
    _broadcastable("linear_recurrence: log_decay", log_decay, (B, H, L, dk)[:log_decay.dim()], layout)
    if bonus is not None and (bonus.dim() != 2 or bonus.shape[-1] != dk or bonus.shape[0] not in (1, H)):
        raise ValueError(f"linear_recurrence: bonus must be (H, dk) = ({H}, {dk}) or (1, {dk}); got shape "
                         f"{tuple(bonus.shape)}")
    return log_decay.dim() == 4


def _recurrence(q, k, v, log_decay, bonus, vector, chunk, initial_state):
    out_dtype, dtype = v.dtype, torch.promote_types(v.dtype, torch.float32)
    B, H = torch.broadcast_shapes(q.shape[:2], k.shape[:2], v.shape[:2], log_decay.shape[:2])
    L, dk = v.shape[2], k.shape[-1]
    C = 1 << (chunk.bit_length() - 1) if vector else chunk  # per channel, halved level by level: a power of 2
    a = log_decay.to(dtype).expand(B, H, L, dk) if vector else log_decay.to(dtype).expand(B, H, L)
    pad, n = (-L) % C, (L + (-L) % C) // C
    q, k, v = (F.pad(t.to(dtype), (0, 0, 0, pad)) for t in (q, k, v))  # padding at the end reaches nothing
    a = F.pad(a, (0, 0, 0, pad) if vector else (0, pad))
    q, k, v = (t.reshape(*t.shape[:2], n, C, t.shape[-1]) for t in (q, k, v))  # (B, H, n, C, d)
    a = a.reshape(B, H, n, C, dk) if vector else a.reshape(B, H, n, C)
    incl = torch.cumsum(a, dim=3)  # log-decay from the chunk's start through t
    read = incl if bonus is None else incl - a  # what the past has decayed by when t reads it
    diag = 0 if bonus is None else 1  # the current token is read through the state, or through the bonus
    if vector:
        y = _vector_chunk(q, k, v, read, incl, diag)
    else:  # exact pairwise decays
        keep = torch.ones(C, C, dtype=torch.bool, device=v.device).tril(-diag)
        pair = (read[..., :, None] - incl[..., None, :]).masked_fill(~keep, float("-inf"))
        y = ((q @ k.transpose(-1, -2)) * torch.exp(pair)) @ v  # (B, H, n, C, dv)
    if bonus is not None:
        y = y + ((q * k) * bonus.to(dtype)[:, None, None]).sum(-1, keepdim=True) * v
    # across chunks: the state entering chunk c, read with each position's decay since the chunk's start
    last = incl[:, :, :, -1:]  # (B, H, n, 1[, dk])
    to_end = torch.exp(last - incl)
    k_to_end = k * (to_end if vector else to_end[..., None])
    q_read = q * (torch.exp(read) if vector else torch.exp(read)[..., None])
    state = torch.zeros(B, H, dk, v.shape[-1], device=v.device, dtype=dtype)
    if initial_state is not None:
        state = state + initial_state.to(dtype)
    hold = torch.exp(last) if vector else torch.exp(last)[..., None]  # (B, H, n, 1, dk or 1)
    carried = []
    # unbind, not indexing: the backward of an index fills a whole zero tensor for every chunk
    for q_c, k_c, v_c, hold_c in zip(*(t.unbind(2) for t in (q_read, k_to_end, v, hold))):
        carried.append(q_c @ state)
        state = hold_c.transpose(-1, -2) * state + k_c.transpose(-1, -2) @ v_c
    y = y + torch.stack(carried, dim=2)
    return y.reshape(B, H, n * C, -1)[:, :, :L].to(out_dtype), state  # padding keeps the state (decay 1, k = 0)


def _vector_chunk(q, k, v, read, incl, diag):
    """A chunk's own contribution with per-key-channel decays, ``y_t = sum_{s <= t - diag} (q_t * k_s *
    exp(read_t - incl_s)) . v_s``, with no exponential of a positive number. q, k, read, incl: (..., C, dk);
    v: (..., C, dv); C a power of 2.

    Halving the chunk level by level, the keys of each left half reach the queries of the right half beside it
    through the boundary's cumulative decay r: ``exp(read_t - incl_s) = exp(read_t - r) exp(r - incl_s)``, both <= 1,
    so each level is one batched product (log2 C levels) and every pair s < t is counted once.
    """
    C = q.shape[-2]
    if diag:
        y = torch.zeros(*torch.broadcast_shapes(q.shape[:-2], v.shape[:-2]), C, v.shape[-1], dtype=v.dtype,
                        device=v.device)
    else:
        y = (q * k).sum(-1, keepdim=True) * v  # s = t: no decay between a token and itself
    size = 1
    while size < C:
        # unbind, not indexing: an index's backward fills a whole zero tensor
        (_, q_right), (k_left, _), (v_left, _), (_, r_right), (c_left, _), (y_left, y_right) = (
            t.reshape(*t.shape[:-2], C // (2 * size), 2, size, t.shape[-1]).unbind(-3)
            for t in (q, k, v, read, incl, y))
        ref = c_left[..., -1:, :]  # (..., pairs, 1, dk): cumulative decay at the left half's end
        q_far = q_right * torch.exp(r_right - ref)
        k_far = k_left * torch.exp(ref - c_left)
        if size <= 2:  # a batch of 1x1 or 2x2 matmuls is slower than the products themselves
            scores = (q_far[..., :, None, :] * k_far[..., None, :, :]).sum(-1)
        else:
            scores = q_far @ k_far.transpose(-1, -2)
        y = torch.stack([y_left, y_right + scores @ v_left], dim=-3).reshape(y.shape)  # (..., pairs, size, dv)
        size *= 2
    return y
