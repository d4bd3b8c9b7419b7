import pytest
import torch

from model_discovery.design import AUX_LOSS, GABBase, GAUBase, add_aux_loss


class Doubler(GAUBase):
    def __init__(self, embed_dim, block_loc, kwarg_all, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)

    def _forward(self, X, **Z):
        return 2 * X, {"seen": Z.get("seen", 0) + 1}


class Shrinker(GAUBase):
    def __init__(self, embed_dim, block_loc, kwarg_all, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)

    def _forward(self, X, **Z):
        return X[:, :-1], {}


class PlainBlock(GABBase):
    def __init__(self, embed_dim, block_loc, **kwargs):
        super().__init__(embed_dim, block_loc)
        self.unit = Doubler(embed_dim, block_loc, {})

    def _forward(self, X, **Z):
        return self.unit(X, **Z)[0]  # a block may return Y alone


def test_unit_forward_merges_z_and_keeps_shape():
    unit = Doubler(8, (0, 1), {})
    Y, Z = unit(torch.ones(2, 3, 8), seen=1, other="kept")
    assert torch.equal(Y, 2 * torch.ones(2, 3, 8))
    assert Z == {"seen": 2, "other": "kept"}


def test_unit_shape_change_is_refused():
    with pytest.raises(ValueError, match="must return Y with the shape of X"):
        Shrinker(8, (0, 1), {})(torch.ones(2, 3, 8))


def test_wrong_input_width_is_refused():
    with pytest.raises(ValueError, match=r"expects X of shape \(batch, seq_len, 8\)"):
        Doubler(8, (0, 1), {})(torch.ones(2, 3, 4))


def test_block_may_return_y_alone():
    Y, Z = PlainBlock(8, (0, 1))(torch.ones(1, 2, 8), carried=True)
    assert Y.shape == (1, 2, 8) and Z == {"carried": True}


def test_forward_override_is_refused():
    with pytest.raises(TypeError, match="implement _forward"):
        class Sneaky(GAUBase):
            def forward(self, X, **Z):
                return X, Z


def test_aux_loss_accumulates():
    Z = add_aux_loss({}, torch.tensor(1.0))
    Z = {**Z, **add_aux_loss(Z, torch.tensor(2.0))}
    assert Z[AUX_LOSS].item() == 3.0
