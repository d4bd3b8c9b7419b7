"""RWKV channel mixing (Peng et al., 2023): a squared-ReLU MLP on token-shifted inputs, gated by a receptance."""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl, ops


class RWKV6ChannelMix(GAUBase):
    """``sigmoid(r(x_r)) * value(relu(key(x_k))^2)`` where x_r, x_k mix each token with its predecessor."""

    incremental = True  # keeps the last input, for the next piece's shift

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, mlp_ratio=3.5, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        hidden = 16 * ((int(mlp_ratio * embed_dim) + 15) // 16)
        layer, n_layer = block_loc
        ramp = torch.arange(embed_dim, **fk) / embed_dim
        self.mu_k = nn.Parameter(1.0 - ramp ** (1.0 - layer / max(n_layer, 1)))
        self.mu_r = nn.Parameter(1.0 - ramp ** (1.0 - layer / max(n_layer, 1)))
        self.key = nn.Linear(embed_dim, hidden, bias=False, **fk)
        self.receptance = nn.Linear(embed_dim, embed_dim, bias=False, **fk)
        self.value = nn.Linear(hidden, embed_dim, bias=False, **fk)

    def _forward(self, X, **Z):
        dx = ops.token_shift(X, prefix=ops.carry(self.state(Z), "x", X, 1)) - X  # previous token minus this one
        k = F.relu(self.key(X + dx * self.mu_k)).square()
        return torch.sigmoid(self.receptance(X + dx * self.mu_r)) * self.value(k), {}


DECL = UnitDecl(
    slot="channel_mixer",
    doc="RWKV channel mixing: token-shifted squared-ReLU MLP with a sigmoid receptance gate.",
    space={"mlp_ratio": [2.0, 3.0, 3.5, 4.0]},
    width=["mlp_ratio"],
    tags=["rwkv", "mlp", "token-shift"],
)
