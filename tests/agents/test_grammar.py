"""The operator grammar: genes decode to units that compute what the gene says (checked against a token-by-token
interpreter in float64), library mixers are genes, and the operators keep genes consistent and within the prompt."""

import math
import random

import pytest
import torch
import torch.nn.functional as F

from model_discovery.agents import grammar as g
from model_discovery.checker import static_check
from model_discovery.design import Cache, compose
from model_discovery.design.library import library_tree
from model_discovery.design.tree import UnitTree
from tests.design.test_ops import naive_recurrence

D, L = 32, 21


def build(gene, seed=0):
    spec = g.decode(gene)
    env = {}
    exec(compile(spec.source, spec.name, "exec"), env)  # trusted: the grammar's own output, in a test
    torch.manual_seed(seed)
    unit = env[spec.name](D, (0, 2), kwarg_all={}, dtype=torch.float64)
    with torch.no_grad():  # move every parameter off its initial value, so no field is tested at a special point
        for p in unit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return unit


def _prev(x):
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)


def _conv(x, w):
    """Causal depthwise convolution, position by position."""
    K = w.shape[1]
    out = torch.zeros_like(x)
    for t in range(x.shape[1]):
        for i in range(K):
            if t - K + 1 + i >= 0:
                out[:, t] += w[:, i] * x[:, t - K + 1 + i]
    return out


def _rotate(x):
    """Rotate-half rotary positions with theta 10000, position by position."""
    hd = x.shape[-1]
    out = torch.empty_like(x)
    for t in range(x.shape[-2]):
        ang = t / 10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        c, s = torch.cat([ang.cos()] * 2), torch.cat([ang.sin()] * 2)
        x1, x2 = x[..., t, : hd // 2], x[..., t, hd // 2:]
        out[..., t, :] = x[..., t, :] * c + torch.cat([-x2, x1], -1) * s
    return out


def interpret_mixer(m, gene, X):
    B = X.shape[0]
    dx = _prev(X) - X
    feats = {}
    for name in "qkv":
        kind, proj = getattr(gene, name), getattr(m, f"{name}_proj")
        if kind == "linear":
            feats[name] = proj(X)
        elif kind == "shift":
            feats[name] = proj(X + dx * getattr(m, f"{name}_mix"))
        elif kind == "ddshift":
            mix = getattr(m, f"{name}_mix") + torch.tanh(X @ getattr(m, f"{name}_mix_a")) @ getattr(m, f"{name}_mix_b")
            feats[name] = proj(X + dx * mix)
        else:
            feats[name] = F.silu(_conv(proj(X), getattr(m, f"{name}_conv")))
    q, k, v = feats["q"], feats["k"], feats["v"]
    fmap = {"identity": lambda t: t, "silu": F.silu, "elu1": lambda t: F.elu(t) + 1, "relu": F.relu}[gene.feature_map]
    q, k = fmap(q), fmap(k)
    H = m.H
    if gene.structure == "conv":
        y = q * _conv(k * v, m.kernel)
        if gene.skip:
            y = y + v * m.skip
    else:
        heads_qk = 1 if gene.shared_qk else H
        q, k = (t.view(B, L, heads_qk, -1).transpose(1, 2) for t in (q, k))
        v = v.view(B, L, H, -1).transpose(1, 2)
        if gene.rope:
            q, k = _rotate(q), _rotate(k)
        if gene.structure == "attention":
            k, v2 = k.expand(B, H, L, -1), v
            y = torch.zeros(B, H, L, v.shape[-1], dtype=torch.float64)
            for t in range(L):
                lo = max(0, t - gene.window + 1) if gene.window else 0
                w = (q[:, :, t:t + 1] @ k[:, :, lo:t + 1].transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)
                y[:, :, t] = (w @ v2[:, :, lo:t + 1])[:, :, 0]
        else:
            k = k / math.sqrt(m.dk)
            if gene.decay == "none":
                a = torch.zeros(1, 1, 1, dtype=torch.float64)
            elif gene.decay == "fixed":
                a = torch.log1p(-torch.pow(2.0, -(5 + torch.arange(H) * (4 / max(H - 1, 1))))).double()[None, :, None]
            elif gene.decay == "scalar":
                dt = F.softplus(m.dt_proj(X) + m.dt_bias).transpose(1, 2)
                a, v, unscaled = -torch.exp(m.A_log)[:, None] * dt, v * dt[..., None], v
            else:
                a = -torch.exp(m.w0 + torch.tanh(X @ m.w_a) @ m.w_b).view(B, L, H, -1).transpose(1, 2)
            y = naive_recurrence(q, k, v, a, m.bonus if gene.bonus else None)
            if gene.decay == "scalar":
                v = unscaled  # Mamba-2's D multiplies v before the step scaling
        if gene.skip:
            y = y + v * m.skip
        y = y.transpose(1, 2).reshape(B, L, -1)
    if gene.norm == "group":
        y = F.group_norm(y.reshape(B * L, -1), H, m.norm.weight, m.norm.bias, m.norm.eps).view(B, L, -1)
    elif gene.norm == "rms":
        y = y / (y.square().mean(-1, keepdim=True) + 1e-5).sqrt() * m.norm.weight
    if gene.gate != "none":
        y = y * (F.silu if gene.gate == "silu" else torch.sigmoid)(m.g_proj(X))
    return m.o_proj(y)


def interpret_channel(m, gene, X):
    x = X + (_prev(X) - X) * m.mix if gene.shift else X
    act = {"gelu": F.gelu, "silu": F.silu, "relu": F.relu, "relu2": lambda t: F.relu(t) ** 2}[gene.activation]
    if gene.form == "dense":
        return m.down(act(m.up(x)))
    if gene.form == "gated":
        return m.down(act(m.gate(x)) * m.up(x))
    if gene.form == "grouped":
        parts = x.chunk(gene.groups, -1)
        return torch.cat([act(p @ m.up[i]) @ m.down[i] for i, p in enumerate(parts)], -1)
    probs = m.router(x).softmax(-1)
    y = torch.zeros_like(X)
    for b in range(X.shape[0]):
        for t in range(L):
            e = int(probs[b, t].argmax())
            y[b, t] = probs[b, t, e] * (act(x[b, t] @ m.up[e]) @ m.down[e])
    return y


def interpret(m, gene, X):
    return interpret_mixer(m, gene, X) if gene.kind == "token_mixer" else interpret_channel(m, gene, X)


RANDOM = [g.sample(kind, random.Random(i)) for i in range(40) for kind in ("token_mixer", "channel_mixer")]


@pytest.mark.parametrize("gene", [*g.LIBRARY_GENES.values(), g.SHORT_CONV, *RANDOM],
                         ids=[*g.LIBRARY_GENES, "ShortConv", *(g.unit_name(x) for x in RANDOM)])
def test_decoded_unit_computes_what_the_gene_says(gene):
    unit = build(gene)
    X = torch.randn(2, L, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    Y, _ = unit(X)
    assert torch.allclose(Y, interpret(unit, gene, X), atol=1e-9)
    X2 = X.clone()
    X2[:, 12:] += 1.0
    assert torch.allclose(unit(X2)[0][:, :12], Y[:, :12], atol=1e-12)  # causal


@pytest.mark.parametrize("gene", [*g.LIBRARY_GENES.values(), g.SHORT_CONV, *RANDOM],
                         ids=[*g.LIBRARY_GENES, "ShortConv", *(g.unit_name(x) for x in RANDOM)])
def test_decoded_unit_fed_in_pieces_equals_it_fed_whole(gene):
    """Every synthesized operator generates with a cache: fed in pieces (as generation feeds a prompt, then a
    token at a time) it gives the outputs of the whole sequence."""
    unit = build(gene)
    assert type(unit).incremental
    X = torch.randn(2, L, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    cache, parts = Cache(), []
    for a, b in ((0, 5), (5, 6), (6, 17), (17, 18), (18, L)):
        parts.append(unit(X[:, a:b], cache=cache)[0])
        cache.seen = b  # what the LM does after each piece
    assert torch.allclose(torch.cat(parts, 1), unit(X)[0], atol=1e-9)


def test_the_attention_gene_is_the_library_attention():
    lib = library_tree("llama").units["CausalAttention"]
    env = {}
    exec(compile(compose(library_tree("llama")), "llama", "exec"), env)
    torch.manual_seed(0)
    ref = env["CausalAttention"](D, (0, 2), kwarg_all={}, dtype=torch.float64, num_heads=4)
    unit = build(g.LIBRARY_GENES["CausalAttention"])
    q, k, v = ref.qkv_proj.weight.split(ref.splits)
    with torch.no_grad():
        unit.q_proj.weight.copy_(q), unit.k_proj.weight.copy_(k), unit.v_proj.weight.copy_(v)
        unit.o_proj.weight.copy_(ref.o_proj.weight)
    X = torch.randn(2, L, D, dtype=torch.float64)
    assert lib.decl.slot == "token_mixer"
    assert torch.allclose(unit(X)[0], ref(X)[0], atol=1e-10)


def test_library_mixers_have_genes():
    slots = {"token_mixer", "channel_mixer"}
    catalogue = {name: spec for name in ("llama", "retnet", "rwkv6", "mamba2", "lightbulb_moe")
                 for name, spec in library_tree(name).units.items() if spec.slot in slots}
    assert {"CausalAttention", "MultiScaleRetention", "RWKV6TimeMix", "Mamba2Mixer", "GatedMLP",
            "RWKV6ChannelMix"} <= {n for n, s in catalogue.items() if g.gene_of(s) is not None}


def test_decoded_code_reads_and_checks():
    for gene in [*g.LIBRARY_GENES.values(), *RANDOM]:
        spec = g.decode(gene)
        assert g.gene_of(spec) == gene and spec.decl.slot == gene.kind  # the gene rides in the declaration
        assert gene.words().rstrip(".")[:40].lower() in " ".join(spec.source.split()).lower()  # said in words
        assert max(len(line) for line in spec.source.splitlines()) <= 120
        assert spec.source.count("\n") < 80, "short"  # the cache handling takes up to 6 lines
        tree = library_tree("llama")
        slot_unit = "CausalAttention" if gene.kind == "token_mixer" else "GatedMLP"
        grafted = tree.graft(slot_unit, UnitTree(name=spec.name, root=spec.name, units={spec.name: spec}))
        assert static_check(compose(grafted)) == [], spec.source


def test_operators_keep_genes_consistent_and_follow_the_prompt():
    rng = random.Random(0)
    linear = g.Constraints.from_prompt("a linear-time recurrent model")
    assert linear.linear_time and linear.favour["structure"] == {"recurrence": 3.0}
    genes = [g.sample("token_mixer", rng, linear) for _ in range(300)]
    assert not any(x.quadratic for x in genes)  # no dense softmax under "linear-time"
    share = sum(x.structure == "recurrence" for x in genes) / len(genes)
    assert share > 0.45  # favoured 3:1:1 (3/5 expected), against 1/3 unsteered
    parent = g.LIBRARY_GENES["Mamba2Mixer"]
    for _ in range(100):
        child = g.mutate(parent, rng, linear)
        assert child != parent and not child.quadratic
        assert g.gene_distance(child, parent) <= 6 / 17  # one point mutation, plus the repairs it forces
    a, b = g.LIBRARY_GENES["RWKV6TimeMix"], g.LIBRARY_GENES["MultiScaleRetention"]
    for _ in range(50):
        c = g.crossover(a, b, rng)
        assert all(getattr(c, f) in (getattr(a, f), getattr(b, f)) for f in ("q", "decay", "bonus", "expand", "norm"))
    with pytest.raises(ValueError, match="cannot cross"):
        g.crossover(a, g.LIBRARY_GENES["GatedMLP"], rng)
    with pytest.raises(ValueError, match="belong to a recurrence"):
        g.MixerGene(structure="attention", decay="vector")
    assert g.gene_distance(a, a) == 0 and g.gene_distance(a, g.LIBRARY_GENES["GatedMLP"]) == 1.0
    for prompt in ("a nonlinear model", "good for conversation"):  # words, not substrings
        c = g.Constraints.from_prompt(prompt)
        assert not c.linear_time and "structure" not in c.favour
    # fields a form does not use are not a new gene
    assert g.mutate(g.ChannelGene(form="dense"), random.Random(1)).model_dump()["groups"] == 4
    assert all(g.sample("channel_mixer", random.Random(i)).experts == 4 for i in range(30)
               if g.sample("channel_mixer", random.Random(i)).form != "moe")


def test_tuned_library_units_have_the_gene_of_their_settings():
    spec = library_tree("llama").units["CausalAttention"].model_copy(deep=True)
    spec.args.update(num_heads=8, attn_window=64)
    assert g.gene_of(spec) == g.LIBRARY_GENES["CausalAttention"].model_copy(update={"heads": 8, "window": 64})
    spec.args["num_heads"] = 3  # outside the grammar: the unit's base gene
    assert g.gene_of(spec) == g.LIBRARY_GENES["CausalAttention"]
