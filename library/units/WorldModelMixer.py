"""World-model token mixer (the lightbulb "world model" block; after Ha & Schmidhuber, 2018, and Hafner et al.,
2019): a representation network maps each observation o_t (the token's features) to a latent s; recurrent
dynamics roll a belief state h_t forward; a prediction head guesses the next latent, and both the belief and the
prediction are fused back into the residual stream.

    X ─ conv ─ repr ─ s_t ─ dynamics h_t = a_t ⊙ h_{t-1} + (1 - a_t) ⊙ s_t ─┬─ predict ŝ_{t+1} ─┐
                                                                            └───────────────────┴─ fuse ─ Y
An auxiliary loss ``wm_aux_coef * ||ŝ_{t+1} - sg(s_{t+1})||^2`` teaches the dynamics to anticipate; it uses the
next token only inside the loss, never in the output, so the block stays causal.
"""

import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase, UnitDecl, add_aux_loss, ops


class WorldModelMixer(GAUBase):
    """Representation network, gated recurrent dynamics over latent states, next-state prediction, fusion."""

    incremental = True  # keeps the convolution's last inputs and the belief state

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, state_dim=None, wm_chunk=16,
                 wm_aux_coef=0.1, conv_kernel=4, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        fk = dict(device=device, dtype=dtype)
        S = state_dim or embed_dim
        self.chunk, self.aux_coef = wm_chunk, wm_aux_coef
        self.conv = nn.Conv1d(embed_dim, embed_dim, conv_kernel, groups=embed_dim, **fk)  # for ops.causal_conv
        self.represent = nn.Sequential(nn.Linear(embed_dim, S, **fk), nn.SiLU(), nn.Linear(S, S, **fk))
        self.forget = nn.Linear(embed_dim, S, **fk)
        self.predict = nn.Sequential(nn.Linear(S, S, **fk), nn.SiLU(), nn.Linear(S, S, **fk))
        self.gate = nn.Linear(embed_dim, embed_dim, bias=False, **fk)
        self.out_proj = nn.Linear(2 * S, embed_dim, bias=False, **fk)

    def _forward(self, X, **Z):
        _B, L, _ = X.shape
        state = self.state(Z)
        prefix = ops.carry(state, "conv", X, self.conv.kernel_size[0] - 1)
        obs = F.silu(ops.causal_conv(X, self.conv.weight[:, 0], self.conv.bias, prefix=prefix))  # local context
        s = self.represent(obs)  # (B, L, S): o_t -> s_t
        log_a = F.logsigmoid(self.forget(X) + 2.0)  # forget gate a_t in (0, 1), biased to remember
        # h_t = a_t h_{t-1} + (1 - a_t) s_t per channel: the belief state after seeing o_1..o_t
        h, last = ops.diagonal_recurrence(log_a, (1 - log_a.exp()) * s, chunk=self.chunk, output_final_state=True,
                                          initial_state=None if state is None else state.get("h"))  # (B, L, S)
        if state is not None:
            state["h"] = last
        pred = self.predict(h)  # ŝ_{t+1}
        aux = self.aux_coef * F.mse_loss(pred[:, :-1], s[:, 1:].detach()) if L > 1 else X.new_zeros(())
        Y = self.out_proj(torch.cat([h, pred], dim=-1)) * F.silu(self.gate(X))
        return Y, add_aux_loss(Z, aux)


DECL = UnitDecl(
    slot="token_mixer",
    doc="World model: representation net, gated recurrent latent dynamics, next-latent prediction fused back.",
    space={"wm_aux_coef": [0.0, 0.1, 0.3]},
    complexity="linear",
    tags=["world model", "recurrent", "predictive", "linear-time", "lightbulb"],
)
