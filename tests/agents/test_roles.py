"""From an LLM's proposal to a tree (no LLM, no sandbox): every operator, units reused by name from the catalogue
or a parent, new units as placeholders to write, and proposals that cannot make a tree told why."""

from model_discovery.agents.roles import Brief, assemble, with_unit
from model_discovery.agents.schemas import Proposal, UnitCode
from model_discovery.design import compose, load_design
from model_discovery.design.catalogue import UnitCatalogue
from model_discovery.design.library import library_tree, unit_catalogue

SHIFT = '''import torch
import torch.nn.functional as F
from torch import nn

from model_discovery.design import GAUBase


class ShiftMix(GAUBase):
    """Mixes each token with the previous one, then a norm."""

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, shift_width=2, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)
        self.proj = nn.Linear(2 * embed_dim, embed_dim, device=device, dtype=dtype)
        self.norm = RMSNorm(embed_dim, block_loc, kwarg_all, device=device, dtype=dtype, **kwarg_all)

    def _forward(self, X, **Z):
        prev = F.pad(X, (0, 0, 1, 0))[:, :-1]
        return self.norm(self.proj(torch.cat([X, prev], -1)), **Z)[0], {}
'''


def _brief(operator, parents):
    return Brief(operator=operator, parents=[(p, library_tree(p)) for p in parents],
                 catalogue=UnitCatalogue(unit_catalogue()), name="d0001")


def _proposal(operator, selected, units, parents=()):
    return Proposal(title="t", motivation="m", operator=operator, parents=list(parents), selected_unit=selected,
                    change="c", units=units)


def test_a_new_unit_replaces_the_selected_one_and_is_written_into_the_tree():
    brief = _brief("mutation", ["llama"])
    draft = assemble(_proposal("mutation", "CausalAttention", [{"name": "ShiftMix", "action": "new"}]), brief)
    assert not draft.problem and draft.todo == ["ShiftMix"] and draft.slots["ShiftMix"] == "token_mixer"
    assert "ShiftMix" in draft.tree.units and "CausalAttention" not in draft.tree.units  # a placeholder for now
    tree = with_unit(draft.tree, UnitCode(unit="ShiftMix", source=SHIFT), draft, brief)
    spec = tree.units["ShiftMix"]
    assert spec.children == ["RMSNorm"] and spec.decl.slot == "token_mixer" and spec.origin == "d0001"
    assert spec.decl.space == {"shift_width": [1, 2, 4]} and spec.doc.startswith("Mixes each token")
    load_design(compose(tree))  # trusted here: the test wrote the unit


def test_crossover_reuses_a_unit_of_the_second_parent_by_name():
    brief = _brief("crossover", ["llama", "mamba2"])
    draft = assemble(_proposal("crossover", "CausalAttention", [{"name": "Mamba2Mixer", "action": "reused"}]),
                     brief)
    assert not draft.problem and draft.todo == []
    assert draft.tree.units["Mamba2Mixer"].source == library_tree("mamba2").units["Mamba2Mixer"].source
    load_design(compose(draft.tree))


def test_scratch_composes_catalogue_units_and_new_ones_under_a_new_root():
    brief = _brief("scratch", [])
    units = [{"name": "ResidualBlock", "action": "reused"}, {"name": "ShiftMix", "action": "new"}]
    draft = assemble(_proposal("scratch", "ResidualBlock", units), brief)
    assert not draft.problem and draft.tree.root == "ResidualBlock" and draft.todo == ["ShiftMix"]
    assert draft.tree.name == "d0001"


def test_modifying_a_unit_keeps_its_code_until_the_coder_rewrites_it():
    brief = _brief("mutation", ["llama"])
    draft = assemble(_proposal("mutation", "GatedMLP", [{"name": "GatedMLP", "action": "modified"}]), brief)
    assert draft.todo == ["GatedMLP"] and draft.tree.units["GatedMLP"] == library_tree("llama").units["GatedMLP"]


def test_proposals_that_make_no_tree_say_why():
    brief = _brief("mutation", ["llama"])
    cases = {
        "is not in llama": _proposal("mutation", "Mamba2Mixer", [{"name": "ShiftMix", "action": "new"}]),
        "a unit of that name exists": _proposal("mutation", "GatedMLP", [{"name": "SwitchMoE", "action": "new"}]),
        "no catalogue or parent unit": _proposal("mutation", "GatedMLP", [{"name": "Nope", "action": "reused"}]),
        "`units` is empty": _proposal("mutation", "GatedMLP", []),
    }
    for reason, proposal in cases.items():
        draft = assemble(proposal, brief)
        assert draft.tree is None and reason in draft.problem, (reason, draft.problem)
