"""Per-position router over heterogeneous sub-experts (the lightbulb "expert router" block).

Every position chooses, by a learned softmax router, how much of each sub-expert's output it takes: an attention
expert (precise recall), a state-space expert (cheap long context) and a retrieval-style memory (sparse lookup).
The top ``router_top_k`` weights are kept and renormalised. Experts run densely (each is causal, so any mixture is
causal); a load-balancing loss keeps all of them in use.

    X ─┬─ AttnExpert ───┐
       ├─ SSMExpert ────┼─ Σ_e w_e(X_t) · expert_e(X)_t ─ Y
       ├─ MemoryExpert ─┘
       └─ router ─ softmax ─ top-k ─ w
"""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl, add_aux_loss


class ExpertRouter(GAUBase):
    """Soft top-k mixture of three causal token mixers, chosen per position."""

    incremental = True  # the router acts per position; the experts keep their own state

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, router_top_k=2, aux_coef=0.01,
                 **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        kw = dict(device=device, dtype=dtype, **kwarg_all)
        self.experts = nn.ModuleList([
            AttnExpert(embed_dim, block_loc, kwarg_all, **kw),
            SSMExpert(embed_dim, block_loc, kwarg_all, **kw),
            MemoryExpert(embed_dim, block_loc, kwarg_all, **kw),
        ])
        self.router = nn.Linear(embed_dim, len(self.experts), bias=False, device=device, dtype=dtype)
        self.top_k, self.aux_coef = router_top_k, aux_coef

    def _forward(self, X, **Z):
        probs = torch.softmax(self.router(X).float(), dim=-1)  # (B, L, E)
        top = probs.topk(self.top_k, dim=-1)
        weights = torch.zeros_like(probs).scatter(-1, top.indices, top.values)
        weights = (weights / weights.sum(-1, keepdim=True)).to(X.dtype)
        Y = torch.zeros_like(X)
        for e, expert in enumerate(self.experts):
            out, Z = expert(X, **Z)
            Y = Y + weights[..., e:e + 1] * out
        n = len(self.experts)
        frac = F.one_hot(top.indices[..., 0], n).float().mean((0, 1))
        balance = self.aux_coef * n * (frac * probs.mean((0, 1))).sum()
        return Y, add_aux_loss(Z, balance)


DECL = UnitDecl(
    slot="token_mixer",
    doc="Expert router: per-position soft top-k mixture of attention, SSM and retrieval-memory sub-experts.",
    children={"AttnExpert": "token_mixer", "SSMExpert": "token_mixer", "MemoryExpert": "memory"},
    space={"router_top_k": [1, 2, 3], "aux_coef": [0.01]},
    complexity="quadratic",
    tags=["router", "routing", "hybrid", "moe", "mixture of experts", "memory", "lightbulb"],
)
