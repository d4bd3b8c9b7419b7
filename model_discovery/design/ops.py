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

LOG_DECAY_MIN = 5.0  # a vector decay is clamped at exp(-5) a step: below that a channel forgets 99% at once
_VECTOR_CHUNK = 16  # with log-decays >= -5, exp(+-40) keeps the factorised chunk form inside float32


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

    log_decay, b: (B, L, D); log-decays are clamped at ``-LOG_DECAY_MIN``. Inside a chunk,
    ``h_t = exp(c_t - m) * sum_{s<=t} exp(m - c_s) b_s`` around the chunk's middle m (two cumsums, no pairwise
    tensor); a loop over chunks carries the state. ``initial_state``: h before the first position (B, D), zeros
    when None. Returns h: (B, L, D), and with ``output_final_state`` also the last h (B, D) in float32 at least.
    """
    with torch.autocast(b.device.type, enabled=False):  # exp(+-40) factors need float32 even under autocast
        h, last = _diagonal(log_decay, b, max(2, min(chunk, _VECTOR_CHUNK, b.shape[1])), initial_state)
    return (h, last) if output_final_state else h


def _diagonal(log_decay, b, C, initial_state):
    out_dtype, dtype = b.dtype, torch.promote_types(b.dtype, torch.float32)
    B, L, D = b.shape
    pad, n = (-L) % C, (L + (-L) % C) // C
    a = F.pad(log_decay.to(dtype).clamp(min=-LOG_DECAY_MIN).expand(B, L, D), (0, 0, 0, pad))
    cum = torch.cumsum(a.view(B, n, C, D), dim=2)  # (B, n, C, D)
    mid = cum[:, :, C // 2 - 1:C // 2]
    h = torch.exp(cum - mid) * torch.cumsum(torch.exp(mid - cum) * F.pad(b.to(dtype), (0, 0, 0, pad)).view(B, n, C, D),
                                            dim=2)
    carry = torch.zeros(B, D, device=b.device, dtype=dtype) if initial_state is None else initial_state.to(dtype)
    outs = []
    for c in range(n):
        outs.append(h[:, c] + torch.exp(cum[:, c]) * carry[:, None])
        carry = outs[-1][:, -1]  # padding at the end keeps the state (decay 1, input 0)
    return torch.stack(outs, dim=1).view(B, n * C, D)[:, :L].to(out_dtype), carry


def linear_recurrence(q, k, v, log_decay, bonus=None, chunk=32, initial_state=None, output_final_state=False):
    """The linear recurrence behind RetNet, GLA, RWKV-6 and Mamba-2, computed in chunks.

    Per head a state ``h`` (dk x dv) evolves as ``h_t = diag(exp(log_decay_t)) h_{t-1} + k_t v_t^T``; the output is

    - ``y_t = q_t h_t`` when ``bonus`` is None (RetNet, GLA, Mamba-2), or
    - ``y_t = q_t (h_{t-1} + diag(bonus) k_t v_t^T)`` with ``bonus`` of shape (H, dk) (RWKV-6's ``u``).

    q, k: (B, H, L, dk); v: (B, H, L, dv); any of their batch or head sizes may be 1 (shared). ``log_decay`` <= 0:

    - (B, H, L) or broadcastable, e.g. (1, H, 1) for a fixed rate per head: one scalar decay per head and step;
    - (B, H, L, dk) or broadcastable: one decay per key channel (clamped at ``-LOG_DECAY_MIN``).

    Inside a chunk the pairwise decays make the recurrence a masked attention (one matmul); a loop over chunks,
    not tokens, carries the state. Computed in float32 at least (autocast is off inside). ``initial_state``: h
    before the first position (B, H, dk, dv), zeros when None. Returns (B, H, L, dv) in v's dtype, and with
    ``output_final_state`` also the last h (B, H, dk, dv) in float32 at least.
    """
    if log_decay.dim() not in (3, 4):
        raise ValueError(f"log_decay must have 3 dimensions (B, H, L) or 4 (B, H, L, dk), broadcastable; got shape "
                         f"{tuple(log_decay.shape)}")
    with torch.autocast(v.device.type, enabled=False):
        y, state = _recurrence(q, k, v, log_decay, bonus, max(2, min(chunk, v.shape[2])), initial_state)
    return (y, state) if output_final_state else y


def _recurrence(q, k, v, log_decay, bonus, chunk, initial_state):
    vector, out_dtype = log_decay.dim() == 4, v.dtype
    dtype = torch.promote_types(v.dtype, torch.float32)
    B, H = torch.broadcast_shapes(q.shape[:2], k.shape[:2], v.shape[:2], log_decay.shape[:2])
    L, dk = v.shape[2], k.shape[-1]
    a = log_decay.to(dtype).clamp(min=-LOG_DECAY_MIN) if vector else log_decay.to(dtype)
    a = a.expand(B, H, L, dk) if vector else a.expand(B, H, L)
    C = min(chunk, _VECTOR_CHUNK) if vector else chunk
    pad, n = (-L) % C, (L + (-L) % C) // C
    q, k, v = (F.pad(t.to(dtype), (0, 0, 0, pad)) for t in (q, k, v))  # padding at the end reaches nothing
    a = F.pad(a, (0, 0, 0, pad) if vector else (0, pad))
    q, k, v = (t.reshape(*t.shape[:2], n, C, t.shape[-1]) for t in (q, k, v))  # (B, H, n, C, d)
    a = a.reshape(B, H, n, C, dk) if vector else a.reshape(B, H, n, C)
    incl = torch.cumsum(a, dim=3)  # log-decay from the chunk's start through t
    read = incl if bonus is None else incl - a  # what the past has decayed by when t reads it
    diag = 0 if bonus is None else 1  # the current token is read through the state, or through the bonus
    keep = torch.ones(C, C, dtype=torch.bool, device=v.device).tril(-diag)
    if vector:  # factorise exp(read_t - incl_s) around the chunk's middle m: two matmul operands
        mid = incl[:, :, :, C // 2 - 1:C // 2]
        scores = (q * torch.exp(read - mid)) @ (k * torch.exp(mid - incl)).transpose(-1, -2)
        scores = scores.masked_fill(~keep, 0.0)
    else:  # exact pairwise decays, stable for any rate
        pair = (read[..., :, None] - incl[..., None, :]).masked_fill(~keep, float("-inf"))
        scores = (q @ k.transpose(-1, -2)) * torch.exp(pair)
    y = scores @ v  # (B, H, n, C, dv)
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
    carried = []
    for c in range(n):
        carried.append(q_read[:, :, c] @ state)
        hold = torch.exp(last[:, :, c]) if vector else torch.exp(last[:, :, c])[..., None]
        state = hold.transpose(-1, -2) * state + k_to_end[:, :, c].transpose(-1, -2) @ v[:, :, c]
    y = y + torch.stack(carried, dim=2)
    return y.reshape(B, H, n * C, -1)[:, :, :L].to(out_dtype), state  # padding keeps the state (decay 1, k = 0)
