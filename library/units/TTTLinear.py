"""TTT-Linear (Sun et al., 2024, Learning to (Learn at Test Time)): the hidden state is a linear model trained by
gradient descent on a self-supervised loss while the sequence is read.

Per head, an inner model ``f(k) = k W`` is fitted to reconstruct ``v`` from ``k`` with the loss
``0.5 * ||k W - v||^2``; mini-batches of ``ttt_chunk`` tokens take one gradient step each, with a learned,
token-dependent inner learning rate. Inside a mini-batch the dual form gives every position the model updated with
all gradients up to and including its own, without materialising per-token weights. Simplification: the paper's
layer norm inside the inner model is left out, so the inner gradient stays linear.
"""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl


def ttt_dual(q, k, v, eta, W0, chunk):
    """q, k, v: (B, H, L, d) with L a multiple of ``chunk``; eta: (B, H, L); W0: (H, d, d) or (B, H, d, d).
    Returns z_t = q_t W_t (B, H, L, d) and the inner model after the last mini-batch (B, H, d, d)."""
    B, H, L, d = q.shape
    n = L // chunk
    q, k, v = (t.reshape(B, H, n, chunk, d) for t in (q, k, v))
    eta = eta.reshape(B, H, n, chunk)
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    W = W0.expand(B, H, d, d)
    outs = []
    for c in range(n):
        qc, kc, vc, ec = q[:, :, c], k[:, :, c], v[:, :, c], eta[:, :, c]
        err = kc @ W - vc  # gradient of the loss w.r.t. the prediction, (B, H, C, d)
        scores = (qc @ kc.transpose(-1, -2)).masked_fill(~causal, 0.0) * ec[..., None, :]
        outs.append(qc @ W - scores @ err)
        W = W - (kc * ec[..., None]).transpose(-1, -2) @ err
    return torch.stack(outs, dim=2).reshape(B, H, L, d), W


class TTTLinear(GAUBase):
    """Projections to (q, k, v), a linear inner model trained online per head, layer norm, gate, output."""

    incremental = True  # keeps the inner model as of the current mini-batch's start, and that mini-batch so far

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, num_heads=4, ttt_chunk=16,
                 ttt_base_lr=1.0, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        self.num_heads, self.head_dim, self.chunk = num_heads, embed_dim // num_heads, ttt_chunk
        self.base_lr = ttt_base_lr
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=False, **fk)
        self.lr_proj = nn.Linear(embed_dim, num_heads, **fk)
        self.W0 = nn.Parameter(torch.randn(num_heads, self.head_dim, self.head_dim, **fk) * 0.02)
        self.ttt_norm = nn.LayerNorm(self.head_dim, **fk)
        self.gate = nn.Linear(embed_dim, embed_dim, bias=False, **fk)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=False, **fk)

    def _forward(self, X, **Z):
        B, L, D = X.shape
        H, d = self.num_heads, self.head_dim
        q, k, v = self.qkv(X).view(B, L, 3, H, d).permute(2, 0, 3, 1, 4)  # each (B, H, L, d)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)  # keeps inner steps stable
        eta = self.base_lr * torch.sigmoid(self.lr_proj(X)).transpose(1, 2) / self.chunk  # (B, H, L)
        if (state := self.state(Z)) is None:
            z = self._dual(q, k, v, eta, self.W0)[0]
        else:
            z = self._continue(state, q, k, v, eta)
        z = q + self.ttt_norm(z)  # residual inside the inner model, as in the paper
        z = z.transpose(1, 2).reshape(B, L, D)
        return self.out_proj(z * F.gelu(self.gate(X))), {}

    def _dual(self, q, k, v, eta, W):
        """``ttt_dual`` over any length: the last, partial mini-batch is padded (eta 0: no update from padding)."""
        L, pad = q.shape[2], (-q.shape[2]) % self.chunk
        if not L:
            return q, W
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        z, W = ttt_dual(q, k, v, F.pad(eta, (0, pad)), W, self.chunk)
        return z[:, :, :L], W

    def _continue(self, state, q, k, v, eta):
        """A piece of a sequence while generating: the current mini-batch's earlier tokens are replayed from the
        inner model as of its start; the model is updated only when a mini-batch is complete."""
        B, H, _, d = q.shape
        W = state.get("W", self.W0.expand(B, H, d, d))
        held = state.get("k", k[:, :, :0]).shape[2]
        k, v, eta = (torch.cat([state[key], t], dim=2) if key in state else t
                     for key, t in (("k", k), ("v", v), ("eta", eta)))
        q = torch.cat([q.new_zeros(B, H, held, d), q], dim=2)  # the held tokens' outputs were given before
        full = k.shape[2] // self.chunk * self.chunk
        z_full, W = self._dual(q[:, :, :full], k[:, :, :full], v[:, :, :full], eta[..., :full], W)
        z_rest = self._dual(q[:, :, full:], k[:, :, full:], v[:, :, full:], eta[..., full:], W)[0]
        state.update(W=W, k=k[:, :, full:], v=v[:, :, full:], eta=eta[..., full:])
        return torch.cat([z_full, z_rest], dim=2)[:, :, held:]


DECL = UnitDecl(
    slot="token_mixer",
    doc="TTT-Linear: a per-head linear model trained online by gradient steps on a reconstruction loss.",
    space={"num_heads": [2, 4, 8], "ttt_chunk": [8, 16, 32], "ttt_base_lr": [0.5, 1.0, 2.0]},
    complexity="linear",
    tags=["ttt", "test-time-training", "recurrent", "linear-time", "memory"],
)
