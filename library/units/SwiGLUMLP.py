"""SwiGLU feed-forward (Shazeer, 2020), as in Llama: ``down(silu(gate(x)) * up(x))``."""

import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl


def ffn_width(embed_dim, ratio, multiple_of):
    """Hidden width ``ratio * embed_dim`` rounded up to a multiple of ``multiple_of``."""
    hidden = int(ratio * embed_dim)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLUMLP(GAUBase):
    """Gated feed-forward with a SiLU gate and separate gate/up projections."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, mlp_ratio=8 / 3, multiple_of=16,
                 **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        hidden = ffn_width(embed_dim, mlp_ratio, multiple_of)
        fk = dict(bias=False, device=device, dtype=dtype)
        self.gate_proj = nn.Linear(embed_dim, hidden, **fk)
        self.up_proj = nn.Linear(embed_dim, hidden, **fk)
        self.down_proj = nn.Linear(hidden, embed_dim, **fk)

    def _forward(self, X, **Z):
        return self.down_proj(F.silu(self.gate_proj(X)) * self.up_proj(X)), {}


DECL = UnitDecl(
    slot="channel_mixer",
    doc="SwiGLU MLP: SiLU-gated hidden layer of width mlp_ratio * d (rounded to multiple_of).",
    space={"mlp_ratio": [1.5, 2.0, 2.667, 3.0, 4.0], "multiple_of": [16]},
    width=["mlp_ratio"],
    tags=["mlp", "gated", "llama"],
)
