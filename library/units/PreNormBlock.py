"""Pre-norm residual block: the reference topology of GPT-2, Llama and most modern LMs.

    X ─┬─ Norm ─ TokenMixer ─(+)─┬─ Norm ─ ChannelMixer ─(+)─ Y
       └─────────────────────────┘└──────────────────────────┘
"""

from model_discovery.design import GAUBase, UnitDecl


class PreNormBlock(GAUBase):
    """``X + TokenMixer(Norm(X))`` then ``+ ChannelMixer(Norm(.))``; Z flows through both mixers."""

    incremental = True  # its units keep their own state

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        kw = dict(device=device, dtype=dtype, **kwarg_all)
        self.norm1 = Norm(embed_dim, block_loc, kwarg_all, **kw)
        self.mixer = TokenMixer(embed_dim, block_loc, kwarg_all, **kw)
        self.norm2 = Norm(embed_dim, block_loc, kwarg_all, **kw)
        self.mlp = ChannelMixer(embed_dim, block_loc, kwarg_all, **kw)

    def _forward(self, X, **Z):
        H, Z = self.mixer(self.norm1(X, **Z)[0], **Z)
        X = X + H
        H, Z = self.mlp(self.norm2(X, **Z)[0], **Z)
        return X + H, Z


DECL = UnitDecl(
    slot="block",
    doc="Pre-norm residual block: token mixer then channel mixer, each behind a norm and a residual.",
    children={"Norm": "norm", "TokenMixer": "token_mixer", "ChannelMixer": "channel_mixer"},
    tags=["transformer", "residual"],
)
