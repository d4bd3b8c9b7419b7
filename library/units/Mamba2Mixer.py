"""Mamba-2 selective state-space mixer (Dao & Gu, 2024), pure PyTorch.

The scan is the chunked state-space-duality form: inside a chunk the SSM is a masked, decay-weighted attention;
across chunks a small recurrence over per-chunk states carries the past. No per-token Python loop.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl


def segment_sum(a):
    """(..., T) -> (..., T, T) with out[i, j] = a[j+1] + ... + a[i] for j <= i, and -inf above the diagonal."""
    T = a.shape[-1]
    csum = torch.cumsum(a, dim=-1)
    out = csum[..., :, None] - csum[..., None, :]
    keep = torch.ones(T, T, dtype=torch.bool, device=a.device).tril()
    return out.masked_fill(~keep, float("-inf"))


def ssd_scan(x, log_a, B, C, chunk):
    """Selective scan h_t = exp(log_a_t) h_{t-1} + B_t x_t^T, y_t = C_t h_t, in chunks.

    x: (b, L, h, p); log_a: (b, L, h); B, C: (b, L, n) shared by heads. L must be a multiple of ``chunk``.
    """
    b, L, h, p = x.shape
    c = L // chunk
    x = x.reshape(b, c, chunk, h, p).permute(0, 3, 1, 2, 4)  # (b, h, c, l, p)
    B = B.reshape(b, 1, c, chunk, -1)  # (b, 1, c, l, n)
    C = C.reshape(b, 1, c, chunk, -1)
    log_a = log_a.reshape(b, c, chunk, h).permute(0, 3, 1, 2)  # (b, h, c, l)
    a_cum = torch.cumsum(log_a, dim=-1)
    # within chunks: y = (C B^T * decay) x, a masked attention
    scores = torch.exp(segment_sum(log_a)) * (C @ B.transpose(-1, -2))  # (b, h, c, l, s)
    y = scores @ x
    # the state each chunk leaves behind, then carried across chunks
    to_end = torch.exp(a_cum[..., -1:] - a_cum)[..., None]  # (b, h, c, l, 1)
    states = (x * to_end).transpose(-1, -2) @ B  # (b, h, c, p, n)
    states = torch.cat([torch.zeros_like(states[:, :, :1]), states], dim=2).flatten(-2)  # (b, h, c+1, p*n)
    chunk_decay = torch.exp(segment_sum(F.pad(a_cum[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    entering = (chunk_decay @ states)[:, :, :-1].view(b, h, c, p, -1)  # state entering each chunk
    y = y + (C @ entering.transpose(-1, -2)) * torch.exp(a_cum)[..., None]
    return y.permute(0, 2, 3, 1, 4).reshape(b, L, h, p)


class Mamba2Mixer(GAUBase):
    """in_proj -> causal depthwise conv -> selective SSM (scalar decay per head) -> gated RMSNorm -> out_proj."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, ssm_state=16, ssm_expand=2,
                 ssm_head_dim=32, conv_kernel=4, ssm_chunk=32, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        self.d_inner = ssm_expand * embed_dim
        self.n_heads = self.d_inner // ssm_head_dim
        self.head_dim, self.d_state, self.chunk = ssm_head_dim, ssm_state, ssm_chunk
        conv_dim = self.d_inner + 2 * ssm_state
        self.in_proj = nn.Linear(embed_dim, 2 * self.d_inner + 2 * ssm_state + self.n_heads, bias=False, **fk)
        self.conv = nn.Conv1d(conv_dim, conv_dim, conv_kernel, groups=conv_dim, padding=conv_kernel - 1, **fk)
        dt = torch.exp(torch.rand(self.n_heads, **fk) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.A_log = nn.Parameter(torch.log(torch.empty(self.n_heads, **fk).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.n_heads, **fk))
        self.norm_weight = nn.Parameter(torch.ones(self.d_inner, **fk))
        self.out_proj = nn.Linear(self.d_inner, embed_dim, bias=False, **fk)

    def _forward(self, X, **Z):
        b, L, _ = X.shape
        z, xBC, dt = self.in_proj(X).split([self.d_inner, self.d_inner + 2 * self.d_state, self.n_heads], dim=-1)
        xBC = F.silu(self.conv(xBC.transpose(1, 2))[..., :L].transpose(1, 2))  # causal: keep the first L
        x, B, C = xBC.split([self.d_inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # (b, L, h)
        pad = (-L) % self.chunk  # padding at the end cannot reach earlier positions
        x = F.pad(x, (0, 0, 0, pad)).view(b, L + pad, self.n_heads, self.head_dim)
        dt, B, C = (F.pad(t, (0, 0, 0, pad)) for t in (dt, B, C))
        log_a = -torch.exp(self.A_log) * dt  # (b, L, h)
        y = ssd_scan(x * dt[..., None], log_a, B, C, self.chunk)[:, :L]
        y = y + x[:, :L] * self.D[:, None]
        y = y.reshape(b, L, self.d_inner) * F.silu(z)
        y = F.rms_norm(y, (self.d_inner,), self.norm_weight, 1e-5)
        return self.out_proj(y), {}


DECL = UnitDecl(
    slot="token_mixer",
    doc="Mamba-2 selective SSM: input-dependent step size and scalar decay per head, chunked SSD scan, gated.",
    space={"ssm_state": [8, 16, 32], "ssm_expand": [1, 2], "ssm_head_dim": [16, 32], "ssm_chunk": [16, 32]},
    width=["ssm_expand"],
    complexity="linear",
    tags=["ssm", "recurrent", "linear-time", "mamba", "selective"],
)
