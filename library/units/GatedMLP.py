"""Gated MLP with one fused input projection (Dauphin et al., 2017; Shazeer, 2020): ``fc2(act(g) * h)``."""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl

_ACTIVATIONS = {"gelu": F.gelu, "silu": F.silu, "sigmoid": torch.sigmoid, "relu2": lambda x: F.relu(x).square()}


class GatedMLP(GAUBase):
    """``fc1`` produces value and gate halves; the activated gate multiplies the value."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, mlp_ratio=8 / 3,
                 mlp_activation="gelu", mlp_bias=True, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        hidden = 16 * ((int(mlp_ratio * embed_dim) + 15) // 16)
        self.act = _ACTIVATIONS[mlp_activation]
        self.fc1 = nn.Linear(embed_dim, 2 * hidden, bias=mlp_bias, device=device, dtype=dtype)
        self.fc2 = nn.Linear(hidden, embed_dim, bias=mlp_bias, device=device, dtype=dtype)

    def _forward(self, X, **Z):
        h, gate = self.fc1(X).chunk(2, dim=-1)
        return self.fc2(self.act(gate) * h), {}


DECL = UnitDecl(
    slot="channel_mixer",
    doc="Gated MLP with a fused value/gate projection and a choice of gate activation.",
    space={"mlp_ratio": [1.5, 2.0, 2.667, 3.0, 4.0], "mlp_activation": ["gelu", "silu", "sigmoid", "relu2"]},
    width=["mlp_ratio"],
    tags=["mlp", "gated", "gpt2"],
)
