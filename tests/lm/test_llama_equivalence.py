"""The `llama` library design inside DiscoveryLM computes the same function as Hugging Face's LlamaForCausalLM."""

import re

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from model_discovery.lm import DiscoveryLM, Scale

D, LAYERS, HEADS, KV_HEADS, VOCAB, INTERMEDIATE = 64, 3, 4, 2, 256, 176  # 176 = 8/3 * 64 rounded up to 16s


def _hf_name(ours: str) -> str:
    renames = [
        (r"^embedding\.", "model.embed_tokens."),
        (r"^norm_out\.", "model.norm."),
        (r"^blocks\.(\d+)\.root\.norm1\.", r"model.layers.\1.input_layernorm."),
        (r"^blocks\.(\d+)\.root\.norm2\.", r"model.layers.\1.post_attention_layernorm."),
        (r"^blocks\.(\d+)\.root\.mixer\.", r"model.layers.\1.self_attn."),
        (r"^blocks\.(\d+)\.root\.mlp\.", r"model.layers.\1.mlp."),
    ]
    for pattern, repl in renames:
        ours, n = re.subn(pattern, repl, ours)
        if n:
            return ours
    raise KeyError(ours)


def hf_state_dict(model: DiscoveryLM) -> dict[str, torch.Tensor]:
    """Our weights under Hugging Face Llama names; the fused QKV projection is split."""
    state = {}
    for name, value in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        hf = _hf_name(name)
        if hf.endswith("self_attn.qkv_proj.weight"):
            kv = D // HEADS * KV_HEADS
            for part, w in zip("qkv", value.split([D, kv, kv])):
                state[hf.replace("qkv_proj", f"{part}_proj")] = w
        else:
            state[hf] = value
    return state


@pytest.fixture(scope="module")
def pair(library_design):
    design = library_design("llama")
    scale = Scale(name="eq", d_model=D, n_block=LAYERS, context=64, vocab=VOCAB, train_tokens=64, batch_tokens=64,
                  lr=1e-3, warmup=0, ref_params=1)
    torch.manual_seed(0)
    ours = DiscoveryLM(design.gab_cls, design.gab_config, scale).eval()
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=D, intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, rms_norm_eps=1e-5, rope_theta=10000.0,
        max_position_embeddings=256, tie_word_embeddings=True, attention_bias=False, mlp_bias=False)
    theirs = LlamaForCausalLM(config).eval()
    theirs.config._attn_implementation = "eager"  # the plainest reference
    state = hf_state_dict(ours)
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    assert theirs.lm_head.weight.data_ptr() == theirs.model.embed_tokens.weight.data_ptr()
    return ours, theirs


def test_llama_equivalence_logits(pair):
    ours, theirs = pair
    ids = torch.randint(0, VOCAB, (3, 50), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (ours(ids).logits - theirs(input_ids=ids).logits).abs().max().item()
    assert diff <= 1e-4, f"max |logit difference| = {diff:.2e}"


def test_llama_equivalence_loss_and_gradients(pair):
    ours, theirs = pair
    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(1))
    ours.zero_grad()
    theirs.zero_grad()
    loss_ours = ours(ids, labels=ids).loss
    loss_theirs = theirs(input_ids=ids, labels=ids).loss
    assert abs(loss_ours.item() - loss_theirs.item()) <= 1e-5
    loss_ours.backward()
    loss_theirs.backward()
    ours_grads = _as_model(ours, {n: p.grad for n, p in ours.named_parameters()})
    for name, param in theirs.named_parameters():
        if name != "lm_head.weight":
            assert torch.allclose(ours_grads[name], param.grad, atol=1e-5, rtol=1e-4), name


def _as_model(model, tensors):
    """``tensors`` keyed like ``model``'s parameters, renamed and split like its state dict."""
    with torch.no_grad():
        saved = {n: p.detach().clone() for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            p.copy_(tensors[n])
        out = {k: v.clone() for k, v in hf_state_dict(model).items()}
        for n, p in model.named_parameters():
            p.copy_(saved[n])
    return out
