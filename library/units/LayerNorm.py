"""Layer normalisation (Ba et al., 2016) with learned gain and bias, as in GPT-2."""

from torch import nn

from model_discovery.design import GAUBase, UnitDecl


class LayerNorm(GAUBase):
    """``(X - mean) / std * weight + bias`` over the feature dimension."""

    incremental = True  # position by position

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, norm_eps=1e-5, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps, device=device, dtype=dtype)

    def _forward(self, X, **Z):
        return self.norm(X), {}


DECL = UnitDecl(slot="norm", doc="LayerNorm: centre and scale each position, learned gain and bias.",
                space={"norm_eps": [1e-5, 1e-6]}, tags=["norm"])
