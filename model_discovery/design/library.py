"""The reference library, read as data: a unit catalogue and designs assembled from it.

Layout (see ``library/README.md``)::

    library/units/<Unit>.py                 shared units, one GAUBase subclass + one UnitDecl(...) each
    library/designs/<name>/meta.yaml        root unit, bindings of abstract children, hyperparameters
    library/designs/<name>/units/<Unit>.py  units only this design uses
    library/designs/<name>/README.md        what it is, where it comes from, its units

Unit files are parsed, never imported: the ``UnitDecl`` call is read with ``ast.literal_eval``.
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
from pathlib import Path
from typing import Any

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field

from model_discovery.design.composer import compose
from model_discovery.design.decl import UnitDecl
from model_discovery.design.hashing import content_hash
from model_discovery.design.tree import UnitSpec, UnitTree, assign_args
from model_discovery.files import atomic_write
from model_discovery.registry import Registry, did_you_mean
from model_discovery.resources import project_dir


class DesignMeta(BaseModel):
    """``library/designs/<name>/meta.yaml``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    title: str
    origin: str = Field(description="paper or document the idea comes from")
    root: str = Field(description="catalogue unit the block delegates to")
    bind: dict[str, str] = Field(default_factory=dict, description="abstract child name -> catalogue unit")
    args: dict[str, Any] = Field(default_factory=dict, description="hyperparameters (the design's gab_config)")
    tags: list[str] = Field(default_factory=list)
    summary: str = ""


def library_root() -> Path:
    """``$MODIS_LIBRARY``, or the ``library/`` folder of this checkout or the installed package."""
    root = Path(os.environ.get("MODIS_LIBRARY") or project_dir("library"))
    if not (root / "designs").is_dir():
        raise FileNotFoundError(
            f"no reference library at {root}; set MODIS_LIBRARY to a folder with units/ and designs/.")
    return root


def cache_dir() -> Path:
    """The user's cache folder for modis (composed files, corpora, tokens, finished verifications): ``$MODIS_CACHE``,
    else the platform's convention (``$XDG_CACHE_HOME/modis``, ``~/.cache/modis`` on Linux)."""
    path = Path(os.environ.get("MODIS_CACHE") or platformdirs.user_cache_dir("modis"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_unit_file(path: Path) -> UnitSpec:
    """Reads one unit file: its GAUBase subclass, its ``UnitDecl(...)`` and its docstring."""
    source = path.read_text()
    module = ast.parse(source, str(path))
    decls = [n for n in module.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
             and getattr(n.value.func, "id", None) == "UnitDecl"]
    classes = [n.name for n in module.body if isinstance(n, ast.ClassDef)
               and any(getattr(b, "id", None) == "GAUBase" for b in n.bases)]
    if len(decls) != 1 or len(classes) != 1:
        raise ValueError(f"{path}: a unit file needs exactly one GAUBase subclass and one `UnitDecl(...)`; "
                         f"found {len(classes)} and {len(decls)}.")
    call = decls[0].value
    try:
        decl = UnitDecl(**{kw.arg: ast.literal_eval(kw.value) for kw in call.keywords})
    except ValueError as err:
        raise ValueError(f"{path}:{call.lineno}: UnitDecl(...) takes literal values only ({err}).") from None
    lines = source.splitlines(keepends=True)
    body = "".join(lines[:decls[0].lineno - 1] + lines[decls[0].end_lineno:]).strip() + "\n"
    return UnitSpec(name=classes[0], source=body, children=list(decl.children), doc=decl.doc
                    or inspect.cleandoc(ast.get_docstring(module) or ""), decl=decl, origin="library")


@functools.lru_cache(maxsize=4)
def _unit_files(root: Path) -> tuple[tuple[Path, UnitSpec], ...]:
    return tuple((path, parse_unit_file(path))
                 for path in sorted(root.glob("units/*.py")) + sorted(root.glob("designs/*/units/*.py")))


@functools.lru_cache(maxsize=4)
def _catalogue(root: Path) -> Registry[UnitSpec]:
    registry: Registry[UnitSpec] = Registry("unit")
    for _, spec in _unit_files(root):
        registry.add(spec.name, spec)
    return registry


def unit_catalogue() -> Registry[UnitSpec]:
    """Every unit of the library, by class name."""
    return _catalogue(library_root())


def unit_path(name: str) -> Path | None:
    """The file of the library unit ``name``, or None for a unit the library lacks."""
    return next((path for path, spec in _unit_files(library_root()) if spec.name == name), None)


def design_names() -> list[str]:
    return sorted(p.parent.name for p in library_root().glob("designs/*/meta.yaml"))


def design_meta(name: str) -> DesignMeta:
    path = library_root() / "designs" / name / "meta.yaml"
    if not path.is_file():
        raise KeyError(f"no library design {name!r}.{did_you_mean(name, design_names())} "
                       "`modis library list` shows them all.")
    return DesignMeta(**yaml.safe_load(path.read_text()))


def build_tree(meta: DesignMeta, catalogue: Registry[UnitSpec] | None = None) -> UnitTree:
    """Assembles a design's unit tree from the catalogue, binding abstract children to their units."""
    catalogue = catalogue or unit_catalogue()
    units: dict[str, UnitSpec] = {}

    def add(name: str) -> None:
        if name in units:
            return
        spec = catalogue.get(name)
        units[name] = spec.bind({c: meta.bind.get(c, c) for c in spec.children})
        for child in units[name].children:
            if child in catalogue:
                add(child)

    add(meta.root)
    tree = UnitTree(name=meta.name, root=meta.root, units=units)
    assign_args([tree.units[n] for n in tree.preorder()], meta.args, meta.name)
    return tree


def library_tree(name: str) -> UnitTree:
    """The unit tree of the library design ``name``."""
    return build_tree(design_meta(name))


def library_design_path(name: str) -> Path:
    """Composes the library design ``name`` into a file (cached by content) and returns its path."""
    source = compose(library_tree(name))
    path = cache_dir() / "library" / f"{name}-{content_hash(source)}.py"
    if not path.exists():
        atomic_write(path, source)
    return path
