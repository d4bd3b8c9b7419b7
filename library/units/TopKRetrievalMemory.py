"""Retrieval-style memory: each position retrieves only its ``retrieval_k`` best-matching past positions.

A hard, content-addressed lookup over the prefix, like a kNN memory (Wu et al., 2022, Memorizing Transformers),
computed exactly: causal scores, keep the top-k per query (and any key tied with the k-th, to 1e-4), softmax over
those.
"""

import math

import torch
from torch import nn

from model_discovery.design import GAUBase, UnitDecl, ops


class TopKRetrievalMemory(GAUBase):
    """Sparse causal attention that keeps the k highest-scoring keys per query."""

    incremental = True  # keeps every key and value: any past position may be retrieved

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, num_heads=4, retrieval_k=8,
                 **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        self.num_heads, self.top_k = num_heads, retrieval_k
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=False, **fk)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=False, **fk)

    def _forward(self, X, **Z):
        B, L, D = X.shape
        q, k, v = self.qkv(X).view(B, L, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # (B, H, L, hd)
        state = self.state(Z)  # generating: the earlier pieces' keys and values come first
        k, v = ops.cached(state, "k", k), ops.cached(state, "v", v)
        n = k.shape[2]  # keys: the queries are the last L of them
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, L, n)
        future = torch.ones(L, n, dtype=torch.bool, device=X.device).triu(n - L + 1)
        scores = scores.masked_fill(future, float("-inf"))
        kth = scores.topk(min(self.top_k, n), dim=-1).values[..., -1:]  # k-th best score per query
        # keys tied with the k-th (a repeated token's identical keys) are all kept: rounding, which differs between
        # a sequence computed whole and in pieces, never decides which of two equal keys is retrieved
        scores = scores.masked_fill(scores < kth - 1e-4 * (1 + kth.abs()), float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return self.out_proj(y.transpose(1, 2).reshape(B, L, D)), {}


DECL = UnitDecl(
    slot="memory",
    doc="Top-k retrieval memory: content-addressed lookup of the k best-matching past positions.",
    space={"num_heads": [2, 4], "retrieval_k": [4, 8, 16]},
    complexity="quadratic",
    tags=["memory", "retrieval", "sparse", "knn"],
)
