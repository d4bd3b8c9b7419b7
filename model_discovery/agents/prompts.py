"""The roles' prompts, in one place, by role. ``render(role, **fields)`` fills the user message."""

from __future__ import annotations

SYSTEM = {
    "proposer": (
        "You design autoregressive language-model blocks in the GAU design language: a block is a tree of "
        "GAUBase units (slots: block, token_mixer, channel_mixer, norm, memory, router). Propose ONE change to the "
        "parent design: which unit to replace (selected_unit) and the new unit(s) it needs, with their children. "
        "Be concrete, causal (no look-ahead) and feasible at small scale."),
    "reviewer": (
        "You review block-design proposals. Rate 0-5 (accept at 4): novelty against the similar earlier proposals "
        "and siblings shown (a duplicate gets at most 1 and novelty 'duplicate'), soundness, feasibility at the "
        "rung, and expected gain in held-out loss and grammaticality."),
    "planner": "You order the implementation: name the next unit to implement, or null when all are done.",
    "coder": (
        "You write ONE unit: a Python source defining `class NAME(GAUBase)` with `__init__(self, embed_dim, "
        "block_loc, kwarg_all, device=None, dtype=None, **kwargs)` calling super().__init__(embed_dim, block_loc, "
        "kwarg_all), and `_forward(self, X, **Z)` returning `(Y, Z)` with Y shaped like X. Only torch, math, "
        "einops and model_discovery.design imports. Strictly causal. Children are instantiated by class name. "
        "When findings from the checker are given, fix exactly those."),
    "observer": "You compare the implemented code with the proposal and rate 0-5 how faithfully it implements it.",
}

USER = {
    "proposer": ("Research goal: {prompt}\n\nParent design {parent}:\n{parent_tree}\n\nRelevant knowledge:\n"
                 "{knowledge}\n\n{feedback}Return a Proposal."),
    "reviewer": ("Proposal:\n{proposal}\n\nSimilar earlier proposals:\n{similar}\n\nSiblings (same parent):\n"
                 "{siblings}\n\nReturn a Review."),
    "planner": "Proposal:\n{proposal}\n\nImplemented so far: {done}\nStill to implement: {todo}\n\nReturn a Plan.",
    "coder": ("Proposal:\n{proposal}\n\nImplement unit {unit} (children: {children}).\n{findings}"
              "Return UnitCode with unit={unit}."),
    "observer": "Proposal:\n{proposal}\n\nCode:\n{code}\n\nReturn an Observation.",
}


def render(role: str, **fields) -> tuple[str, str]:
    """(system, user) messages of ``role``."""
    return SYSTEM[role], USER[role].format(**fields)
