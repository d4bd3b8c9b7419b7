"""Renders a :class:`UnitTree` into one design file, deterministically.

Layout of the rendered file::

    docstring (design name, units)
    imports            (union of the units' imports, sorted)
    helpers + units    (children before parents; identical helpers shared, clashing ones refused)
    placeholders       (identity units for children not implemented yet)
    class GAB(GABBase) (delegates to the root unit)
    gab_config, gab_width_options
"""

from __future__ import annotations

import ast
import pprint

from model_discovery.design.tree import UnitTree

_DESIGN_MODULE = "model_discovery.design"

_PLACEHOLDER = '''class {name}(GAUBase):
    """Placeholder for the unimplemented unit {name}: the identity."""

    incremental = True

    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc, kwarg_all)

    def _forward(self, X, **Z):
        return X, {{}}
'''

_GAB = '''class GAB(GABBase):
    """The block the LM stacks: delegates to the root unit {root}."""

    incremental = True  # whether the design generates with a cache is its units' to say

    def __init__(self, embed_dim, block_loc, device=None, dtype=None, **kwargs):
        super().__init__(embed_dim, block_loc)
        self.root = {root}(embed_dim, block_loc, kwarg_all=kwargs, device=device, dtype=dtype, **kwargs)

    def _forward(self, X, **Z):
        return self.root(X, **Z)
'''


def placeholder(name: str) -> str:
    """The source of an identity unit standing in for ``name`` until it is written."""
    return _PLACEHOLDER.format(name=name)


def _split(unit: str, source: str) -> tuple[list[str], set[str], list[tuple[str, str]]]:
    """Splits a unit's source into import lines, names taken from the design language, and named top-level
    definitions."""
    tree = ast.parse(source)
    imports, design_names, defs = [], set(), []
    for node in tree.body:
        text = ast.get_source_segment(source, node, padded=False)
        if isinstance(node, ast.ImportFrom) and node.module == _DESIGN_MODULE:
            design_names.update(alias.name for alias in node.names if alias.name != "UnitDecl")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(text)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            defs.append((node.name, _with_decorators(source, node)))
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            defs.append((node.targets[0].id, text))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the unit's docstring
        else:
            raise ValueError(f"unit {unit!r}: unsupported top-level statement at line {node.lineno}: {text!r}.")
    return imports, design_names, defs


def _with_decorators(source: str, node: ast.AST) -> str:
    lines = source.splitlines()
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return "\n".join(lines[start - 1:node.end_lineno])


def _import_order(line: str) -> tuple[bool, bool, str]:
    """``import x`` lines, then ``from x import y``, then the design language last."""
    return line.startswith("from"), line.startswith(f"from {_DESIGN_MODULE}"), line


def compose(tree: UnitTree) -> str:
    """Returns the design file for ``tree``; the same tree always gives the same bytes."""
    imports: set[str] = {"import torch", "from torch import nn"}
    design_names = {"GABBase", "GAUBase"}
    defined: dict[str, tuple[str, str]] = {}
    blocks: list[str] = []
    order = tree.walk()
    for name in order:
        if name not in tree.units:
            blocks.append(placeholder(name))
            continue
        unit_imports, unit_design_names, defs = _split(name, tree.units[name].source)
        imports.update(unit_imports)
        design_names.update(unit_design_names)
        for def_name, text in defs:
            if def_name in defined:
                if defined[def_name][1] != text:
                    raise ValueError(
                        f"units {defined[def_name][0]!r} and {name!r} both define {def_name!r} differently; "
                        "rename one of them.")
                continue
            defined[def_name] = (name, text)
            blocks.append(text + "\n")
    units = ", ".join(order)
    header = f'"""Design {tree.name!r}, composed from units: {units}."""\n'
    imports.add(f"from {_DESIGN_MODULE} import {', '.join(sorted(design_names))}")
    import_block = "\n".join(sorted(imports, key=_import_order))
    config = pprint.pformat(tree.config(), sort_dicts=True, width=100)
    widths = pprint.pformat(tree.width_options(), sort_dicts=True, width=100)
    body = "\n\n".join([*blocks, _GAB.format(root=tree.root)])
    return f"{header}\n{import_block}\n\n\n{body}\n\ngab_config = {config}\ngab_width_options = {widths}\n"
