"""`modis export hf`: transformers loads the folder, its logits equal ours, generate() runs, no design code runs
during the export itself."""

import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from model_discovery.cli import main
from model_discovery.verify.artifacts import load_verified


@pytest.fixture(scope="module")
def exported(verified_llama, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf")
    assert main(["export", "hf", str(verified_llama), "--out", str(out)]) == 0
    return out


def test_transformers_loads_it_and_logits_equal_ours(exported, verified_llama):
    model = AutoModelForCausalLM.from_pretrained(exported, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(exported, trust_remote_code=True)
    ids = tokenizer(["The dog that the girls like barks.", "No cat sings."], return_tensors="pt",
                    padding=True).input_ids
    ours, _, _ = load_verified(verified_llama)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ours(ids).logits)
        assert model(ids, labels=ids).loss == pytest.approx(ours(ids, labels=ids).loss.item(), abs=1e-6)
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_generate_is_greedy_and_matches_our_decoder(exported, verified_llama):
    from model_discovery.verify.evaluate import greedy_generate

    model = AutoModelForCausalLM.from_pretrained(exported, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(exported, trust_remote_code=True)
    prompt = tokenizer("The dog", return_tensors="pt").input_ids
    out = model.generate(prompt, max_new_tokens=8, do_sample=False)
    assert out.shape[1] <= prompt.shape[1] + 8
    ours, tok, _ = load_verified(verified_llama)
    text = tokenizer.decode(out[0, prompt.shape[1]:], skip_special_tokens=True)
    assert text == greedy_generate(ours, tok, prompt[0].tolist(), out.shape[1] - prompt.shape[1])


def test_export_runs_no_design_code(verified_llama, tmp_path):
    before = {name for name in sys.modules if name.startswith("modis_design_")}
    from model_discovery.export.hf import export_hf

    export_hf(verified_llama, tmp_path / "hf")
    assert {name for name in sys.modules if name.startswith("modis_design_")} == before
    assert (tmp_path / "hf" / "design.py").read_text() == (verified_llama / "design.py").read_text()


def test_export_of_a_folder_that_is_not_a_verification_fails_clearly(tmp_path, capsys):
    assert main(["export", "hf", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "missing design.py" in capsys.readouterr().err
