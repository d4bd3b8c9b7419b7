"""RWKV-6 "Finch" time mixing (Peng et al., 2024): data-dependent token shift and data-dependent decay.

Per head a matrix state S (dk x dv) evolves as ``S_t = diag(w_t) S_{t-1} + k_t^T v_t`` and the output reads
``r_t (S_{t-1} + diag(u) k_t^T v_t)``. Trained in chunks: decay-weighted scores inside a chunk (one matmul), a
recurrence over chunk states across chunks (a loop over chunks, not tokens). Per-step decays are bounded below by
``exp(-LOG_DECAY_MIN)`` to keep the chunked form within float32 range.
"""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl

LOG_DECAY_MIN = 5.0  # per-step decay >= exp(-5): below that a channel forgets everything anyway


def token_shift(x):
    """x_{t-1} (zeros at t = 0), for x of shape (B, L, D)."""
    return F.pad(x, (0, 0, 1, -1))


def chunked_wkv(r, k, v, log_w, u, chunk):
    """r, k, log_w: (B, H, L, dk); v: (B, H, L, dv); u: (H, dk). Returns (B, H, L, dv). L % chunk == 0.

    Inside a chunk the decay from s to t factorises as exp(excl_t - m) * exp(m - incl_s) around the chunk's
    middle m, so the pairwise scores are one matmul; with per-step log-decays >= -LOG_DECAY_MIN the factors stay
    within float32 range.
    """
    B, H, L, dk = k.shape
    n = L // chunk
    r, k, v, log_w = (t.reshape(B, H, n, chunk, t.shape[-1]) for t in (r, k, v, log_w))
    incl = torch.cumsum(log_w, dim=3)  # decay from the chunk start through t
    excl = incl - log_w  # through t - 1
    mid = incl[:, :, :, chunk // 2 - 1:chunk // 2]
    scores = (r * torch.exp(excl - mid)) @ (k * torch.exp(mid - incl)).transpose(-1, -2)  # (B, H, n, C, C)
    strict = torch.ones(chunk, chunk, dtype=torch.bool, device=k.device).tril(-1)
    scores = scores.masked_fill(~strict, 0.0)
    scores = scores + torch.diag_embed(((r * k) * u[:, None, None]).sum(-1))  # bonus for the current token
    out = scores @ v
    # across chunks: carry the state entering each chunk
    k_to_end = k * torch.exp(incl[..., -1:, :] - incl)
    r_from_start = r * torch.exp(excl)
    S = torch.zeros(B, H, dk, v.shape[-1], device=k.device, dtype=k.dtype)
    inter = []
    for c in range(n):
        inter.append(r_from_start[:, :, c] @ S)
        S = torch.exp(incl[:, :, c, -1])[..., None] * S + k_to_end[:, :, c].transpose(-1, -2) @ v[:, :, c]
    out = out + torch.stack(inter, dim=2)
    return out.reshape(B, H, L, -1)


class RWKV6TimeMix(GAUBase):
    """Receptance-weighted key-value mixing with data-dependent decays (LoRA-produced) and a SiLU gate."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, rwkv_head_dim=32, rwkv_lora=16,
                 rwkv_chunk=16, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        D = embed_dim
        self.n_heads, self.head_dim, self.chunk = D // rwkv_head_dim, rwkv_head_dim, rwkv_chunk
        layer, n_layer = block_loc
        ratio = 1.0 - layer / max(n_layer, 1)
        ramp = torch.arange(D, **fk) / D
        self.mu_x = nn.Parameter(1.0 - ramp ** ratio)
        self.mu = nn.Parameter((1.0 - ramp ** ratio).repeat(5, 1))  # w, k, v, r, g
        self.lerp_a = nn.Parameter(torch.zeros(D, 5 * rwkv_lora, **fk).uniform_(-1e-2, 1e-2))
        self.lerp_b = nn.Parameter(torch.zeros(5, rwkv_lora, D, **fk).uniform_(-1e-2, 1e-2))
        decay_speed = -6 + 5 * (torch.arange(D, **fk) / max(D - 1, 1)) ** (0.7 + 1.3 * ratio)
        self.w0 = nn.Parameter(decay_speed)
        self.w_a = nn.Parameter(torch.zeros(D, 2 * rwkv_lora, **fk).uniform_(-1e-2, 1e-2))
        self.w_b = nn.Parameter(torch.zeros(2 * rwkv_lora, D, **fk).uniform_(-1e-2, 1e-2))
        self.u = nn.Parameter(torch.full((self.n_heads, self.head_dim), 0.5, **fk))
        self.receptance = nn.Linear(D, D, bias=False, **fk)
        self.key = nn.Linear(D, D, bias=False, **fk)
        self.value = nn.Linear(D, D, bias=False, **fk)
        self.gate = nn.Linear(D, D, bias=False, **fk)
        self.out_proj = nn.Linear(D, D, bias=False, **fk)
        self.ln_x = nn.GroupNorm(self.n_heads, D, eps=64e-5, **fk)

    def _forward(self, X, **Z):
        B, L, D = X.shape
        dx = token_shift(X) - X
        xx = X + dx * self.mu_x
        m = torch.tanh(xx @ self.lerp_a).view(B, L, 5, -1).transpose(0, 2)  # (5, L, B, r)
        m = torch.einsum("jlbr,jrd->jbld", m, self.lerp_b)
        xw, xk, xv, xr, xg = (X + dx * (self.mu[j] + m[j]) for j in range(5))
        log_w = -torch.exp(self.w0 + torch.tanh(xw @ self.w_a) @ self.w_b).clamp(max=LOG_DECAY_MIN)  # (B, L, D)
        heads = lambda t: t.view(B, L, self.n_heads, self.head_dim).transpose(1, 2)  # noqa: E731
        pad = (-L) % self.chunk
        r, k, v, lw = (F.pad(heads(t), (0, 0, 0, pad)) for t in
                       (self.receptance(xr), self.key(xk), self.value(xv), log_w))
        y = chunked_wkv(r, k, v, lw, self.u, self.chunk)[:, :, :L]
        y = self.ln_x(y.transpose(1, 2).reshape(B * L, D)).view(B, L, D)
        return self.out_proj(y * F.silu(self.gate(xg))), {}


DECL = UnitDecl(
    slot="token_mixer",
    doc="RWKV-6 time mixing: matrix-valued recurrent state with data-dependent per-channel decay.",
    space={"rwkv_head_dim": [16, 32], "rwkv_lora": [8, 16, 32], "rwkv_chunk": [16, 32]},
    complexity="linear",
    tags=["rwkv", "recurrent", "linear-time", "decay", "data-dependent"],
)
