from pathlib import Path

import pytest
import torch

from model_discovery.design import compose, content_hash, load_design
from model_discovery.design.library import design_names, library_tree
from model_discovery.design.parse import parse_design

FIXTURE = Path(__file__).parents[1] / "fixtures" / "external_design.py"

# A GAB with its own norm, residual and helper, returning Y alone: it cannot be dropped, so it becomes a unit.
WRAPPED = '''
import torch
from torch import nn
from model_discovery.design import GABBase, GAUBase


def scaled(x, gain):
    return x * gain


class Mixer(GAUBase):
    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        self.proj = nn.Linear(embed_dim, embed_dim, device=device, dtype=dtype)

    def _forward(self, X, **Z):
        return torch.tanh(self.proj(X)), {}


class GAB(GABBase):
    """Pre-norm residual around one mixer.

    With a fixed output gain."""

    def __init__(self, embed_dim, block_loc, device=None, dtype=None, gain=0.5, **kwargs):
        super().__init__(embed_dim, block_loc)
        self.norm = nn.LayerNorm(embed_dim, device=device, dtype=dtype)
        self.mixer = Mixer(embed_dim, block_loc, kwarg_all=kwargs, device=device, dtype=dtype, **kwargs)
        self.gain = gain

    def _forward(self, X, **Z):
        Y, Z = self.mixer(self.norm(X), **Z)
        return X + scaled(Y, self.gain)


gab_config = {"gain": 0.25}
'''

# Two units share a helper; the root reaches both; Orphan is reached by nothing.
SHARED = '''
import torch
from torch import nn
from model_discovery.design import GABBase, GAUBase


def double(x):
    return 2 * x


class Left(GAUBase):
    def _forward(self, X, **Z):
        return double(X), {}


class Right(GAUBase):
    def _forward(self, X, **Z):
        return -double(X), {}


class Orphan(GAUBase):
    def _forward(self, X, **Z):
        return X, {}


class Pair(GAUBase):
    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        self.left, self.right = Left(embed_dim, block_loc, kwarg_all), Right(embed_dim, block_loc, kwarg_all)

    def _forward(self, X, **Z):
        return self.left(X)[0] + self.right(X)[0] + X, {}


class GAB(GABBase):
    def __init__(self, embed_dim, block_loc, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc)
        self.root = Pair(embed_dim, block_loc, kwarg_all=kwargs, device=device, dtype=dtype, **kwargs)

    def _forward(self, X, **Z):
        return self.root(X, **Z)
'''


def _block(design, seed=0):
    torch.manual_seed(seed)
    return design.gab_cls(16, (0, 2), **design.gab_config)


@pytest.mark.parametrize("name", design_names())
def test_library_designs_round_trip(name):
    tree = library_tree(name)
    source = compose(tree)
    parsed = parse_design(source, name)
    assert content_hash(compose(parsed), parsed.config()) == content_hash(source, tree.config())
    assert compose(parsed) == source  # even byte for byte: helpers and imports come back in the same order
    assert (parsed.root, set(parsed.units), parsed.config()) == (tree.root, set(tree.units), tree.config())


def test_external_design_becomes_its_units():
    source = FIXTURE.read_text()
    tree = parse_design(source, "external")
    assert tree.root == "GatedConvMixer"
    assert set(tree.units) == {"GatedConvMixer", "SparseGate", "ConvMLP"}
    assert tree.units["GatedConvMixer"].children == ["SparseGate", "ConvMLP"]
    assert {n: u.args for n, u in tree.units.items()} == {
        "GatedConvMixer": {"kernel_size": 4}, "ConvMLP": {"hidden_mult": 2}, "SparseGate": {"gate_penalty": 0.01}}
    assert {n: u.slot for n, u in tree.units.items()} == {
        "GatedConvMixer": "block", "SparseGate": "router", "ConvMLP": "channel_mixer"}
    assert tree.units["ConvMLP"].decl.space == {"hidden_mult": [1, 2, 4]}
    assert tree.units["GatedConvMixer"].decl.children == {"SparseGate": "router", "ConvMLP": "channel_mixer"}
    assert tree.units["SparseGate"].doc == "Sigmoid gate per channel with an L1 penalty on its mean activation."
    assert "import math" in tree.units["GatedConvMixer"].source
    assert "import math" not in tree.units["ConvMLP"].source  # only the imports a unit reads
    x = torch.randn(2, 8, 16)
    original, composed = _block(load_design(source)), _block(load_design(compose(tree)))
    assert torch.equal(original(x)[0], composed(x)[0])
    assert compose(parse_design(compose(tree), "external")) == compose(tree)


@pytest.mark.parametrize("call, root", [
    ("GatedConvMixer(embed_dim, block_loc, kwargs, device=device, dtype=dtype, **kwargs)", "GatedConvMixer"),
    ("GatedConvMixer(embed_dim, block_loc, kwarg_all=kwargs, **kwargs)", "GatedConvMixer"),
    ("GatedConvMixer(embed_dim, block_loc, kwarg_all=kwargs, hidden_mult=3, **kwargs)", "ExternalBlock"),
    ("GatedConvMixer(embed_dim, block_loc, kwarg_all={}, **kwargs)", "ExternalBlock"),
])
def test_gab_is_dropped_only_when_it_passes_everything_on(call, root):
    source = FIXTURE.read_text()
    start = source.index("GatedConvMixer(embed_dim")
    source = source[:start] + call + source[source.index("\n", start):]
    assert parse_design(source, "external").root == root


def test_gab_with_its_own_logic_becomes_the_root_unit():
    tree = parse_design(WRAPPED, "my_design")
    block = tree.units["MyDesignBlock"]
    assert (tree.root, block.children, block.args, block.slot) == ("MyDesignBlock", ["Mixer"], {"gain": 0.25}, "block")
    assert block.doc == "Pre-norm residual around one mixer."
    assert "def scaled" in block.source and "def scaled" not in tree.units["Mixer"].source
    original = _block(load_design(WRAPPED))
    for p in original.parameters():  # LayerNorm's ones and zeros would hide a swapped weight
        torch.nn.init.normal_(p)
    composed = _block(load_design(compose(tree)))
    composed.load_state_dict({f"root.{k}": v for k, v in original.state_dict().items()})
    x = torch.randn(2, 8, 16)
    assert torch.equal(original(x)[0], composed(x)[0])
    assert parse_design(compose(tree), "my_design").root == "MyDesignBlock"  # the composer's GAB only delegates


def test_a_helper_shared_by_two_units_is_carried_by_both_and_composed_once():
    tree = parse_design(SHARED, "shared")
    assert "Orphan" not in tree.units
    assert tree.units["Pair"].children == ["Left", "Right"]
    assert all("def double" in tree.units[u].source for u in ("Left", "Right"))
    source = compose(tree)
    assert source.count("def double") == 1
    x = torch.randn(2, 8, 16)
    assert torch.equal(_block(load_design(source))(x)[0], x)  # 2x - 2x + x


@pytest.mark.parametrize("source, message", [
    (SHARED.replace("class GAB(", "class Block("), "no `class GAB"),
    (SHARED.replace("def double(x):", "def double(x)"), "syntax error at line 7"),
    (SHARED + "gab_config = {'heads': 4}\n", "no unit declares hyperparameter 'heads'"),
    (SHARED + "gab_config = dict(heads=4)\n", "`gab_config` must be a dict of literal values"),
    (SHARED.replace("return double(X), {}", "return Pair(X), {}"), "unit cycle Pair -> Left -> Pair"),
    (SHARED.replace("def double(x):\n    return 2 * x", "if True:\n    double = abs"), "uses 'double', which line 7"),
])
def test_bad_files_are_refused_with_the_reason(source, message):
    with pytest.raises(ValueError, match="design 'shared'") as err:
        parse_design(source, "shared")
    assert message in str(err.value)
