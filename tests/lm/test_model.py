import pytest
import torch
import torch.nn.functional as F

from model_discovery.design import GABBase, load_design
from model_discovery.lm import DiscoveryLM, Scale, ScaleFitError, fit_to_scale

SCALE = Scale(name="t", d_model=16, n_block=3, context=8, vocab=32, train_tokens=64, batch_tokens=16, lr=1e-3,
              warmup=0, ref_params=3 * 16 * 16)


class AuxBlock(GABBase):
    """Adds 1.0 to the aux loss and records its depth."""

    def __init__(self, embed_dim, block_loc, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc)
        self.lin = torch.nn.Linear(embed_dim, embed_dim, bias=False, device=device, dtype=dtype)

    def _forward(self, X, **Z):
        return X + self.lin(X), {"aux_loss": Z.get("aux_loss", 0.0) + torch.tensor(1.0),
                                 "depths": (*Z.get("depths", ()), self.block_loc)}


def test_aux_loss_summed_over_blocks_and_added_to_loss():
    torch.manual_seed(0)
    model = DiscoveryLM(AuxBlock, {}, SCALE)
    ids = torch.randint(0, 32, (2, 8))
    out = model(ids, labels=ids)
    assert out.aux_loss.item() == 3.0
    plain = F.cross_entropy(out.logits[:, :-1].reshape(-1, 32), ids[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, plain + 3.0)


def test_head_is_tied_and_blocks_know_their_place():
    model = DiscoveryLM(AuxBlock, {}, SCALE)
    assert model.lm_head.weight is model.embedding.weight
    assert [b.block_loc for b in model.blocks] == [(0, 3), (1, 3), (2, 3)]
    assert model.block_params() == 3 * 16 * 16


def test_fit_tunes_depth():
    design = load_design("from model_discovery.design import GABBase\n" + _SOURCE)
    fit = fit_to_scale(design, SCALE.model_copy(update={"ref_params": 7 * 16 * 16}))
    assert fit.n_block == 7 and fit.rel_error == 0


def test_fit_uses_declared_width_options():
    source = _SOURCE.replace("gab_config = {}", "gab_config = {'mult': 1}\ngab_width_options = {'mult': [1, 8]}")
    design = load_design("from model_discovery.design import GABBase\n" + source)
    fit = fit_to_scale(design, SCALE.model_copy(update={"ref_params": 8 * 16 * 16}), max_blocks=1)
    assert fit.gab_config["mult"] == 8 and fit.n_block == 1


def test_unfittable_design_gets_a_clear_error():
    design = load_design("from model_discovery.design import GABBase\n" + _SOURCE)
    with pytest.raises(ScaleFitError, match=r"cannot be fitted to scale 't'.*declare width options"):
        fit_to_scale(design, SCALE.model_copy(update={"ref_params": 100 * 16 * 16}), max_blocks=4)


_SOURCE = """
import torch

class GAB(GABBase):
    def __init__(self, embed_dim, block_loc, device=None, dtype=None, mult=1, **kwargs):
        super().__init__(embed_dim, block_loc)
        self.lin = torch.nn.Linear(embed_dim, mult * embed_dim, bias=False, device=device, dtype=dtype)

    def _forward(self, X, **Z):
        return X + self.lin(X)[..., :X.shape[-1]]

gab_config = {}
"""
