"""Switch-routed mixture of experts (Fedus et al., 2021), from the lightbulb documents.

Each token goes to exactly one expert (top-1); its output is scaled by the router probability so the router
learns. Experts alternate between a GELU MLP and a SwiGLU MLP. No capacity limit: dropping tokens would make a
token's output depend on other tokens (including future ones), which breaks causality. The load-balancing loss
``aux_coef * E * sum_e f_e * P_e`` is added to ``Z["aux_loss"]``.
"""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl, add_aux_loss


class _Expert(nn.Module):
    """A GELU MLP (even index) or a SwiGLU MLP (odd index) with hidden width ``hidden``."""

    def __init__(self, dim, hidden, swiglu, **fk):
        super().__init__()
        self.swiglu = swiglu
        self.fc_in = nn.Linear(dim, 2 * hidden if swiglu else hidden, bias=False, **fk)
        self.fc2 = nn.Linear(hidden, dim, bias=False, **fk)

    def forward(self, x):
        if self.swiglu:
            gate, up = self.fc_in(x).chunk(2, dim=-1)
            return self.fc2(F.silu(gate) * up)
        return self.fc2(F.gelu(self.fc_in(x)))


class SwitchMoE(GAUBase):
    """Top-1 routed experts with a load-balancing auxiliary loss."""

    incremental = True  # position by position

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, n_experts=4, moe_ratio=2.0,
                 aux_coef=0.01, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        hidden = 16 * ((int(moe_ratio * embed_dim) + 15) // 16)
        self.n_experts, self.aux_coef = n_experts, aux_coef
        self.router = nn.Linear(embed_dim, n_experts, bias=False, **fk)
        self.experts = nn.ModuleList(_Expert(embed_dim, hidden, e % 2 == 1, **fk) for e in range(n_experts))

    def _forward(self, X, **Z):
        x = X.reshape(-1, X.shape[-1])  # (N, D)
        probs = torch.softmax(self.router(x).float(), dim=-1)  # (N, E)
        gate, choice = probs.max(dim=-1)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            idx = (choice == e).nonzero(as_tuple=True)[0]
            if idx.numel():
                out.index_add_(0, idx, expert(x[idx]) * gate[idx, None].to(x.dtype))
        frac = F.one_hot(choice, self.n_experts).float().mean(0)  # f_e: share of tokens
        balance = self.aux_coef * self.n_experts * (frac * probs.mean(0)).sum()
        return out.view_as(X), add_aux_loss(Z, balance)


DECL = UnitDecl(
    slot="channel_mixer",
    doc="Switch MoE: top-1 router over experts alternating GELU and SwiGLU MLPs, load-balancing aux loss.",
    space={"n_experts": [2, 4, 8], "moe_ratio": [1.0, 1.5, 2.0, 3.0], "aux_coef": [0.01]},
    width=["moe_ratio"],
    tags=["moe", "mixture of experts", "sparse", "routing", "lightbulb"],
)
