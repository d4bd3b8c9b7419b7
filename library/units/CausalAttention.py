"""Causal multi-head attention with rotary position embeddings (Vaswani et al., 2017; Su et al., 2021).

Grouped-query attention (Ainslie et al., 2023) when ``n_kv_heads < num_heads``; an optional sliding window.
The rotary convention (rotate-half, ``theta = 10000``) is the one Hugging Face Llama uses.
"""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl


def rotary_cos_sin(seq_len, head_dim, theta, device):
    """cos and sin tables of shape (seq_len, head_dim), computed in float32."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    freqs = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rotary(x, cos, sin):
    """Rotates pairs (i, i + head_dim/2) of x (B, H, L, hd) by position-dependent angles."""
    x1, x2 = x.chunk(2, dim=-1)
    return (x * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)


class CausalAttention(GAUBase):
    """Softmax attention over the past (and present) positions, with RoPE on queries and keys."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, num_heads=4, n_kv_heads=None,
                 qkv_bias=False, rope_theta=10000.0, attn_window=0, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        self.num_heads = num_heads
        self.n_kv_heads = n_kv_heads or num_heads
        if embed_dim % num_heads or num_heads % self.n_kv_heads:
            raise ValueError(f"embed_dim {embed_dim} must divide by num_heads {num_heads}, "
                             f"and num_heads by n_kv_heads {self.n_kv_heads}")
        self.head_dim = embed_dim // num_heads
        self.rope_theta = rope_theta
        self.window = attn_window
        kv_dim = self.n_kv_heads * self.head_dim
        fk = dict(device=device, dtype=dtype)
        self.splits = [embed_dim, kv_dim, kv_dim]
        self.qkv_proj = nn.Linear(embed_dim, sum(self.splits), bias=qkv_bias, **fk)  # [q; k; v], one matmul
        self.o_proj = nn.Linear(embed_dim, embed_dim, bias=False, **fk)
        self._rope_cache = None

    def _rope(self, seq_len, device):
        cache = self._rope_cache
        if cache is None or cache[0].shape[0] < seq_len or cache[0].device != device:
            cache = self._rope_cache = rotary_cos_sin(seq_len, self.head_dim, self.rope_theta, device)
        return cache[0][:seq_len], cache[1][:seq_len]

    def _forward(self, X, **Z):
        B, L, _ = X.shape
        q, k, v = self.qkv_proj(X).split(self.splits, dim=-1)
        q = q.view(B, L, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, hd)
        k = k.view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, L, hd)
        v = v.view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self._rope(L, X.device)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        gqa = self.n_kv_heads != self.num_heads
        if self.window and self.window < L:
            pos = torch.arange(L, device=X.device)
            delta = pos[:, None] - pos[None, :]
            mask = (delta >= 0) & (delta < self.window)  # (L, L), True = attend
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        return self.o_proj(y.transpose(1, 2).reshape(B, L, -1)), {}


DECL = UnitDecl(
    slot="token_mixer",
    doc="Causal softmax attention with rotary embeddings; GQA when n_kv_heads < num_heads; optional window.",
    space={"num_heads": [2, 4, 8], "n_kv_heads": [1, 2, 4], "attn_window": [0, 32, 64]},
    complexity="quadratic",
    tags=["attention", "transformer", "rope", "softmax"],
)
