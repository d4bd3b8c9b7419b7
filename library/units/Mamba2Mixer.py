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
    Where B and C act on every head alike, heads are folded into one matmul dimension (h*p).
    """
    b, L, h, p = x.shape
    c, n = L // chunk, B.shape[-1]
    x = x.reshape(b, c, chunk, h, p)
    B, C = B.reshape(b, c, chunk, n), C.reshape(b, c, chunk, n)
    log_a = log_a.reshape(b, c, chunk, h)
    a_cum = torch.cumsum(log_a, dim=2)  # (b, c, l, h)
    # within chunks: y = (C B^T * decay) x, a masked attention per head
    scores = torch.exp(segment_sum(log_a.transpose(2, 3))) * (C @ B.transpose(-1, -2))[:, :, None]  # (b,c,h,l,s)
    y = (scores @ x.transpose(2, 3)).transpose(2, 3)  # (b, c, l, h, p)
    # the state each chunk leaves behind ...
    to_end = torch.exp(a_cum[:, :, -1:] - a_cum)[..., None]  # (b, c, l, h, 1)
    states = B.transpose(-1, -2) @ (x * to_end).flatten(-2)  # (b, c, n, h*p)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)  # (b, c+1, n, h*p)
    # ... carried across chunks with each head's decay
    chunk_decay = torch.exp(segment_sum(F.pad(a_cum[:, :, -1], (0, 0, 1, 0)).transpose(1, 2)))  # (b, h, c+1, c+1)
    per_head = states.view(b, c + 1, n, h, p).permute(0, 3, 1, 2, 4).reshape(b, h, c + 1, n * p)
    entering = (chunk_decay @ per_head)[:, :, :-1]  # (b, h, c, n*p): the state entering each chunk
    entering = entering.view(b, h, c, n, p).permute(0, 2, 3, 1, 4).reshape(b, c, n, h * p)
    y = y + (C @ entering).view(b, c, chunk, h, p) * torch.exp(a_cum)[..., None]
    return y.reshape(b, L, h, p)


class Mamba2Mixer(GAUBase):
    """in_proj -> causal depthwise conv -> selective SSM (scalar decay per head) -> gated RMSNorm -> out_proj."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, ssm_state=16, ssm_expand=2,
                 ssm_head_dim=64, conv_kernel=4, ssm_chunk=64, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        self.d_inner = ssm_expand * embed_dim
        self.n_heads = self.d_inner // ssm_head_dim
        self.head_dim, self.d_state, self.chunk = ssm_head_dim, ssm_state, ssm_chunk
        conv_dim = self.d_inner + 2 * ssm_state
        self.in_proj = nn.Linear(embed_dim, 2 * self.d_inner + 2 * ssm_state + self.n_heads, bias=False, **fk)
        self.conv = nn.Conv1d(conv_dim, conv_dim, conv_kernel, groups=conv_dim, **fk)  # weights; see _causal_conv
        dt = torch.exp(torch.rand(self.n_heads, **fk) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.A_log = nn.Parameter(torch.log(torch.empty(self.n_heads, **fk).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.n_heads, **fk))
        self.norm_weight = nn.Parameter(torch.ones(self.d_inner, **fk))
        self.out_proj = nn.Linear(self.d_inner, embed_dim, bias=False, **fk)

    def _causal_conv(self, x):
        """Depthwise causal convolution of x (b, L, C) as a sum of shifted copies: no transposes, and faster
        than a grouped Conv1d on CPU."""
        K, L = self.conv.kernel_size[0], x.shape[1]
        w = self.conv.weight[:, 0]  # (C, K)
        xp = F.pad(x, (0, 0, K - 1, 0))
        out = self.conv.bias + xp[:, K - 1:] * w[:, K - 1]
        for i in range(K - 1):
            out = out + xp[:, i:i + L] * w[:, i]
        return out

    def _forward(self, X, **Z):
        b, L, _ = X.shape
        z, xBC, dt = self.in_proj(X).split([self.d_inner, self.d_inner + 2 * self.d_state, self.n_heads], dim=-1)
        x, B, C = F.silu(self._causal_conv(xBC)).split([self.d_inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # (b, L, h)
        x = x.reshape(b, L, self.n_heads, self.head_dim)
        log_a = -torch.exp(self.A_log) * dt  # (b, L, h)
        pad = (-L) % self.chunk  # padding at the end cannot reach earlier positions
        xs, log_a, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) if pad else t
                           for t in (x * dt[..., None], log_a, B, C))
        y = ssd_scan(xs, log_a, B, C, self.chunk)[:, :L]
        y = y + x * self.D[:, None]
        y = y.reshape(b, L, self.d_inner) * F.silu(z)
        y = F.rms_norm(y, (self.d_inner,), self.norm_weight, 1e-5)
        return self.out_proj(y), {}


DECL = UnitDecl(
    slot="token_mixer",
    doc="Mamba-2 selective SSM: input-dependent step size and scalar decay per head, chunked SSD scan, gated.",
    space={"ssm_state": [8, 16, 32], "ssm_expand": [1, 2], "ssm_head_dim": [32, 64], "ssm_chunk": [32, 64]},
    width=["ssm_expand"],
    complexity="linear",
    tags=["ssm", "recurrent", "linear-time", "mamba", "selective"],
)
