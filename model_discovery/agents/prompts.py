"""The LLM roles' prompts, in one place, by role. ``render(role, **fields)`` fills the user message; the helpers
below write what a role sees of a design: its unit tree with each unit's doc, the catalogue, a unit's interface."""

from __future__ import annotations

import ast

from model_discovery.design.catalogue import UnitCatalogue
from model_discovery.design.tree import UnitSpec, UnitTree

SYSTEM = {
    "proposer": (
        "You design autoregressive language-model blocks in the GAU design language: a block is a tree of "
        "GAUBase units (slots: block, token_mixer, channel_mixer, norm, memory, router). Propose ONE change as the "
        "operator asks. `units` lists the units of the change, the unit taking selected_unit's place first: each "
        "with action 'new' (you will write it; choose a class name not in the catalogue), 'modified' (rewrite an "
        "existing unit, same name) or 'reused' (a catalogue unit, by name), and its children {name: slot}. Be "
        "concrete, causal (no look-ahead) and feasible at small scale."),
    "reviewer": (
        "You review block-design proposals. Rate 0-5 (accept at 4): novelty against the similar earlier proposals "
        "and siblings shown (a duplicate gets at most 1 and novelty 'duplicate'), soundness, feasibility at the "
        "rung, and expected gain in held-out loss and grammaticality."),
    "planner": "You order the implementation: name the next unit to implement, or null when all are done.",
    "coder": (
        "You write ONE unit: a Python source defining `class NAME(GAUBase)` with `__init__(self, embed_dim, "
        "block_loc, kwarg_all, device=None, dtype=None, **kwargs)` calling super().__init__(embed_dim, block_loc, "
        "kwarg_all), and `_forward(self, X, **Z)` returning `(Y, Z_updates)` with Y shaped like X. Only torch, "
        "math, einops and model_discovery.design imports. Strictly causal. Children are instantiated by class "
        "name, as `Child(embed_dim, block_loc, kwarg_all, device=device, dtype=dtype, **kwarg_all)`; any catalogue "
        "unit may be used that way. Optional: `incremental = True` on the class promises generation with a cache "
        "(the unit keeps what later pieces of a sequence need in `self.state(Z)`, None in training, and offsets "
        "positions by `self.position(Z)`); the checker holds you to it, so leave it out unless you implement it. "
        "When findings from the checker are given, fix exactly those."),
    "observer": "You compare the implemented code with the proposal and rate 0-5 how faithfully it implements it.",
}

USER = {
    "proposer": ("Research goal: {prompt}\n\nOperator: {operator}. {instruction}\n\n{parents}\n\n"
                 "Unit catalogue (reuse any by name):\n{catalogue}\n\nRelevant knowledge:\n{knowledge}\n\n"
                 "{feedback}Return a Proposal."),
    "reviewer": ("Proposal:\n{proposal}\n\n{parents}\n\nSimilar earlier proposals:\n{similar}\n\n"
                 "Siblings (same parent):\n{siblings}\n\nReturn a Review."),
    "planner": "Proposal:\n{proposal}\n\nImplemented so far: {done}\nStill to implement: {todo}\n\nReturn a Plan.",
    "coder": ("Proposal:\n{proposal}\n\nWrite unit {unit} (slot {slot}).\n\n{current}\n\nChildren it may "
              "instantiate:\n{children}\nAny catalogue unit may be instantiated by name too: {catalogue}.\n\n"
              "The GAU contract, by example:\n```python\n{example}```\n\n"
              "The composed design file, with line numbers (units not written yet are identity placeholders; "
              "after a failed attempt, the file that was checked, which the findings' lines refer to):\n"
              "```python\n{design}```\n\n{findings}Return UnitCode with unit={unit}."),
    "observer": "Proposal:\n{proposal}\n\nCode:\n{code}\n\nReturn an Observation.",
}

EXAMPLE_UNIT = "RMSNorm"  # the short catalogue unit the coder sees as an example of the contract


def render(role: str, **fields) -> tuple[str, str]:
    """(system, user) messages of ``role``."""
    return SYSTEM[role], USER[role].format(**fields)


def first_sentence(text: str) -> str:
    return (text or "").strip().split(". ")[0].split("\n")[0].rstrip(".")


def render_tree(name: str, tree: UnitTree) -> str:
    """A design as the proposer and reviewer see it: every unit with its slot, arguments, children and doc."""
    lines = [f"Design {name} (root {tree.root}):"]
    for unit in tree.preorder():
        spec = tree.units[unit]
        children = ", ".join(f"{c} ({tree.child_slot(unit, c)})" for c in spec.children) or "none"
        args = f" args {spec.args}" if spec.args else ""
        lines.append(f"- {unit} [{spec.slot}]{args}; children: {children}. {first_sentence(spec.doc)}.")
    return "\n".join(lines)


def render_catalogue(catalogue: UnitCatalogue, limit: int = 80) -> str:
    names = catalogue.names()[-limit:]
    return "\n".join(f"- {n} [{catalogue.get(n).slot}] ({catalogue.get(n).origin or 'run'}): "
                     f"{first_sentence(catalogue.get(n).doc)}" for n in names)


def numbered(source: str) -> str:
    """The file with its line numbers, so findings that name a line can be found."""
    return "".join(f"{i:4d}  {line}" for i, line in enumerate(source.splitlines(keepends=True), 1))


def interface(spec: UnitSpec) -> str:
    """A unit's class name, constructor arguments and doc: what a parent needs to call it."""
    for node in ast.walk(ast.parse(spec.source)):
        if isinstance(node, ast.ClassDef) and node.name == spec.name:
            init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
            args = ast.unparse(init.args) if init else "embed_dim, block_loc, kwarg_all"
            return f"- {spec.name}({args.removeprefix('self, ')}) [{spec.slot}]: {first_sentence(spec.doc)}"
    return f"- {spec.name} [{spec.slot}]"
