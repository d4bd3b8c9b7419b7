"""Multi-scale retention (Sun et al., 2023, RetNet), parallel form.

Each head decays the past at its own fixed rate gamma_h; scores ``(Q K^T) * D`` with ``D[n, m] = gamma^(n-m)``
for ``n >= m`` replace softmax attention. Queries and keys are rotated (xPos without its scaling term).
Computed as a linear recurrence in chunks (``ops.linear_recurrence``): D's row normalisation is a known scale per
position, and the score normalisation divides by the recurrence of a value of ones.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl, ops


def rotate_pairs(x, angles):
    """Rotates adjacent pairs (2i, 2i+1) of x (..., L, d) by angles (L, d/2), as complex multiplication."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).flatten(-2).to(x.dtype)


class MultiScaleRetention(GAUBase):
    """Retention with per-head decays, GroupNorm per head and a swish output gate."""

    incremental = True  # keeps the recurrent state

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, num_heads=4,
                 retention_value_factor=2, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        self.num_heads = num_heads
        self.key_dim = embed_dim // num_heads
        self.value_dim = retention_value_factor * embed_dim
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=False, **fk)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False, **fk)
        self.v_proj = nn.Linear(embed_dim, self.value_dim, bias=False, **fk)
        self.g_proj = nn.Linear(embed_dim, self.value_dim, bias=False, **fk)
        self.out_proj = nn.Linear(self.value_dim, embed_dim, bias=False, **fk)
        self.group_norm = nn.GroupNorm(num_heads, self.value_dim, affine=False, **fk)
        # gamma_h = 1 - 2^(-5 - h * 4 / (H - 1)): long memory for some heads, short for others
        exps = 5 + torch.arange(num_heads, dtype=torch.float32) * (4 / max(num_heads - 1, 1))
        self.register_buffer("log_gamma", torch.log1p(-torch.pow(2.0, -exps)), persistent=False)
        inv = 1.0 / 10000 ** torch.linspace(0, 1, self.key_dim // 2)
        self.register_buffer("inv_freq", inv, persistent=False)

    def _forward(self, X, **Z):
        B, L, _ = X.shape
        H = self.num_heads
        start, state = self.position(Z), self.state(Z)
        angles = torch.outer(torch.arange(start, start + L, device=X.device, dtype=torch.float32), self.inv_freq)
        q = rotate_pairs(self.q_proj(X).view(B, L, H, -1).transpose(1, 2), angles)  # (B, H, L, dk)
        k = rotate_pairs(self.k_proj(X).view(B, L, H, -1).transpose(1, 2), angles) / math.sqrt(self.key_dim)
        v = self.v_proj(X).view(B, L, H, -1).transpose(1, 2)  # (B, H, L, dv)
        ones = torch.ones_like(v[..., :1])
        y, last = ops.linear_recurrence(q, k, torch.cat([v, ones], -1), self.log_gamma[None, :, None],
                                        initial_state=None if state is None else state.get("h"),
                                        output_final_state=True)  # (B, H, L, dv + 1)
        if state is not None:
            state["h"] = last
        # row n of D sums to sum_{m<=n} gamma^(n-m) = (1 - gamma^(n+1)) / (1 - gamma); D is scaled by its root
        pos = torch.arange(start + 1, start + L + 1, device=X.device, dtype=y.dtype)
        gamma = self.log_gamma.to(y.dtype).exp()[:, None]
        y = y / ((1 - gamma ** pos) / (1 - gamma)).sqrt()[..., None]
        y = y[..., :-1] / y[..., -1:].abs().clamp(min=1.0)  # the scores' row sums, at least 1
        y = y.transpose(1, 2).reshape(B * L, self.value_dim)
        y = self.group_norm(y).view(B, L, self.value_dim)
        return self.out_proj(F.silu(self.g_proj(X)) * y), {}


DECL = UnitDecl(
    slot="token_mixer",
    doc="RetNet multi-scale retention: per-head exponential decay instead of softmax, gated, group-normed.",
    space={"num_heads": [2, 4, 8], "retention_value_factor": [1, 2]},
    width=["retention_value_factor"],
    complexity="linear",
    tags=["retention", "recurrent", "linear-time", "decay", "retnet"],
)
