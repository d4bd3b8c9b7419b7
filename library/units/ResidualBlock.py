"""Single-mixer residual block, as in Mamba: ``X + TokenMixer(Norm(X))`` with no separate channel mixer.

Designs whose token mixer already expands and gates channels (Mamba's in/out projections) use it, and stack
about twice as many blocks as a transformer at the same parameter count.
"""

from model_discovery.design import GAUBase, UnitDecl


class ResidualBlock(GAUBase):
    """``X + TokenMixer(Norm(X))``."""

    incremental = True  # its units keep their own state

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        kw = dict(device=device, dtype=dtype, **kwarg_all)
        self.norm = Norm(embed_dim, block_loc, kwarg_all, **kw)
        self.mixer = TokenMixer(embed_dim, block_loc, kwarg_all, **kw)

    def _forward(self, X, **Z):
        H, Z = self.mixer(self.norm(X, **Z)[0], **Z)
        return X + H, Z


DECL = UnitDecl(
    slot="block",
    doc="Residual block with one token mixer behind a norm (the Mamba block layout).",
    children={"Norm": "norm", "TokenMixer": "token_mixer"},
    tags=["residual", "mamba"],
)
