import torch

from model_discovery.design import (
    UnitSpec,
    UnitTree,
    compose,
    content_hash,
    load_design,
    normalise_source,
    rename_identifier,
)
from model_discovery.design.library import library_tree, unit_catalogue
from model_discovery.lm import build_lm, load_ladder


def _outputs(design, seed=0):
    scale = load_ladder("cpu").rung("cpu-1m")
    torch.manual_seed(seed)
    model = build_lm(design, scale, vocab_size=64)
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
    return model(ids).logits


def test_compose_is_deterministic():
    assert compose(library_tree("hierarchical")) == compose(library_tree("hierarchical"))


def test_round_trip_tree_file_load_gives_same_outputs(tmp_path):
    source = compose(library_tree("lightbulb_router"))
    path = tmp_path / "design.py"
    path.write_text(source)
    from_file, from_text = load_design(path), load_design(source)
    assert from_file.gab_config == library_tree("lightbulb_router").config()
    assert torch.equal(_outputs(from_file), _outputs(from_text))
    assert from_file.content_hash == from_text.content_hash


def test_unimplemented_child_renders_as_identity():
    tree = library_tree("llama")
    partial = tree.replace_child("PreNormBlock", "GatedMLP", None)
    partial = UnitTree(name="partial", root=partial.root,
                       units={k: v for k, v in partial.units.items() if k != "GatedMLP"})
    assert partial.placeholders() == ["GatedMLP"]
    source = compose(partial)
    assert "Placeholder for the unimplemented unit GatedMLP" in source
    design = load_design(source)
    mlp = design.gab_cls(16, (0, 1), **design.gab_config).root.mlp
    x = torch.randn(1, 4, 16)
    assert torch.equal(mlp(x)[0], x)


def test_replace_child_rewires_source_and_drops_orphans():
    tree = library_tree("llama")
    mamba = unit_catalogue().get("Mamba2Mixer")
    swapped = tree.replace_child("PreNormBlock", "CausalAttention", mamba)
    assert "Mamba2Mixer(" in swapped.units["PreNormBlock"].source
    assert "CausalAttention" not in swapped.units
    design = load_design(compose(swapped))
    assert type(design.gab_cls(32, (0, 1), **design.gab_config).root.mixer).__name__ == "Mamba2Mixer"


def test_rename_identifier_leaves_strings_and_comments():
    src = 'x = Foo()  # Foo stays\ny = "Foo"\nz = FooBar + Foo\n'
    assert rename_identifier(src, "Foo", "Baz") == 'x = Baz()  # Foo stays\ny = "Foo"\nz = FooBar + Baz\n'


def test_content_hash_ignores_layout_and_docstrings_not_code_or_config():
    a = 'def f(x):\n    """doc"""\n    return x + 1\n'
    b = "def f(x):   # comment\n\n    return x+1\n"
    assert normalise_source(a) == normalise_source(b)
    assert content_hash(a, {"n": 1}) == content_hash(b, {"n": 1})
    assert content_hash(a, {"n": 1}) != content_hash(a, {"n": 2})
    assert content_hash(a) != content_hash("def f(x):\n    return x + 2\n")


def test_conflicting_hyperparameters_are_refused():
    tree = library_tree("llama")
    units = {k: v.model_copy(deep=True) for k, v in tree.units.items()}
    units["GatedMLP"].args["num_heads"] = 8
    try:
        UnitTree(name="clash", root=tree.root, units=units).config()
    except ValueError as err:
        assert "set 'num_heads' to different values" in str(err)
    else:
        raise AssertionError("a hyperparameter clash must be refused")


def test_clashing_helpers_are_refused():
    unit = 'def helper():\n    return {v}\n\nclass U{i}(GAUBase):\n    pass\n'
    units = {f"U{i}": UnitSpec(name=f"U{i}", source=unit.format(v=i, i=i), children=["U1"] if i == 0 else [])
             for i in (0, 1)}
    try:
        compose(UnitTree(name="clash", root="U0", units=units))
    except ValueError as err:
        assert "both define 'helper' differently" in str(err)
    else:
        raise AssertionError("two different helpers with one name must be refused")
