"""A typed operator grammar: genes for token and channel mixers, each decoding to one readable ``GAUBase`` unit.

After STAR (Thomas et al., 2025): a token mixer is a linear input-varying operator — featurizers make q, k, v from
the stream; a mixing structure combines positions (softmax attention, full or banded; a linear recurrence with a
decay; a causal convolution); a feature map, a normalisation, an output gate and a skip finish it. Attention,
linear attention, RetNet, GLA/RWKV-6, Mamba-2 (:data:`LIBRARY_GENES`) and H3-like short-convolution mixers
(:data:`SHORT_CONV`) are points of this space. A channel mixer is dense, gated, grouped or a sparse mixture of
experts.

A gene decodes (:func:`decode`) to unit code over the vetted kernels of :mod:`model_discovery.design.ops`: short,
shape-commented, its docstring stating the gene in words. The gene itself rides in the unit's ``UnitDecl``, so a
synthesized unit can be mutated and recombined again once it is in the run's catalogue.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from model_discovery.design.decl import UnitDecl
from model_discovery.design.tree import UnitSpec

Featurizer = Literal["linear", "shift", "ddshift", "conv"]
FEATURIZER_WORDS = {"linear": "a linear map", "shift": "a linear map of a learned mix with the previous token",
                    "ddshift": "a linear map of a data-dependent (low-rank) mix with the previous token",
                    "conv": "a linear map, a causal short convolution and SiLU"}


class MixerGene(BaseModel):
    """A token mixer: how q, k, v are made, how positions are mixed, how the result is finished."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["token_mixer"] = "token_mixer"
    q: Featurizer = "linear"
    k: Featurizer = "linear"
    v: Featurizer = "linear"
    structure: Literal["attention", "recurrence", "conv"] = "attention"
    feature_map: Literal["identity", "silu", "elu1", "relu"] = "identity"  # on q and k (not for attention)
    window: int = 0  # attention: attend to the last `window` positions (0 = all); conv: the kernel's length
    decay: Literal["none", "fixed", "scalar", "vector"] = "none"  # recurrence only
    bonus: bool = False  # recurrence: read the past state plus a learned bonus for the current token (RWKV's u)
    heads: int = 4
    shared_qk: bool = False  # recurrence: one query/key head for all value heads (Mamba-2's C and B)
    state: int = 0  # key width per head with shared q/k (0: embed_dim / heads)
    rope: bool = False  # rotary positions on q and k
    expand: int = 1  # value width = expand * embed_dim
    norm: Literal["none", "group", "rms"] = "none"
    gate: Literal["none", "silu", "sigmoid"] = "none"
    skip: bool = False  # add a learned per-head multiple of v (Mamba-2's D)

    @model_validator(mode="after")
    def _consistent(self):
        problems = []
        if self.structure != "recurrence" and (self.decay != "none" or self.bonus or self.shared_qk):
            problems.append("decay, bonus and shared_qk belong to a recurrence")
        if self.structure == "attention" and self.feature_map != "identity":
            problems.append("softmax attention takes no feature map")
        if self.structure == "conv" and (self.window < 2 or self.rope):
            problems.append("a convolution needs a kernel of 2 or more (window) and no rotary positions")
        if self.structure == "recurrence" and self.window:
            problems.append("a recurrence has no window")
        if self.state and not self.shared_qk:
            problems.append("state sets the key width of shared q/k only")
        if self.heads not in (1, 2, 4, 8) or self.expand not in (1, 2) or self.window < 0:
            problems.append("heads must be 1, 2, 4 or 8; expand 1 or 2; window >= 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def quadratic(self) -> bool:
        return self.structure == "attention" and not self.window

    def words(self) -> str:
        q, k, v = (FEATURIZER_WORDS[f] for f in (self.q, self.k, self.v))
        feats = f"q, k and v each by {q}" if self.q == self.k == self.v else f"q by {q}, k by {k}, v by {v}"
        if self.structure == "attention":
            mix = "causal softmax attention" + (f" over the last {self.window} positions" if self.window else "")
        elif self.structure == "conv":
            mix = f"q times a causal convolution (length {self.window}) of k times v"
        else:
            decay = {"none": "no decay (linear attention)", "fixed": "a fixed decay per head (RetNet)",
                     "scalar": "a data-dependent decay per head and step, scaling v by its step (Mamba-2)",
                     "vector": "a data-dependent decay per key channel (GLA, RWKV-6)"}[self.decay]
            read = "the past state plus a learned bonus for the current token" if self.bonus else "the state"
            mix = f"a linear recurrence with {decay}, q reading {read}"
            if self.shared_qk:
                mix += f"; one q/k head of width {self.state or 'D/heads'} shared by all value heads"
        parts = [f"{self.heads} heads; {feats}", mix]
        if self.feature_map != "identity":
            parts.append(f"feature map {self.feature_map} on q and k")
        if self.rope:
            parts.append("rotary positions on q and k")
        if self.skip:
            parts.append("plus a learned multiple of v")
        parts.append({"none": "no normalisation", "group": "normalised per head",
                      "rms": "RMS-normalised"}[self.norm])
        if self.gate != "none":
            parts.append(f"gated by {self.gate} of a projection of the input")
        parts.append(f"value width {self.expand}x the model's")
        return "; ".join(parts) + "."


class ChannelGene(BaseModel):
    """A channel mixer: a position-wise network."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["channel_mixer"] = "channel_mixer"
    form: Literal["dense", "gated", "grouped", "moe"] = "gated"
    activation: Literal["gelu", "silu", "relu", "relu2"] = "silu"
    ratio: float = 2.0  # hidden width / embed_dim (per expert for moe)
    groups: int = 4  # grouped only
    experts: int = 4  # moe only: top-1 routing with a load-balancing loss
    shift: bool = False  # mix each token with its predecessor first (RWKV's channel mix)

    @model_validator(mode="after")
    def _consistent(self):
        if not 0.5 <= self.ratio <= 4.0 or self.groups not in (2, 4, 8) or self.experts not in (2, 4, 8):
            raise ValueError("ratio in [0.5, 4]; groups and experts 2, 4 or 8")
        return self

    @property
    def quadratic(self) -> bool:
        return False

    def words(self) -> str:
        act = {"relu2": "squared ReLU"}.get(self.activation, self.activation)
        form = {"dense": f"a two-layer MLP with {act}", "gated": f"a gated MLP ({act} gate times an up projection)",
                "grouped": f"a two-layer MLP with {act} in {self.groups} independent channel groups",
                "moe": f"a mixture of {self.experts} {act} MLP experts, one per token (top-1 routing)"}[self.form]
        shift = " on a learned mix of each token with its predecessor" if self.shift else ""
        return f"{form}{shift}, hidden width {self.ratio:g}x the model's."


Gene = MixerGene | ChannelGene

SHORT_CONV = MixerGene(q="conv", k="conv", v="conv", structure="conv", window=4, gate="silu")  # H3-like

# library token and channel mixers as genes: attention's reproduces the unit exactly, the others its kind of
# computation (RetNet's rotation, RWKV-6's token-shifted gate input and Mamba-2's gate-before-norm differ)
LIBRARY_GENES: dict[str, Gene] = {
    "CausalAttention": MixerGene(structure="attention", rope=True),
    "MultiScaleRetention": MixerGene(structure="recurrence", decay="fixed", rope=True, expand=2, norm="group",
                                     gate="silu"),
    "RWKV6TimeMix": MixerGene(q="ddshift", k="ddshift", v="ddshift", structure="recurrence", decay="vector",
                              bonus=True, norm="group", gate="silu"),
    "Mamba2Mixer": MixerGene(q="conv", k="conv", v="conv", structure="recurrence", decay="scalar", shared_qk=True,
                             state=16, heads=2, expand=2, skip=True, norm="rms", gate="silu"),
    "GatedMLP": ChannelGene(form="gated", activation="silu", ratio=2.0),
    "RWKV6ChannelMix": ChannelGene(form="dense", activation="relu2", ratio=3.5, shift=True),
    "SwitchMoE": ChannelGene(form="moe", activation="silu", ratio=1.0, experts=4),
}


# library hyperparameters that are gene fields: a tuned library unit has the gene of its settings
LIBRARY_ARGS: dict[str, dict[str, str]] = {
    "CausalAttention": {"num_heads": "heads", "attn_window": "window"},
    "MultiScaleRetention": {"num_heads": "heads", "retention_value_factor": "expand"},
    "Mamba2Mixer": {"ssm_state": "state", "ssm_expand": "expand"},
    "GatedMLP": {"mlp_ratio": "ratio"}, "RWKV6ChannelMix": {"mlp_ratio": "ratio"},
}
DECODER_VERSION = 1  # part of every gene's id: a decoder that writes other code gives other names


def gene_id(gene: Gene) -> str:
    text = json.dumps({"decoder": DECODER_VERSION, **gene.model_dump()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def gene_of(spec: UnitSpec | None) -> Gene | None:
    """The gene a unit was synthesized from, or the one that reproduces a library unit with its settings."""
    if spec is None:
        return None
    raw = spec.decl.gene if spec.decl else None
    if raw:
        return (MixerGene if raw.get("kind") == "token_mixer" else ChannelGene)(**raw)
    base = LIBRARY_GENES.get(spec.name)
    if base is None:
        return None
    update = {field: spec.args[arg] for arg, field in LIBRARY_ARGS.get(spec.name, {}).items() if arg in spec.args}
    try:
        return type(base)(**{**base.model_dump(), **update})
    except ValueError:  # a setting outside the grammar's values
        return base


def unit_name(gene: Gene) -> str:
    return f"{'Syn' if gene.kind == 'token_mixer' else 'SynMLP'}_{gene_id(gene)}"


# -- decoding -----------------------------------------------------------------------------------------------------

class _Code:
    """Lines of a method body, indented once inside the method."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str, comment: str = "") -> None:
        self.lines.append(f"        {line}" + (f"  # {comment}" if comment else ""))

    def text(self) -> str:
        return "\n".join(self.lines)


def _feature(code: _Code, init: _Code, name: str, kind: str, size: str) -> None:
    """``name = featurizer(X)``, of width ``size``; parameters go to ``init``."""
    init(f"self.{name}_proj = nn.Linear(D, {size}, bias=False, **fk)")
    width = size.replace("self.", "").replace(" * ", "*")
    if kind == "linear":
        code(f"{name} = self.{name}_proj(X)", f"(B, L, {width})")
    elif kind == "shift":
        init(f"self.{name}_mix = nn.Parameter(torch.full((D,), 0.5, **fk))")
        code(f"{name} = self.{name}_proj(X + dx * self.{name}_mix)", f"(B, L, {width}): mixed with x_(t-1)")
    elif kind == "ddshift":
        init(f"self.{name}_mix = nn.Parameter(torch.full((D,), 0.5, **fk))")
        init(f"self.{name}_mix_a = nn.Parameter(torch.empty(D, 8, **fk).uniform_(-1e-2, 1e-2))")
        init(f"self.{name}_mix_b = nn.Parameter(torch.empty(8, D, **fk).uniform_(-1e-2, 1e-2))")
        code(f"mix = self.{name}_mix + torch.tanh(X @ self.{name}_mix_a) @ self.{name}_mix_b", "(B, L, D)")
        code(f"{name} = self.{name}_proj(X + dx * mix)", f"(B, L, {width}): data-dependent mix with x_(t-1)")
    else:
        init(f"self.{name}_conv = nn.Parameter(torch.empty({size}, 4, **fk).uniform_(-0.5, 0.5))")
        code(f"{name} = self.{name}_proj(X)", f"(B, L, {width})")
        code(f'{name} = F.silu(ops.causal_conv({name}, self.{name}_conv, '
             f'prefix=ops.carry(state, "{name}_conv", {name}, 3)))', "short causal conv")


_MAPS = {"silu": "F.silu({})", "elu1": "F.elu({}) + 1", "relu": "F.relu({})"}


def _mixer_source(gene: MixerGene, name: str) -> str:
    init, code = _Code(), _Code()
    init("D, fk = embed_dim, dict(device=device, dtype=dtype)")
    init(f"self.H = H = {gene.heads}")
    init(f"self.dv = {gene.expand} * D // H", "value width per head")
    qk_heads = 1 if gene.shared_qk else "H"
    init(f"self.dk = {gene.state}" if gene.state else "self.dk = D // H", "key width per head")
    code("B, L, D = X.shape")
    code("H = self.H")
    code("state = self.state(Z)", "generating: what the earlier pieces left (None in training)")
    if {gene.q, gene.k, gene.v} & {"shift", "ddshift"}:
        code('dx = ops.token_shift(X, prefix=ops.carry(state, "x", X, 1)) - X', "x_(t-1) - x_t")
    qk_width = "self.dk" if gene.shared_qk else "H * self.dk"
    if gene.structure == "conv":
        qk_width = "H * self.dv"
    _feature(code, init, "q", gene.q, qk_width)
    _feature(code, init, "k", gene.k, qk_width)
    _feature(code, init, "v", gene.v, "H * self.dv")
    if gene.feature_map != "identity":
        code(f"q, k = {_MAPS[gene.feature_map].format('q')}, {_MAPS[gene.feature_map].format('k')}", "feature map")
    if gene.structure == "conv":
        init(f"self.kernel = nn.Parameter(torch.randn(H * self.dv, {gene.window}, **fk) / {gene.window})")
        code("kv = k * v", "(B, L, H*dv)")
        code(f'y = q * ops.causal_conv(kv, self.kernel, prefix=ops.carry(state, "kv", kv, {gene.window - 1}))',
             f"kernel of length {gene.window}")
        if gene.skip:
            init("self.skip = nn.Parameter(torch.ones(H * self.dv, **fk))")
            code("y = y + v * self.skip")
    else:
        code(f"q = q.view(B, L, {qk_heads}, -1).transpose(1, 2)", f"(B, {qk_heads}, L, dk)")
        code(f"k = k.view(B, L, {qk_heads}, -1).transpose(1, 2)", f"(B, {qk_heads}, L, dk)")
        code("v = v.view(B, L, H, -1).transpose(1, 2)", "(B, H, L, dv)")
        if gene.rope:
            code("q, k = ops.rotary(q, offset=self.position(Z)), ops.rotary(k, offset=self.position(Z))")
        if gene.structure == "attention":
            code(f'keys, values = ops.cached(state, "k", k, {gene.window}), ops.cached(state, "v", v, {gene.window})')
            code(f"y = ops.causal_attention(q, keys, values, window={gene.window})", "(B, H, L, dv)")
        else:
            code("k = k * self.dk ** -0.5")
            if gene.decay == "none":
                code("log_decay = X.new_zeros(1, 1, 1)", "no decay: linear attention")
            elif gene.decay == "fixed":
                init("exps = 5 + torch.arange(H, dtype=torch.float32) * (4 / max(H - 1, 1))")
                init("self.register_buffer('log_gamma', torch.log1p(-torch.pow(2.0, -exps)), persistent=False)")
                code("log_decay = self.log_gamma[None, :, None]", "(1, H, 1): gamma_h = 1 - 2^(-5-4h/(H-1))")
            elif gene.decay == "scalar":
                init("self.dt_proj = nn.Linear(D, H, bias=False, **fk)")
                init("dt = torch.exp(torch.rand(H, **fk) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))")
                init("self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))", "softplus^-1(dt)")
                init("self.A_log = nn.Parameter(torch.log(torch.empty(H, **fk).uniform_(1, 16)))")
                code("dt = F.softplus(self.dt_proj(X) + self.dt_bias).transpose(1, 2)", "(B, H, L): step sizes")
                code("log_decay = -torch.exp(self.A_log)[:, None] * dt", "(B, H, L)")
                if gene.skip:
                    code("u = v", "the skip adds v before the step scaling (Mamba-2's D)")
                code("v = v * dt[..., None]")
            else:
                init("self.w0 = nn.Parameter(torch.linspace(-6, -1, H * self.dk, **fk))")
                init("self.w_a = nn.Parameter(torch.empty(D, 16, **fk).uniform_(-1e-2, 1e-2))")
                init("self.w_b = nn.Parameter(torch.empty(16, H * self.dk, **fk).uniform_(-1e-2, 1e-2))")
                code("log_decay = -torch.exp(self.w0 + torch.tanh(X @ self.w_a) @ self.w_b)", "(B, L, H*dk)")
                code("log_decay = log_decay.view(B, L, H, -1).transpose(1, 2)", "(B, H, L, dk)")
            bonus = "None"
            if gene.bonus:
                init("self.bonus = nn.Parameter(torch.full((H, self.dk), 0.5, **fk))")
                bonus = "self.bonus"
            code('h = None if state is None else state.get("h")', "the state the earlier pieces left")
            code(f"y, h = ops.linear_recurrence(q, k, v, log_decay, bonus={bonus}, initial_state=h, "
                 "output_final_state=True)")
            code("if state is not None:")
            code('    state["h"] = h')
        if gene.skip:
            init("self.skip = nn.Parameter(torch.ones(H, 1, 1, **fk))")
            skipped = "u" if gene.structure == "recurrence" and gene.decay == "scalar" else "v"
            code(f"y = y + {skipped} * self.skip", "(B, H, L, dv)")
        code("y = y.transpose(1, 2).reshape(B, L, -1)", "(B, L, H*dv)")
    if gene.norm == "group":
        init("self.norm = nn.GroupNorm(H, H * self.dv, **fk)")
        code("y = self.norm(y.reshape(B * L, -1)).view(B, L, -1)", "normalised per head")
    elif gene.norm == "rms":
        init("self.norm = nn.RMSNorm(H * self.dv, eps=1e-5, **fk)")
        code("y = self.norm(y)")
    if gene.gate != "none":
        init("self.g_proj = nn.Linear(D, H * self.dv, bias=False, **fk)")
        act = "F.silu" if gene.gate == "silu" else "torch.sigmoid"
        code(f"y = y * {act}(self.g_proj(X))", "output gate")
    init("self.o_proj = nn.Linear(H * self.dv, D, bias=False, **fk)")
    code("return self.o_proj(y), {}")
    return _module(name, gene, init, code, needs_math=gene.decay == "scalar")


_ACTS = {"gelu": "F.gelu({})", "silu": "F.silu({})", "relu": "F.relu({})", "relu2": "F.relu({}).square()"}


def _channel_source(gene: ChannelGene, name: str) -> str:
    init, code = _Code(), _Code()
    init("D, fk = embed_dim, dict(device=device, dtype=dtype)")
    init(f"self.hidden = N = 16 * ((int({gene.ratio} * D) + 15) // 16)", "hidden width, a multiple of 16")
    code("B, L, D = X.shape")
    x = "X"
    if gene.shift:
        init("self.mix = nn.Parameter(torch.full((D,), 0.5, **fk))")
        code('prev = ops.token_shift(X, prefix=ops.carry(self.state(Z), "x", X, 1))', "x_(t-1), also while generating")
        code("x = X + (prev - X) * self.mix", "(B, L, D): mixed with x_(t-1)")
        x = "x"
    act = _ACTS[gene.activation]
    if gene.form == "dense":
        init("self.up = nn.Linear(D, N, bias=False, **fk)")
        init("self.down = nn.Linear(N, D, bias=False, **fk)")
        code(f"return self.down({act.format(f'self.up({x})')}), {{}}")
    elif gene.form == "gated":
        init("self.gate = nn.Linear(D, N, bias=False, **fk)")
        init("self.up = nn.Linear(D, N, bias=False, **fk)")
        init("self.down = nn.Linear(N, D, bias=False, **fk)")
        code(f"h = {act.format(f'self.gate({x})')} * self.up({x})", "(B, L, N)")
        code("return self.down(h), {}")
    elif gene.form == "grouped":
        G = gene.groups
        init(f"self.G = {G}")
        init(f"self.up = nn.Parameter(torch.randn({G}, D // {G}, N // {G}, **fk) * (D // {G}) ** -0.5)")
        init(f"self.down = nn.Parameter(torch.randn({G}, N // {G}, D // {G}, **fk) * (N // {G}) ** -0.5)")
        code(f"g = {x}.view(B, L, self.G, -1)", "(B, L, G, D/G)")
        up = act.format('torch.einsum("blgd,gdn->blgn", g, self.up)')
        code(f"h = {up}", "(B, L, G, N/G)")
        code("return torch.einsum(\"blgn,gnd->blgd\", h, self.down).reshape(B, L, D), {}")
    else:
        E = gene.experts
        init(f"self.E = {E}")
        init(f"self.router = nn.Linear(D, {E}, bias=False, **fk)")
        init(f"self.up = nn.Parameter(torch.randn({E}, D, N, **fk) * D ** -0.5)")
        init(f"self.down = nn.Parameter(torch.randn({E}, N, D, **fk) * N ** -0.5)")
        code(f"probs = self.router({x}).softmax(-1)", "(B, L, E)")
        code("weight, expert = probs.max(-1)", "(B, L): top-1 expert and its probability")
        up = act.format(f'torch.einsum("bld,edn->blen", {x}, self.up)')
        code(f"h = {up}", "(B, L, E, N): every expert, dense")
        code("y = torch.einsum(\"blen,end->bled\", h, self.down)", "(B, L, E, D)")
        code("y = y.gather(2, expert[..., None, None].expand(B, L, 1, D))[:, :, 0]", "(B, L, D): the chosen one")
        code("y = y * weight[..., None]")
        code("share = F.one_hot(expert, self.E).float().mean((0, 1))", "fraction of tokens per expert")
        code("balance = self.E * (share * probs.float().mean((0, 1))).sum()", "Switch load-balancing loss")
        code("return y, add_aux_loss(Z, 0.01 * balance)")
    return _module(name, gene, init, code, aux=gene.form == "moe")


def _module(name: str, gene: Gene, init: _Code, code: _Code, needs_math: bool = False, aux: bool = False) -> str:
    words = gene.words()
    words = words[0].upper() + words[1:]
    wrapped = _wrap(f"{name}: {words}", 112)
    design = ["GAUBase"] + (["add_aux_loss"] if aux else []) + (["ops"] if "ops." in code.text() else [])
    imports = ["import math\n"] if needs_math else []
    imports += ["import torch\n", "import torch.nn.functional as F\n", "from torch import nn\n", "\n",
                f"from model_discovery.design import {', '.join(design)}\n"]
    return (f'"""Synthesized {gene.kind.replace("_", " ")} (operator grammar, gene {gene_id(gene)}).\n\n'
            f"{wrapped}\n\"\"\"\n\n{''.join(imports)}\n\n"
            f"class {name}(GAUBase):\n"
            f'    """{_wrap(words, 108, indent="    ")}"""\n\n'
            "    incremental = True  # generates with a cache: it keeps what the next pieces need in self.state(Z)\n\n"
            "    def __init__(self, embed_dim, block_loc, kwarg_all, device=None, dtype=None, **kwargs):\n"
            "        super().__init__(embed_dim, block_loc, kwarg_all)\n"
            f"{init.text()}\n\n"
            "    def _forward(self, X, **Z):\n"
            f"{code.text()}\n")


def _wrap(text: str, width: int, indent: str = "") -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(indent) + len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return f"\n{indent}".join(lines)


def decode(gene: Gene, name: str | None = None) -> UnitSpec:
    """The unit a gene denotes: its code, and a declaration carrying the gene."""
    name = name or unit_name(gene)
    source = _mixer_source(gene, name) if isinstance(gene, MixerGene) else _channel_source(gene, name)
    tags = ["synthesized", gene.kind.replace("_", " ")]
    if isinstance(gene, MixerGene):
        tags += [{"attention": "attention", "recurrence": "recurrent", "conv": "convolution"}[gene.structure]]
        tags += [] if gene.quadratic else ["linear-time"]
        tags += {"none": [], "fixed": ["decay"], "scalar": ["decay", "selective", "data-dependent"],
                 "vector": ["decay", "data-dependent"]}[gene.decay]
        tags += ["token-shift"] if {"shift", "ddshift"} & {gene.q, gene.k, gene.v} else []
        tags += ["short-conv"] if "conv" in (gene.q, gene.k, gene.v) else []
    else:
        tags += ["mlp"] + (["mixture of experts", "moe"] if gene.form == "moe" else []) + \
            (["token-shift"] if gene.shift else [])
    decl = UnitDecl(slot=gene.kind, doc=gene.words(), complexity="quadratic" if gene.quadratic else "linear",
                    tags=tags, gene=gene.model_dump())
    return UnitSpec(name=name, source=source, doc=gene.words(), decl=decl)


# -- operators over genes -----------------------------------------------------------------------------------------

MIXER_CHOICES: dict[str, list[Any]] = {
    "q": ["linear", "shift", "ddshift", "conv"], "k": ["linear", "shift", "ddshift", "conv"],
    "v": ["linear", "shift", "ddshift", "conv"], "structure": ["attention", "recurrence", "conv"],
    "feature_map": ["identity", "silu", "elu1", "relu"], "window": [0, 4, 16, 32, 64],
    "decay": ["none", "fixed", "scalar", "vector"], "bonus": [False, True], "heads": [1, 2, 4, 8],
    "shared_qk": [False, True], "state": [0, 16, 32], "rope": [False, True], "expand": [1, 2],
    "norm": ["none", "group", "rms"], "gate": ["none", "silu", "sigmoid"], "skip": [False, True],
}
CHANNEL_CHOICES: dict[str, list[Any]] = {
    "form": ["dense", "gated", "grouped", "moe"], "activation": ["gelu", "silu", "relu", "relu2"],
    "ratio": [1.0, 2.0, 3.0, 4.0], "groups": [2, 4, 8], "experts": [2, 4], "shift": [False, True],
}


class Constraints(BaseModel):
    """What the research prompt allows: ``linear_time`` forbids dense softmax attention."""

    linear_time: bool = False
    favour: dict[str, dict[Any, float]] = {}  # field -> value -> weight

    @classmethod
    def from_prompt(cls, prompt: str) -> Constraints:
        """Whole words: "nonlinear" asks nothing of the time, "conversation" nothing of convolutions."""
        text = " ".join(re.findall(r"[a-z]+", prompt.lower()))
        words = set(text.split())
        favour: dict[str, dict[Any, float]] = {}
        for cues, field, value in [
                ({"recurrent", "recurrence", "rnn", "ssm", "state space"}, "structure", "recurrence"),
                ({"convolution", "convolutional", "conv", "hyena"}, "structure", "conv"),
                ({"attention", "transformer"}, "structure", "attention"),
                ({"decay", "forget", "forgetting", "selective"}, "decay", "vector"),
                ({"mixture of experts", "moe", "sparse"}, "form", "moe"),
                ({"shift", "rwkv"}, "q", "shift")]:
            if any((c in words) if " " not in c else (f" {c} " in f" {text} ") for c in cues):
                favour.setdefault(field, {})[value] = 3.0
        linear = "linear" in words or {"sub", "quadratic"} <= words or "subquadratic" in words
        return cls(linear_time=linear, favour=favour)


def repair(fields: dict[str, Any], constraints: Constraints) -> MixerGene:
    """The nearest consistent mixer gene: fields that the structure does not use are reset."""
    f = dict(fields)
    if constraints.linear_time and f["structure"] == "attention" and not f.get("window"):
        f["window"] = 32
    if f["structure"] != "recurrence":
        f.update(decay="none", bonus=False, shared_qk=False, state=0)
    if f["structure"] == "attention":
        f["feature_map"] = "identity"
    if f["structure"] == "conv":
        f.update(rope=False, window=f["window"] if f.get("window", 0) >= 2 else 4)
    if f["structure"] == "recurrence":
        f["window"] = 0
    if not f.get("shared_qk"):
        f["state"] = 0
    if f["structure"] == "recurrence" and f["decay"] in ("none", "fixed") and f["norm"] == "none":
        f["norm"] = "group"  # without a decay the state only grows: normalise the read-out
    if f["structure"] == "conv" and f["norm"] != "group":
        f["heads"] = 4  # heads only group the normalisation of a convolution
    return MixerGene(**f)


def repair_channel(fields: dict[str, Any]) -> ChannelGene:
    """Fields the form does not use take their defaults, so two genes that differ only there are one gene."""
    f = dict(fields)
    if f["form"] != "grouped":
        f["groups"] = ChannelGene.model_fields["groups"].default
    if f["form"] != "moe":
        f["experts"] = ChannelGene.model_fields["experts"].default
    return ChannelGene(**f)


def _pick(rng: random.Random, field: str, values: list[Any], constraints: Constraints, avoid: Any = None) -> Any:
    options = [v for v in values if v != avoid] or values
    weights = [constraints.favour.get(field, {}).get(v, 1.0) for v in options]
    return rng.choices(options, weights=weights)[0]


def sample(kind: str, rng: random.Random, constraints: Constraints | None = None) -> Gene:
    """A gene from scratch."""
    constraints = constraints or Constraints()
    choices = MIXER_CHOICES if kind == "token_mixer" else CHANNEL_CHOICES
    fields = {k: _pick(rng, k, v, constraints) for k, v in choices.items()}
    return repair(fields, constraints) if kind == "token_mixer" else repair_channel(fields)


def mutate(gene: Gene, rng: random.Random, constraints: Constraints | None = None, n: int = 1) -> Gene:
    """``n`` point mutations (a field set to another of its values), repaired to a consistent gene."""
    constraints = constraints or Constraints()
    choices = MIXER_CHOICES if isinstance(gene, MixerGene) else CHANNEL_CHOICES
    for _ in range(20):
        fields = gene.model_dump()
        for field in rng.sample(sorted(choices), n):
            fields[field] = _pick(rng, field, choices[field], constraints, avoid=fields[field])
        new = repair(fields, constraints) if isinstance(gene, MixerGene) else repair_channel(fields)
        if new != gene:
            return new
    return sample(gene.kind, rng, constraints)


def crossover(a: Gene, b: Gene, rng: random.Random, constraints: Constraints | None = None) -> Gene:
    """Each field from one parent or the other (uniform crossover), repaired."""
    if a.kind != b.kind:
        raise ValueError(f"cannot cross a {a.kind} gene with a {b.kind} gene")
    fa, fb = a.model_dump(), b.model_dump()
    fields = {k: (fa if rng.random() < 0.5 else fb)[k] for k in fa}
    return repair(fields, constraints or Constraints()) if isinstance(a, MixerGene) else repair_channel(fields)


def gene_distance(a: Gene, b: Gene) -> float:
    """Share of fields that differ (1 across kinds)."""
    if a.kind != b.kind:
        return 1.0
    fa, fb = a.model_dump(), b.model_dump()
    return sum(fa[k] != fb[k] for k in fa) / len(fa)
