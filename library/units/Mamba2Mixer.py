"""Mamba-2 selective state-space mixer (Dao & Gu, 2024), pure PyTorch.

The selective scan ``h_t = a_t h_{t-1} + B_t x_t^T, y_t = C_t h_t`` (scalar decay per head, B and C shared by the
heads) is ``ops.linear_recurrence``: the chunked state-space-duality form, with no per-token Python loop.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl, ops


class Mamba2Mixer(GAUBase):
    """in_proj -> causal depthwise conv -> selective SSM (scalar decay per head) -> gated RMSNorm -> out_proj."""

    incremental = True  # keeps the convolution's last inputs and the SSM state

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, ssm_state=16, ssm_expand=2,
                 ssm_head_dim=64, conv_kernel=4, ssm_chunk=64, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        self.d_inner = ssm_expand * embed_dim
        self.n_heads = self.d_inner // ssm_head_dim
        self.head_dim, self.d_state, self.chunk = ssm_head_dim, ssm_state, ssm_chunk
        conv_dim = self.d_inner + 2 * ssm_state
        self.in_proj = nn.Linear(embed_dim, 2 * self.d_inner + 2 * ssm_state + self.n_heads, bias=False, **fk)
        self.conv = nn.Conv1d(conv_dim, conv_dim, conv_kernel, groups=conv_dim, **fk)  # weights for ops.causal_conv
        dt = torch.exp(torch.rand(self.n_heads, **fk) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.A_log = nn.Parameter(torch.log(torch.empty(self.n_heads, **fk).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.n_heads, **fk))
        self.norm_weight = nn.Parameter(torch.ones(self.d_inner, **fk))
        self.out_proj = nn.Linear(self.d_inner, embed_dim, bias=False, **fk)

    def _forward(self, X, **Z):
        b, L, _ = X.shape
        z, xBC, dt = self.in_proj(X).split([self.d_inner, self.d_inner + 2 * self.d_state, self.n_heads], dim=-1)
        state = self.state(Z)
        prefix = ops.carry(state, "conv", xBC, self.conv.kernel_size[0] - 1)
        xBC = ops.causal_conv(xBC, self.conv.weight[:, 0], self.conv.bias, prefix=prefix)
        x, B, C = F.silu(xBC).split([self.d_inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # (b, L, h)
        x = x.reshape(b, L, self.n_heads, self.head_dim)
        log_a = -torch.exp(self.A_log) * dt  # (b, L, h)
        y, last = ops.linear_recurrence(C[:, None], B[:, None], (x * dt[..., None]).transpose(1, 2),
                                        log_a.transpose(1, 2), chunk=self.chunk, output_final_state=True,
                                        initial_state=None if state is None else state.get("h"))
        if state is not None:
            state["h"] = last
        y = y.transpose(1, 2)  # (b, L, h, p); B, C shared by the heads
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
