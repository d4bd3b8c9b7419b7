from pathlib import Path

import pytest

from model_discovery.design import load_design
from model_discovery.design.library import (
    design_meta,
    design_names,
    library_root,
    library_tree,
    parse_unit_file,
    unit_catalogue,
)
from tests.conftest import LIBRARY

REQUIRED = {"gpt2", "llama", "mamba2", "retnet", "rwkv6", "ttt_linear", "lightbulb_moe", "lightbulb_router",
            "world_model", "hierarchical"}


def test_library_holds_the_seed_architectures():
    assert REQUIRED <= set(design_names())


@pytest.mark.parametrize("name", LIBRARY)
def test_design_folder_shape(name):
    folder = library_root() / "designs" / name
    readme = (folder / "README.md").read_text()
    meta = design_meta(name)
    assert meta.name == name
    for unit in library_tree(name).walk():
        assert unit in readme, f"{name}/README.md must describe its unit {unit}"


def test_every_unit_declares_slot_doc_and_a_valid_space():
    catalogue = unit_catalogue()
    assert len(catalogue) >= 15
    for name in catalogue:
        spec = catalogue.get(name)
        assert spec.decl.slot and spec.decl.doc, name
        assert set(spec.decl.width) <= set(spec.decl.space), f"{name}: width options must be in its space"


def test_every_catalogue_unit_is_used_by_a_design():
    used = {u for name in design_names() for u in library_tree(name).walk()}
    assert set(unit_catalogue()) <= used


@pytest.mark.parametrize("name", LIBRARY)
def test_declared_hyperparameter_values_build(name, library_design):
    """Every value a unit offers the designer must build at the default width."""
    design = library_design(name)
    tree = library_tree(name)
    for unit in tree.walk():
        for key, values in tree.units[unit].decl.space.items():
            for value in values:
                design.gab_cls(128, (0, 2), **{**design.gab_config, key: value})


def test_unit_file_without_decl_is_refused(tmp_path):
    path = Path(tmp_path / "Bad.py")
    path.write_text("from model_discovery.design import GAUBase\n\nclass Bad(GAUBase):\n    pass\n")
    with pytest.raises(ValueError, match="exactly one GAUBase subclass and one `UnitDecl"):
        parse_unit_file(path)


def test_unknown_design_suggests_a_name():
    with pytest.raises(KeyError, match="Did you mean llama"):
        design_meta("lama")


def test_composed_library_files_load(library_design):
    for name in LIBRARY:
        assert load_design(library_design(name).source).gab_config == library_design(name).gab_config
