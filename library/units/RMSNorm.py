"""Root-mean-square layer norm (Zhang & Sennrich, 2019): rescales by the RMS, no centring, no bias."""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl


class RMSNorm(GAUBase):
    """``X / rms(X) * weight``."""

    incremental = True  # position by position

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, norm_eps=1e-5, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        self.eps = norm_eps
        self.weight = nn.Parameter(torch.ones(embed_dim, device=device, dtype=dtype))

    def _forward(self, X, **Z):
        return F.rms_norm(X, (self.embed_dim,), self.weight, self.eps), {}


DECL = UnitDecl(slot="norm", doc="RMSNorm: scale by the root mean square, learned gain, no bias.",
                space={"norm_eps": [1e-5, 1e-6]}, tags=["norm"])
