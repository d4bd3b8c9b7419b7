"""RWKV-6 "Finch" time mixing (Peng et al., 2024): data-dependent token shift and data-dependent decay.

Per head a matrix state S (dk x dv) evolves as ``S_t = diag(w_t) S_{t-1} + k_t^T v_t`` and the output reads
``r_t (S_{t-1} + diag(u) k_t^T v_t)``: ``ops.linear_recurrence`` with a decay per key channel and the bonus ``u``
(exact for any decay, as the recurrent form).
"""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl, ops


class RWKV6TimeMix(GAUBase):
    """Receptance-weighted key-value mixing with data-dependent decays (LoRA-produced) and a SiLU gate."""

    incremental = True  # keeps the last input (token shift) and the recurrent state

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
        state = self.state(Z)
        dx = ops.token_shift(X, prefix=ops.carry(state, "x", X, 1)) - X
        xx = X + dx * self.mu_x
        m = torch.tanh(xx @ self.lerp_a).view(B, L, 5, -1).transpose(0, 2)  # (5, L, B, r)
        m = torch.einsum("jlbr,jrd->jbld", m, self.lerp_b)
        xw, xk, xv, xr, xg = (X + dx * (self.mu[j] + m[j]) for j in range(5))
        log_w = -torch.exp(self.w0 + torch.tanh(xw @ self.w_a) @ self.w_b)  # (B, L, D)
        heads = lambda t: t.view(B, L, self.n_heads, self.head_dim).transpose(1, 2)  # noqa: E731
        r, k, v, lw = (heads(t) for t in (self.receptance(xr), self.key(xk), self.value(xv), log_w))
        y, last = ops.linear_recurrence(r, k, v, lw, bonus=self.u, chunk=self.chunk, output_final_state=True,
                                        initial_state=None if state is None else state.get("h"))  # (B, H, L, hd)
        if state is not None:
            state["h"] = last
        y = self.ln_x(y.transpose(1, 2).reshape(B * L, D)).view(B, L, D)
        return self.out_proj(y * F.silu(self.gate(xg))), {}


DECL = UnitDecl(
    slot="token_mixer",
    doc="RWKV-6 time mixing: matrix-valued recurrent state with data-dependent per-channel decay.",
    space={"rwkv_head_dim": [16, 32], "rwkv_lora": [8, 16, 32]},
    complexity="linear",
    tags=["rwkv", "recurrent", "linear-time", "decay", "data-dependent"],
)
