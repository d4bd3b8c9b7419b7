"""Causal multi-head attention with rotary position embeddings (Vaswani et al., 2017; Su et al., 2021).

Grouped-query attention (Ainslie et al., 2023) when ``n_kv_heads < num_heads``; an optional sliding window.
The rotary convention (rotate-half, ``theta = 10000``) is the one Hugging Face Llama uses.
"""

from torch import nn

from model_discovery.design import GAUBase, UnitDecl, ops


class CausalAttention(GAUBase):
    """Softmax attention over the past (and present) positions, with RoPE on queries and keys."""

    incremental = True  # keeps the keys and values (the last attn_window of them when windowed)

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

    def _forward(self, X, **Z):
        B, L, _ = X.shape
        q, k, v = self.qkv_proj(X).split(self.splits, dim=-1)
        q = q.view(B, L, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, hd)
        k = k.view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, L, hd)
        v = v.view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        start = self.position(Z)
        q, k = ops.rotary(q, self.rope_theta, start), ops.rotary(k, self.rope_theta, start)
        state = self.state(Z)  # generating: the earlier pieces' keys and values come first
        k, v = ops.cached(state, "k", k, self.window), ops.cached(state, "v", v, self.window)
        y = ops.causal_attention(q, k, v, window=self.window)  # (B, H, L, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, L, -1)), {}


DECL = UnitDecl(
    slot="token_mixer",
    doc="Causal softmax attention with rotary embeddings; GQA when n_kv_heads < num_heads; optional window.",
    space={"num_heads": [2, 4, 8], "n_kv_heads": [1, 2, 4], "attn_window": [0, 32, 64]},
    complexity="quadratic",
    tags=["attention", "transformer", "rope", "softmax"],
)
