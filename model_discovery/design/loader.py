"""Import a design file in this process. For trusted code only (the library, tests): designs written by agents
run in the sandbox instead."""

from __future__ import annotations

import ast
import itertools
import linecache
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_discovery.design.base import GABBase
from model_discovery.design.hashing import content_hash

_counter = itertools.count()


@dataclass
class Design:
    """A loaded design file."""

    gab_cls: type[GABBase]
    gab_config: dict[str, Any]
    source: str
    width_options: dict[str, list[Any]] = field(default_factory=dict)
    path: Path | None = None
    name: str = "design"

    @property
    def content_hash(self) -> str:
        return content_hash(self.source, self.gab_config)


def read_source(path_or_source: str | Path) -> tuple[str, Path | None]:
    """The text of a design given as a path or as source, and its path when it has one."""
    if isinstance(path_or_source, Path) or "\n" not in path_or_source:
        path = Path(path_or_source)
        if not path.is_file():
            raise FileNotFoundError(f"design file {str(path)!r} does not exist; pass a path or the source text.")
        return path.read_text(), path
    return path_or_source, None


def load_design(path_or_source: str | Path, name: str | None = None) -> Design:
    """Imports a design file (path or source text) and returns its ``GAB`` class and ``gab_config``.

    Raises:
        SyntaxError: the file does not parse (with the file's line).
        ValueError: the file has no ``GAB(GABBase)`` class or a ``gab_config`` that is not a dict.
    """
    source, path = read_source(path_or_source)
    filename = str(path) if path else f"<design-{next(_counter)}>"
    code = compile(ast.parse(source, filename), filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks show lines
    module = types.ModuleType(f"modis_design_{next(_counter)}")
    module.__file__ = filename
    sys.modules[module.__name__] = module  # so dataclasses, pickling of classes and inspect can find it
    exec(code, module.__dict__)  # trusted code only, see module docstring
    gab_cls = getattr(module, "GAB", None)
    if not (isinstance(gab_cls, type) and issubclass(gab_cls, GABBase)):
        raise ValueError(f"{filename}: a design file must define `class GAB(GABBase)`.")
    config = getattr(module, "gab_config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{filename}: `gab_config` must be a dict of hyperparameters, got {type(config).__name__}.")
    widths = getattr(module, "gab_width_options", {}) or {}
    label = name or (path.parent.name if path and path.name == "design.py" else path.stem if path else "design")
    return Design(gab_cls=gab_cls, gab_config=dict(config), source=source, width_options=dict(widths),
                  path=path, name=label)
