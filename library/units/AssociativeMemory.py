"""Hippocampus-like associative memory: a fast-weight matrix written with outer products and read by content.

``M_t = sum_{s <= t} beta_s phi(k_s) v_s^T`` with a learned write strength ``beta`` and ``phi = elu + 1``; a query
reads ``phi(q_t) M_t`` normalised by ``phi(q_t) . sum_s beta_s phi(k_s)`` (linear attention, Katharopoulos et al.,
2020; fast weights, Schlag et al., 2021). Trained in the equivalent parallel form.
"""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl


class AssociativeMemory(GAUBase):
    """Causal linear-attention memory with a per-token write gate."""

    incremental = True  # keeps the memory written so far and its normaliser

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, num_heads=4, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=False, **fk)
        self.write = nn.Linear(embed_dim, num_heads, **fk)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=False, **fk)

    def _forward(self, X, **Z):
        B, L, D = X.shape
        q, k, v = self.qkv(X).view(B, L, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # (B, H, L, hd)
        q, k = F.elu(q) + 1, F.elu(k) + 1
        beta = torch.sigmoid(self.write(X)).transpose(1, 2)[..., None, :]  # (B, H, 1, L): write strength
        causal = torch.ones(L, L, dtype=torch.bool, device=X.device).tril()
        scores = (q @ k.transpose(-1, -2)).masked_fill(~causal, 0.0) * beta
        read, norm = scores @ v, scores.sum(-1, keepdim=True)
        if (state := self.state(Z)) is not None:  # generating: the earlier pieces' writes M and their sum s
            if "M" in state:
                read, norm = read + q @ state["M"], norm + q @ state["s"]
            written = k * beta.transpose(-1, -2)  # (B, H, L, hd)
            M, s = written.transpose(-1, -2) @ v, written.sum(2)[..., None]
            state["M"], state["s"] = (M, s) if "M" not in state else (state["M"] + M, state["s"] + s)
        y = read / (norm + 1e-6)
        return self.out_proj(y.transpose(1, 2).reshape(B, L, D)), {}


DECL = UnitDecl(
    slot="memory",
    doc="Associative fast-weight memory: outer-product writes gated per token, normalised content reads.",
    space={"num_heads": [2, 4, 8]},
    complexity="linear",
    tags=["memory", "associative", "hippocampus", "linear attention", "fast weights", "linear-time"],
)
