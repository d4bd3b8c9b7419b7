"""Hierarchical multi-timescale mixer (the "thinking model" document; after Chung et al., 2017, hierarchical
multiscale RNNs, and Hopfield-style associative memory).

Three timescales read the past: a local token mixer (fine), skip-step summaries of the last completed spans of
``s`` tokens for each stride ``s`` (coarse: a position sees only spans that ended at or before it), and an
associative memory (everything, compressed). A learned gate per position mixes them.

    X ─┬─ LocalMixer ───────────────────────────┐
       ├─ spans of 4 ─ mean ─ attend (ended ≤ t) ┼─ gated sum ─ Y
       ├─ spans of 16 ─ mean ─ attend (ended ≤ t)┤
       └─ Memory ───────────────────────────────┘
"""

import math

import torch
from torch import nn

from model_discovery.design import GAUBase, UnitDecl


class HierarchicalMixer(GAUBase):
    """Local mixer + attention over completed span summaries at several strides + associative memory."""

    incremental = True  # keeps the inputs so far (for the span summaries); its children keep their own state

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, summary_strides=(4, 16),
                 **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        kw = dict(device=device, dtype=dtype, **kwarg_all)
        fk = dict(device=device, dtype=dtype)
        self.strides = tuple(summary_strides)
        self.local = LocalMixer(embed_dim, block_loc, kwarg_all, **kw)
        self.memory = Memory(embed_dim, block_loc, kwarg_all, **kw)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=False, **fk)
        self.kv_proj = nn.ModuleList(nn.Linear(embed_dim, 2 * embed_dim, bias=False, **fk) for _ in self.strides)
        self.null_kv = nn.Parameter(torch.zeros(2, embed_dim, **fk))  # attended when no span has ended yet
        self.mix = nn.Linear(embed_dim, 2 + len(self.strides), **fk)
        self.coarse_proj = nn.Linear(embed_dim, embed_dim, bias=False, **fk)

    def _coarse(self, X, q, stride, kv_proj):
        """Attention from each of the last ``q.shape[1]`` positions of ``X`` (the sequence so far) to the summaries
        of spans of ``stride`` tokens that ended before it."""
        (B, N, D), L = X.shape, q.shape[1]
        n = N // stride
        spans = X[:, :n * stride].reshape(B, n, stride, D).mean(2)  # (B, n, D)
        k, v = kv_proj(spans).chunk(2, dim=-1)
        k = torch.cat([self.null_kv[0].expand(B, 1, D), k], dim=1)
        v = torch.cat([self.null_kv[1].expand(B, 1, D), v], dim=1)
        ends = torch.arange(1, n + 1, device=X.device) * stride - 1  # last position of each span
        seen = torch.arange(N - L, N, device=X.device)[:, None] >= ends[None, :]  # (L, n)
        allowed = torch.cat([torch.ones(L, 1, dtype=torch.bool, device=X.device), seen], dim=1)
        scores = (q @ k.transpose(1, 2) / math.sqrt(D)).masked_fill(~allowed, float("-inf"))
        return torch.softmax(scores, dim=-1) @ v  # (B, L, D)

    def _forward(self, X, **Z):
        local, Z = self.local(X, **Z)
        memory, Z = self.memory(X, **Z)
        q = self.q_proj(X)
        seq = X
        if (state := self.state(Z)) is not None:  # generating: the spans take the earlier pieces' inputs too
            seq = state["x"] = X if "x" not in state else torch.cat([state["x"], X], dim=1)
        coarse = [self._coarse(seq, q, s, proj) for s, proj in zip(self.strides, self.kv_proj)]
        w = torch.softmax(self.mix(X), dim=-1)  # (B, L, 2 + n_strides)
        Y = w[..., :1] * local + w[..., 1:2] * memory
        for i, c in enumerate(coarse):
            Y = Y + w[..., 2 + i:3 + i] * self.coarse_proj(c)
        return Y, Z


DECL = UnitDecl(
    slot="token_mixer",
    doc="Hierarchical mixer: local mixing, skip-step span summaries at several strides, associative memory.",
    children={"LocalMixer": "token_mixer", "Memory": "memory"},
    space={"summary_strides": [[4, 16], [8, 32], [4, 16, 64]]},
    complexity="quadratic",
    tags=["hierarchical", "multi-timescale", "memory", "hippocampus", "summaries", "thinking"],
)
