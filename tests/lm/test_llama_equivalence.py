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
    state = {_hf_name(k): v for k, v in ours.state_dict().items() if k != "lm_head.weight"}
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
    grads = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        if name == "lm_head.weight":
            continue
        other = grads[_hf_name(name)].grad
        assert torch.allclose(param.grad, other, atol=1e-5, rtol=1e-4), name
