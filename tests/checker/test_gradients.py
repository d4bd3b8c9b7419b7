"""The gradient check: a parameter no batch reaches is an error; one that a small batch happens to miss (a routed
expert no token chose) is not."""

import torch

from model_discovery.checker.dynamic import VOCAB, check_gradients
from model_discovery.design import load_design
from model_discovery.lm import DiscoveryLM, load_ladder

SOURCE = '''
import torch
from torch import nn

from model_discovery.design import GABBase, GAUBase


class Routed(GAUBase):
    """A stand-in for routing: the expert is chosen only in batches of more than {least} sequences."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        self.base = nn.Linear(embed_dim, embed_dim, device=device, dtype=dtype)
        self.expert = nn.Linear(embed_dim, embed_dim, device=device, dtype=dtype)

    def _forward(self, X, **Z):
        Y = X + self.base(X)
        return (Y + self.expert(X) if X.shape[0] > {least} else Y), {{}}


class GAB(GABBase):
    def __init__(self, embed_dim, block_loc, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc)
        self.root = Routed(embed_dim, block_loc, kwarg_all=kwargs, device=device, dtype=dtype, **kwargs)

    def _forward(self, X, **Z):
        return self.root(X, **Z)


gab_config = {{}}
'''


def _model(least):
    scale = load_ladder("cpu").rung("cpu-1m")
    torch.manual_seed(0)
    return DiscoveryLM(load_design(SOURCE.format(least=least)).gab_cls, {}, scale, vocab_size=VOCAB, n_block=2), scale


def test_a_parameter_a_small_batch_misses_is_not_unused():
    model, scale = _model(least=2)  # the first batch (2 sequences) misses the expert, the next ones (8) reach it
    assert check_gradients(model, scale) == []


def test_a_parameter_no_batch_reaches_is_an_error():
    model, scale = _model(least=100)
    found = check_gradients(model, scale)
    assert [f.check for f in found] == ["gradients"] * 4 and all("expert" in f.message for f in found)  # 2 blocks
