"""Reads any design file (its format: docs/architecture.md, "Design files") into the unit tree the project stores
for every design.

Pure AST work: the file is never imported or executed, so it may come from anyone. Each ``GAUBase`` subclass
becomes a unit carrying the imports and helpers its code reads; the ``GAB`` is dropped when it only delegates to
one unit (the composer writes that GAB itself), otherwise it becomes the root unit ``<Name>Block``::

    class GAB(GABBase):                              class MyDesignBlock(GAUBase):
        def __init__(self, embed_dim, block_loc,  ->     def __init__(self, embed_dim, block_loc, kwarg_all,
                     ...):                                            ...):
            super().__init__(embed_dim, block_loc)           super().__init__(embed_dim, block_loc, kwarg_all)
        def _forward(self, X, **Z): ...                  def _block_forward(self, X, **Z): ...
                                                         def _forward(self, X, **Z):  # -> (Y, dict) always
"""

from __future__ import annotations

import ast
import re
import symtable
from dataclasses import dataclass, field
from typing import Any

from model_discovery.design.decl import UnitDecl
from model_discovery.design.tree import UNKNOWN_SLOT, UnitSpec, UnitTree, assign_args, rename_identifier

_DESIGN_MODULE = "model_discovery.design"
_SETTINGS = ("gab_config", "gab_width_options")

# A unit's slot guessed from its class name: the first pattern found in it (case-insensitive) wins. A heuristic for
# imported files only; library and LLM-written units declare their slot. "block" and "norm" come first so that
# "PreNormBlock" is a block and "RMSNorm" a norm; channel mixers before routers so that "GatedMLP" is an MLP; a bare
# "gate" last so that "GatedConvMixer" mixes tokens while "SparseGate" routes.
SLOT_PATTERNS = [
    ("block", "block"),
    ("norm", "norm"),
    ("mlp|ffn|feedforward|glu|channel", "channel_mixer"),
    ("memory|retrieval", "memory"),
    ("moe|router|expert", "router"),
    ("attention|attn|mixer|retention|ssm|mamba|conv|rnn|recurren|timemix|shift", "token_mixer"),
    ("gate", "router"),
]


@dataclass
class _File:
    """A design file's top-level statements, by the names they bind."""

    design: str
    source: str
    imports: list[ast.Import | ast.ImportFrom] = field(default_factory=list)
    units: dict[str, ast.ClassDef] = field(default_factory=dict)
    helpers: dict[str, ast.stmt] = field(default_factory=dict)
    others: dict[str, int] = field(default_factory=dict)  # name -> line of a statement units can't carry
    gab: ast.ClassDef | None = None
    settings: dict[str, ast.expr] = field(default_factory=dict)

    @classmethod
    def read(cls, source: str, design: str) -> _File:
        try:
            module = ast.parse(source)
        except (SyntaxError, ValueError) as err:  # ValueError: null bytes, before Python 3.12
            where = f" at line {err.lineno}" if getattr(err, "lineno", None) else ""
            raise ValueError(f"design {design!r}: syntax error{where}: {getattr(err, 'msg', err)}.") from None
        file = cls(design, source)
        for node in module.body:
            names = _bound_names(node)
            target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                file.imports.append(node)
            elif isinstance(node, ast.ClassDef) and node.name == "GAB":
                file.gab = node
            elif isinstance(node, ast.ClassDef) and any(_base_name(b) == "GAUBase" for b in node.bases):
                file.units[node.name] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and getattr(target, "id", None) in _SETTINGS:
                file.settings[target.id] = node.value
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                    _base_name(node.value.func) == "UnitDecl":
                continue  # a declaration, read by the catalogue, never run
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or (
                    isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets)):
                file.helpers.update(dict.fromkeys(names, node))
            else:
                file.others.update(dict.fromkeys(names, node.lineno))
        if file.gab is None:
            raise ValueError(f"design {design!r}: the file defines no `class GAB(GABBase)`; a design file needs one.")
        return file

    def text(self, node: ast.stmt) -> str:
        """The statement as written, decorators included."""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return "\n".join(self.source.splitlines()[start - 1:node.end_lineno])
        return ast.get_source_segment(self.source, node)

    def literal(self, setting: str) -> dict[str, Any]:
        """``gab_config`` or ``gab_width_options``: a literal dict, or {} when absent."""
        if setting not in self.settings:
            return {}
        try:
            value = ast.literal_eval(self.settings[setting])
        except (ValueError, TypeError, SyntaxError):
            value = None
        if not isinstance(value, dict):
            raise ValueError(f"design {self.design!r}: `{setting}` must be a dict of literal values "
                             "(numbers, strings, lists), as it is read without running the file.")
        return value


def parse_design(source: str, name: str) -> UnitTree:
    """Reads the design file ``source`` into a unit tree called ``name``, without running it.

    Raises:
        ValueError: the file does not parse, has no ``GAB``, sets a hyperparameter no unit takes, has a unit
            cycle, or a unit reads a name the tree cannot carry (bound by an ``if``, ``try``, ``for``, ...).
    """
    file = _File.read(source, name)
    classes = {unit: file.text(node) for unit, node in file.units.items()}
    root = _delegate(file.gab, file.units)
    if root is None:
        root = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", name)) + "Block"
        root = root if root.isidentifier() else f"Design{root}"
        if root in classes:
            raise ValueError(f"design {name!r}: its GAB becomes the unit {root!r}, but a unit of that name exists; "
                             "rename that unit.")
        classes[root] = _gab_as_unit(file, root)
    widths = file.literal("gab_width_options")
    slots = {unit: "block" if unit == root else _slot(unit) for unit in classes}
    units: dict[str, UnitSpec] = {}
    todo = [root]
    while todo:  # only the units the root reaches
        unit = todo.pop()
        if unit not in units:
            units[unit] = _spec(file, unit, classes[unit], slots, widths)
            todo += units[unit].children
    tree = UnitTree(name=name, root=root, units=units)
    assign_args([tree.units[n] for n in tree.preorder()], file.literal("gab_config"), name)
    return tree


def _spec(file: _File, name: str, class_text: str, slots: dict[str, str], widths: dict[str, list]) -> UnitSpec:
    """The unit ``name``: its source (imports, helpers, class), children and declaration."""
    used = [n for n in _free_names(class_text) if n != name]
    helpers: list[ast.stmt] = []
    for used_name in used:  # `used` grows with the names the helpers read
        node = file.helpers.get(used_name)
        if node is not None and node not in helpers:
            helpers.append(node)
            used += [n for n in _free_names(file.text(node)) if n not in used]
        elif node is None and used_name in file.others:
            raise ValueError(f"design {file.design!r}: unit {name!r} uses {used_name!r}, which line "
                             f"{file.others[used_name]} binds in a statement a unit cannot carry; bind it with a "
                             "plain assignment, def or class.")
    design_names = {"GAUBase"}
    imports = []
    for node in file.imports:
        if isinstance(node, ast.ImportFrom) and node.module == _DESIGN_MODULE and not node.level:
            design_names.update(a.name for a in node.names if (a.asname or a.name) in used)
        elif any(n in used or n == "*" for n in _bound_names(node)):
            imports.append(file.text(node))
    imports.append(f"from {_DESIGN_MODULE} import {', '.join(sorted(design_names))}")
    code = [file.text(node) for node in sorted(helpers, key=lambda n: n.lineno)] + [class_text]
    children = [n for n in used if n in slots and n != name]
    decl = unit_decl(class_text, name, slots[name], {c: slots[c] for c in children}, widths)
    return UnitSpec(name=name, source="\n".join(imports) + "\n\n\n" + "\n\n\n".join(code) + "\n",
                    children=children, doc=decl.doc, decl=decl)


def unit_decl(source: str, name: str, slot: str, children: dict[str, str],
              widths: dict[str, list] | None = None) -> UnitDecl:
    """The declaration of the unit class ``name`` in ``source`` that wrote none: the given slot and children's
    slots, the first paragraph of its docstring, and a hyperparameter space guessed from its signature."""
    cls = next((n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == name), None)
    if cls is None:
        raise ValueError(f"no class {name!r} in the unit's source")
    widths = widths or {}
    doc = " ".join((ast.get_docstring(cls) or "").split("\n\n")[0].split())
    return UnitDecl(slot=slot, doc=doc, children=children, space=_space(cls, widths),
                    width=[k for k in widths if k in _init_params(cls)])


def _free_names(code: str) -> list[str]:
    """The global names ``code`` reads (its own local variables excluded), in order of first use."""
    free: set[str] = set()
    tables = [symtable.symtable(code, "<unit>", "exec")]
    while tables:
        table = tables.pop()
        tables += table.get_children()
        free.update(s.get_name() for s in table.get_symbols() if s.is_referenced() and s.is_global())
    names = sorted((n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name) and n.id in free),
                   key=lambda n: (n.lineno, n.col_offset))
    return list(dict.fromkeys(n.id for n in names))


def _bound_names(node: ast.stmt) -> list[str]:
    """Names a top-level statement binds; for an ``if``, ``try``, ``for``... every name it may bind."""
    if isinstance(node, ast.Import):
        return [a.asname or a.name.split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [a.asname or a.name for a in node.names]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    inner = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [name for sub in ast.walk(node) if isinstance(sub, inner) for name in _bound_names(sub)] + [
        sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store)]


def _base_name(node: ast.expr) -> str | None:
    """``GAUBase`` for both ``GAUBase`` and ``design.GAUBase``."""
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == name), None)


def _init_params(cls: ast.ClassDef) -> list[str]:
    init = _method(cls, "__init__")
    return [a.arg for a in init.args.args + init.args.kwonlyargs] if init else []


def _slot(unit: str) -> str:
    return next((slot for pattern, slot in SLOT_PATTERNS if re.search(pattern, unit, re.IGNORECASE)), UNKNOWN_SLOT)


def _space(cls: ast.ClassDef, widths: dict[str, list]) -> dict[str, list]:
    """Values a designer may try for each hyperparameter, guessed from the defaults of ``__init__``: an int ``d``
    gives ``d // 2, d, 2 d``, a bool both; floats, strings and eps-like names are left alone. The file's
    ``gab_width_options`` win for the keys they name."""
    init = _method(cls, "__init__")
    if init is None:
        return {}
    args = init.args
    defaults = list(zip(args.args[len(args.args) - len(args.defaults):], args.defaults))
    defaults += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    space: dict[str, list] = {}
    for arg, default in defaults:
        try:
            value = ast.literal_eval(default)
        except (ValueError, TypeError, SyntaxError):
            continue
        if re.search(r"(^|_)eps(ilon)?($|_)|device|dtype", arg.arg):
            continue
        if isinstance(value, bool):
            space[arg.arg] = [False, True]
        elif isinstance(value, int) and value >= 2:
            space[arg.arg] = sorted({max(1, value // 2), value, 2 * value})
    space.update({p: list(widths[p]) for p in _init_params(cls) if p in widths})
    return space


def _delegate(gab: ast.ClassDef, units: dict[str, ast.ClassDef]) -> str | None:
    """The unit a GAB only delegates to, the way the composer's GAB does, or None.

    That GAB holds just ``__init__`` (``super().__init__(...)`` then ``self.x = Unit(...)`` passing its arguments
    on unchanged) and ``_forward`` (``return self.x(X, **Z)``), and may say ``incremental = ...`` (the composer's
    GAB does: whether the design generates with a cache is its units' to say).
    """
    init, forward = _method(gab, "__init__"), _method(gab, "_forward")
    body = [s for s in _code(gab.body) if not (isinstance(s, ast.Assign) and len(s.targets) == 1
                                              and ast.unparse(s.targets[0]) == "incremental")]
    if (len(body) != 2 or gab.decorator_list or len(gab.bases) != 1 or init is None or forward is None
            or len(forward.args.args) != 2 or forward.args.kwarg is None):
        return None
    steps = _code(init.body)
    if len(steps) != 2 or not ast.unparse(steps[0]).startswith(("super().__init__(", "GABBase.__init__(")):
        return None
    built = steps[1]  # self.<attr> = Unit(...)
    call = built.value if isinstance(built, ast.Assign) and len(built.targets) == 1 else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in units
            and isinstance(built.targets[0], ast.Attribute) and _passes_on(call, init.args)):
        return None
    attr = ast.unparse(built.targets[0]).removeprefix(f"{init.args.args[0].arg}.")
    me, x = (a.arg for a in forward.args.args)
    returned = [ast.unparse(s) for s in _code(forward.body)]
    delegates = attr.isidentifier() and returned == [f"return {me}.{attr}({x}, **{forward.args.kwarg.arg})"]
    return call.func.id if delegates else None


def _code(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of a body, its docstring left out."""
    return body[1:] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body


def _passes_on(call: ast.Call, params: ast.arguments) -> bool:
    """Whether ``call`` is ``Unit(embed_dim, block_loc, kwarg_all=kwargs, device=device, dtype=dtype, **kwargs)``
    in the GAB's own parameter names (``kwarg_all`` may be positional, device and dtype left out)."""
    if params.kwarg is None or len(params.args) < 3 or len({k.arg for k in call.keywords}) < len(call.keywords):
        return False
    positional = [ast.unparse(a) for a in call.args]
    keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
    if len(positional) == 3 and "kwarg_all" not in keywords:
        keywords["kwarg_all"] = positional.pop()
    optional = {"device": "device", "dtype": "dtype"}
    rest = {k: v for k, v in keywords.items() if optional.get(k) != v}
    return positional == [a.arg for a in params.args[1:3]] and rest == {"kwarg_all": params.kwarg.arg,
                                                                         None: params.kwarg.arg}


def _gab_as_unit(file: _File, name: str) -> str:
    """The source of ``GAB`` rewritten as the unit ``name``: see the module docstring."""
    gab = file.gab
    init, forward = _method(gab, "__init__"), _method(gab, "_forward")
    block_loc = next((a for a in init.args.args if a.arg == "block_loc"), None) if init else None
    if block_loc is None or forward is None:
        raise ValueError(f"design {file.design!r}: GAB must define `__init__(self, embed_dim, block_loc, ...)` "
                         "and `_forward(self, X, **Z)`.")
    edits = [(block_loc.end_lineno, block_loc.end_col_offset, ", kwarg_all")]
    for call in ast.walk(init):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "__init__" \
                and ast.unparse(call.func.value) in ("super()", "GABBase") and (call.args or call.keywords):
            last = max(call.args + call.keywords, key=lambda a: (a.end_lineno, a.end_col_offset))
            edits.append((last.end_lineno, last.end_col_offset,
                          ", kwarg_all=kwarg_all" if call.keywords else ", kwarg_all"))
    lines = file.source.splitlines()
    def_line = lines[forward.lineno - 1].encode()
    name_at = def_line.index(b"_forward", forward.col_offset)
    edits.append((forward.lineno, name_at, "_block"))
    for row, col, text in sorted(edits, reverse=True):  # columns are byte offsets
        line = lines[row - 1].encode()
        lines[row - 1] = (line[:col] + text.encode() + line[col:]).decode()
    start = min([gab.lineno] + [d.lineno for d in gab.decorator_list])
    body_line = lines[gab.body[0].lineno - 1]
    indent = body_line[:len(body_line) - len(body_line.lstrip())]
    wrapper = [f"{indent}def _forward(self, X, **Z):",
               f"{indent * 2}out = self._block_forward(X, **Z)",
               f"{indent * 2}Y, updates = out if isinstance(out, tuple) else (out, {{}})  # a GAB may return Y alone",
               f"{indent * 2}return Y, updates or {{}}"]
    text = "\n".join(lines[start - 1:gab.end_lineno]).rstrip() + "\n\n" + "\n".join(wrapper)
    return rename_identifier(rename_identifier(text, "GABBase", "GAUBase"), "GAB", name)
