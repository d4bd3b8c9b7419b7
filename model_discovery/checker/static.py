"""Static checks: read the design's AST, execute nothing, answer in milliseconds.

A first filter, not the defence: whatever slips through still runs in the sandbox.
"""

from __future__ import annotations

import ast
import functools
import importlib
import types

from model_discovery.checker.findings import Finding

ALLOWED_IMPORTS = ("torch", "math", "typing", "functools", "dataclasses", "einops", "__future__")
DESIGN_MODULE = "model_discovery.design"
OPS_MODULE = "model_discovery.design.ops"  # the vetted kernels
DESIGN_NAMES = {"GABBase", "GAUBase", "UnitDecl", "add_aux_loss", "AUX_LOSS", "ops"}  # not the loaders or composer
# reachable through torch but never needed by a block, and each a way out of the sandbox or into the host
DENIED_QUALNAMES = (
    "torch.save", "torch.load", "torch.from_file", "torch.hub", "torch.serialization", "torch.package",
    "torch.utils.cpp_extension", "torch.utils.data", "torch.utils.benchmark", "torch.multiprocessing",
    "torch.distributed", "torch.ops.load_library", "torch.classes.load_library", "torch.compile", "torch.onnx",
    "torch.jit.load", "torch.jit.save", "torch.profiler", "torch.cuda.memory._record_memory_history",
    "torch.utils.model_zoo",
)
FORBIDDEN_CALLS = {"exec", "eval", "compile", "open", "__import__", "globals", "locals", "vars", "setattr",
                   "delattr", "input", "breakpoint", "exit", "quit", "help", "memoryview"}
FORBIDDEN_ATTRS = {"tofile", "from_file", "system", "popen", "environ", "getenv", "putenv", "f_globals", "f_locals",
                   "f_back", "gi_frame", "cr_frame", "tb_frame", "func_globals"}
ALLOWED_DUNDERS = {"__init__", "__name__", "__future__"}
ALLOWED_BASES = {"GAUBase", "GABBase", "Module", "nn.Module", "torch.nn.Module", "Function",
                 "torch.autograd.Function", "object", "NamedTuple", "typing.NamedTuple"}


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.modules: dict[str, str] = {}  # alias -> imported module name
        self.classes: dict[str, ast.ClassDef] = {}

    def error(self, check: str, node: ast.AST, message: str) -> None:
        self.findings.append(Finding(check=check, message=message, line=getattr(node, "lineno", None)))

    # imports ------------------------------------------------------------------------------------------------
    def _allowed(self, module: str) -> bool:
        return module in (DESIGN_MODULE, OPS_MODULE) or module.split(".")[0] in ALLOWED_IMPORTS

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not self._allowed(alias.name):
                self.error("static.imports", node, f"`import {alias.name}` is not allowed; designs may import only "
                           f"{', '.join(ALLOWED_IMPORTS[:-1])} and {DESIGN_MODULE}.")
            root = alias.name.split(".")[0]
            if alias.asname:
                self.modules[alias.asname] = alias.name  # import torch.nn as nn: nn is torch.nn
            else:
                self.modules[root] = root  # import torch.nn: the name bound is torch

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not self._allowed(module):
            self.error("static.imports", node, f"`from {'.' * node.level}{module} import ...` is not allowed; "
                       f"designs may import only {', '.join(ALLOWED_IMPORTS[:-1])} and {DESIGN_MODULE}.")
            return
        for alias in node.names:
            if alias.name == "*":
                self.error("static.imports", node, "`import *` hides what a design uses; import names explicitly.")
                continue
            if module == DESIGN_MODULE:
                if alias.name not in DESIGN_NAMES:
                    self.error("static.imports", node, f"designs may import only {', '.join(sorted(DESIGN_NAMES))} "
                               f"from {DESIGN_MODULE}, not {alias.name}.")
                elif alias.name == "ops":
                    self.modules[alias.asname or alias.name] = OPS_MODULE  # its attributes are followed
                continue
            target = f"{module}.{alias.name}"
            if isinstance(_resolve(target), types.ModuleType):
                self.modules[alias.asname or alias.name] = target
            self._check_qualname(target, node)

    # module references: only ever the base of an attribute, or a new name for the same module ------------
    def _module_of(self, node: ast.AST) -> str | None:
        """The module a name or attribute chain denotes, when it starts at an imported module."""
        dotted = _dotted(node)
        if not dotted or dotted.split(".")[0] not in self.modules:
            return None
        root, *rest = dotted.split(".")
        obj = _resolve(".".join([self.modules[root], *rest]))
        return obj.__name__ if isinstance(obj, types.ModuleType) else None

    def _bare_module(self, node: ast.AST) -> None:
        parent = getattr(node, "_parent", None)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return  # m.attr: followed by _check_qualname
        if isinstance(parent, ast.Assign) and parent.value is node:
            return  # x = m: an alias, tracked by visit_Assign
        if isinstance(getattr(node, "ctx", None), ast.Load) and self._module_of(node):
            self.error("static.escape", node, f"`{ast.unparse(node)}` is a module used as a value; use its attributes "
                       "directly (a module passed around hides what the design reaches).")

    def visit_Assign(self, node: ast.Assign) -> None:
        module = self._module_of(node.value)
        if module is not None:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.modules[target.id] = module  # x = ops.torch: x is torch from here on
                else:
                    self.error("static.escape", node, "a module may be bound to a plain name only.")
        self.generic_visit(node)

    # names, calls, attributes ------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("__") and node.id.endswith("__") and node.id not in ALLOWED_DUNDERS:
            self.error("static.escape", node, f"`{node.id}` is off limits in design code.")
        if node.id in self.modules:
            self._bare_module(node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name):
            name = node.func.id
            if name in FORBIDDEN_CALLS:
                self.error("static.calls", node, f"`{name}(...)` is not allowed in design code.")
            if name in {"getattr", "hasattr"} and (len(node.args) < 2 or not isinstance(node.args[1], ast.Constant)
                                                    or str(node.args[1].value).startswith("_")):
                self.error("static.escape", node, f"`{name}` with a computed or private attribute name is not "
                           "allowed; access attributes directly.")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr.startswith("__") and attr.endswith("__") and attr not in ALLOWED_DUNDERS:
            self.error("static.escape", node, f"dunder attribute `.{attr}` is off limits in design code.")
        elif attr in FORBIDDEN_ATTRS:
            self.error("static.escape", node, f"attribute `.{attr}` is not allowed in design code.")
        dotted = _dotted(node)
        if dotted and dotted.split(".")[0] in self.modules:
            root, *rest = dotted.split(".")
            self._check_qualname(".".join([self.modules[root], *rest]), node)
            self._bare_module(node)
        if isinstance(node.ctx, (ast.Store, ast.Del)) and dotted and dotted.split(".")[0] in self.modules:
            self.error("static.monkeypatch", node, f"assigning to `{dotted}` changes a shared module "
                       "(monkeypatching); keep state in your own modules.")
        self.generic_visit(node)

    def _check_qualname(self, qualname: str, node: ast.AST) -> None:
        """Follows ``a.b.c`` through real modules: every module reached must be allowed, nothing private.

        Denied names are matched on the canonical name, so ``ops.torch.load`` is ``torch.load``."""
        parts = qualname.split(".")
        start = 3 if qualname == OPS_MODULE or qualname.startswith(OPS_MODULE + ".") else 1  # not its package
        canonical = ".".join(parts[:start - 1])
        for i in range(start, len(parts) + 1):
            prefix = ".".join(parts[:i])
            canonical = f"{canonical}.{parts[i - 1]}" if canonical else parts[i - 1]
            if any(c == d or c.startswith(d + ".") for d in DENIED_QUALNAMES for c in (prefix, canonical)):
                self.error("static.escape", node, f"`{prefix}` reaches outside the model (files, processes, "
                           "network or compilation); designs may not use it.")
                return
            if i > 1 and parts[i - 1].startswith("_"):
                self.error("static.escape", node, f"`{prefix}` is a private internal; use public APIs only.")
                return
            obj = _resolve(prefix)
            if obj is not None and id(obj) in _denied_ids():
                self.error("static.escape", node, f"`{prefix}` is a way out of the model (files, processes, network "
                           "or compilation) under another name; designs may not use it.")
                return
            if isinstance(obj, types.ModuleType):
                if not self._allowed(obj.__name__):
                    self.error("static.escape", node, f"`{prefix}` reaches the module `{obj.__name__}`, which "
                               "designs may not use.")
                    return
                canonical = obj.__name__

    # structure ---------------------------------------------------------------------------------------------
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes[node.name] = node
        for base in node.bases:
            name = _dotted(base)
            if name not in ALLOWED_BASES and name not in self.classes:
                self.error("static.structure", node, f"class {node.name} derives from `{ast.unparse(base)}`; "
                           "units derive from GAUBase, helpers from nn.Module.")
        self.generic_visit(node)


@functools.cache
def _denied_ids() -> frozenset[int]:
    """The denied functions and classes themselves, to catch them re-exported under other names."""
    objs = (_resolve(q) for q in DENIED_QUALNAMES)
    return frozenset(id(o) for o in objs if o is not None and not isinstance(o, types.ModuleType))


def _resolve(qualname: str):
    """The object a dotted name denotes, importing trusted packages as needed; None when it does not exist."""
    parts = qualname.split(".")
    try:
        obj = importlib.import_module(parts[0])
    except ImportError:
        return None
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(parts[:i + 1]))
            except ImportError:
                return None
    return obj


def _bases(node: ast.ClassDef) -> set[str]:
    return {_dotted(b) or "" for b in node.bases}


def _init_params(node: ast.ClassDef) -> tuple[set[str], bool]:
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            args = item.args
            return {a.arg for a in args.args + args.kwonlyargs}, args.kwarg is not None
    return set(), True


def _structure(tree: ast.Module, classes: dict[str, ast.ClassDef]) -> list[Finding]:
    findings = []
    gabs = [c for c in classes.values() if "GABBase" in _bases(c)]
    if len(gabs) != 1 or gabs[0].name != "GAB":
        names = ", ".join(c.name for c in gabs) or "none"
        findings.append(Finding(check="static.structure", message=f"a design needs exactly one `class GAB(GABBase)`"
                                f"; found {names}.", line=gabs[1].lineno if len(gabs) > 1 else None))
    for cls in classes.values():
        is_unit = _bases(cls) & {"GAUBase", "GABBase"}
        for item in cls.body:
            if is_unit and isinstance(item, ast.FunctionDef) and item.name == "forward":
                findings.append(Finding(check="static.structure", line=item.lineno, message=f"{cls.name} overrides "
                                        "forward(); implement _forward(X, **Z) and let the base check shapes."))
        if "GAUBase" in _bases(cls) and not any(isinstance(i, ast.FunctionDef) and i.name == "_forward"
                                                for i in cls.body):
            findings.append(Finding(check="static.structure", line=cls.lineno,
                                    message=f"unit {cls.name} has no _forward(X, **Z)."))
    findings += _config(tree, classes)
    return findings


def _config(tree: ast.Module, classes: dict[str, ast.ClassDef]) -> list[Finding]:
    assigns = [n for n in tree.body if isinstance(n, ast.Assign)
               and any(isinstance(t, ast.Name) and t.id == "gab_config" for t in n.targets)]
    if not assigns:
        return [Finding(check="static.config", message="the design has no `gab_config = {...}`; add one, even empty.")]
    node = assigns[-1]
    try:
        config = ast.literal_eval(node.value)
    except ValueError:
        return [Finding(check="static.config", line=node.lineno, message="gab_config must be a literal dict "
                        "(numbers, strings, lists, booleans), so it can be read without running the file.")]
    if not isinstance(config, dict):
        return [Finding(check="static.config", line=node.lineno, message="gab_config must be a dict.")]
    accepted: set[str] = set()
    for cls in classes.values():
        if _bases(cls) & {"GAUBase", "GABBase"}:
            accepted |= _init_params(cls)[0]
    return [Finding(check="static.config", line=node.lineno, message=f"gab_config key {key!r} is not a parameter "
                    "of any unit's __init__; remove it or add it to the unit that uses it.")
            for key in config if key not in accepted]


def static_check(source: str, filename: str = "design.py") -> list[Finding]:
    """All static findings for ``source`` (empty when it passes)."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as err:
        return [Finding(check="static.syntax", line=err.lineno, message=f"the file does not parse: {err.msg}.")]
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child._parent = node  # what a module reference is used in
    visitor = _Visitor()
    visitor.visit(tree)
    return visitor.findings + _structure(tree, visitor.classes)
