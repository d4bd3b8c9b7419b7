"""`modis export hf`: transformers loads the folder, its logits equal ours, generate() runs, no design code runs
during the export itself."""

import itertools
import json
import re
import subprocess
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
    fed = []
    model.model.register_forward_pre_hook(lambda _, args: fed.append(args[0].shape[1]))
    out = model.generate(prompt, max_new_tokens=8, do_sample=False)  # with a cache: the config's default
    assert out.shape[1] <= prompt.shape[1] + 8
    assert fed == [prompt.shape[1]] + [1] * (out.shape[1] - prompt.shape[1] - 1)  # the prompt, then one token a step
    assert torch.equal(out, model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False))
    ours, tok, _ = load_verified(verified_llama)
    text = tokenizer.decode(out[0, prompt.shape[1]:], skip_special_tokens=True)
    assert text == greedy_generate(ours, tok, prompt[0].tolist(), out.shape[1] - prompt.shape[1])


def test_beam_search_reorders_the_cache(exported, monkeypatch):
    """Beams follow their sequences' states (``Cache.reorder_cache``): the same beams as recomputing."""
    model = AutoModelForCausalLM.from_pretrained(exported, trust_remote_code=True)
    cache_cls = sys.modules[type(model).__module__].Cache
    reordered, original = [], cache_cls.reorder_cache

    def spy(self, index):
        reordered.append(index)
        original(self, index)

    monkeypatch.setattr(cache_cls, "reorder_cache", spy)
    ids = torch.tensor([[5, 17, 42, 8]])
    kwargs = dict(max_new_tokens=10, num_beams=3, num_return_sequences=3, do_sample=False)
    cached = model.generate(ids, use_cache=True, **kwargs)
    assert reordered and torch.equal(cached, model.generate(ids, use_cache=False, **kwargs))


def test_generation_past_the_context_restarts_the_cache_as_ours_does(exported, verified_llama):
    """Past the rung's context both start a new cache on the last half window: the same tokens."""
    model = AutoModelForCausalLM.from_pretrained(exported, trust_remote_code=True)
    ours, _, config = load_verified(verified_llama)
    prompt, n = [5, 17, 42], config["scale"]["context"] + 40
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False)
    assert out[0, len(prompt):].tolist() == list(itertools.islice(ours.greedy(prompt), n))


def test_two_exported_designs_load_side_by_side(exported, verified_llama, tmp_path):
    """transformers registers a remote model class under its config class: each export's config file is its own,
    so a second design loaded in the same process runs its own code, not the first one's."""
    from model_discovery.design import load_design
    from model_discovery.design.library import library_design_path
    from model_discovery.export.hf import export_hf
    from model_discovery.lm import Scale, build_lm, fit_to_scale
    from model_discovery.verify.artifacts import read_config, save_model

    llama = AutoModelForCausalLM.from_pretrained(exported, trust_remote_code=True)
    config, folder = read_config(verified_llama), tmp_path / "rwkv6"
    design, scale = load_design(library_design_path("rwkv6")), Scale(**config["scale"])
    ours = build_lm(design, scale, fit_to_scale(design, scale), vocab_size=config["vocab_size"]).eval()
    folder.mkdir()
    (folder / "design.py").write_text(library_design_path("rwkv6").read_text())
    save_model(folder, ours, "rwkv6")
    (folder / "tokenizer.json").write_bytes((verified_llama / "tokenizer.json").read_bytes())
    same_name = tmp_path / exported.name  # transformers names the cached code after the folder
    rwkv6 = AutoModelForCausalLM.from_pretrained(export_hf(folder, same_name), trust_remote_code=True)
    assert type(rwkv6.model.blocks[0].root.mixer).__name__ == "RWKV6TimeMix"
    assert type(llama.model.blocks[0].root.mixer).__name__ == "CausalAttention"
    ids = torch.tensor([[3, 17, 42, 5]])
    with torch.no_grad():
        torch.testing.assert_close(rwkv6(ids).logits, ours(ids).logits, atol=1e-5, rtol=0)


def test_export_runs_no_design_code(verified_llama, tmp_path):
    before = {name for name in sys.modules if name.startswith("modis_design_")}
    from model_discovery.export.hf import export_hf

    export_hf(verified_llama, tmp_path / "hf")
    assert {name for name in sys.modules if name.startswith("modis_design_")} == before
    exported = (tmp_path / "hf" / "design.py").read_text()  # the same code, its imports made relative
    assert exported == (verified_llama / "design.py").read_text().replace("from model_discovery.design import",
                                                                         "from .modis_design import")


def test_export_of_a_folder_that_is_not_a_verification_fails_clearly(tmp_path, capsys):
    assert main(["export", "hf", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "missing design.py" in capsys.readouterr().err


LOAD_ALONE = """
import sys
sys.modules["model_discovery"] = None  # what an environment without the package sees: any import of it fails
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
ids = torch.tensor([[3, 17, 42, 5, 99, 1, 7, 8, 250, 4]])
with torch.no_grad():
    logits = model(ids).logits
out = model.generate(ids[:, :4], max_new_tokens=6, do_sample=False, use_cache=True)
recomputed = model.generate(ids[:, :4], max_new_tokens=6, do_sample=False, use_cache=False)
torch.save({"logits": logits, "generated": out, "recomputed": recomputed,
            "loaded": sorted(m for m in sys.modules if "modis" in m)}, sys.argv[2])
"""


@pytest.fixture(scope="module")
def discovered_run(tmp_path_factory):
    """A small offline run on the synthetic corpus (unchecked, a few training steps) whose designs include a
    synthesized operator."""
    from model_discovery.workflow.build import BuildSystem

    run_dir = tmp_path_factory.mktemp("run")
    BuildSystem(run_dir, design_budget=3, verify_budget={"cpu-1m": 3}, rungs=["cpu-1m"], train_fraction=0.01,
                check=False, blimp="none", noise_seeds=1, references=["llama"], seed=0, progress=False)("export")
    return run_dir


def test_export_of_a_discovered_design_loads_without_the_package(discovered_run, tmp_path):
    """A synthesized design exported from its run loads where `model_discovery` cannot be imported, with logits
    equal to ours; the model card names its lineage and the references."""
    from model_discovery.evolution.store import Store

    store = Store(discovered_run)
    verified = {v.design_id for v in store.verifications()}
    invented = [d for d in store.designs() if d.id in verified and "class Syn" in d.source]  # Syn_ or SynMLP_
    assert invented, "the run verified no synthesized design"
    design = invented[0]
    out = tmp_path / "hf"
    assert main(["export", "hf", str(discovered_run), "--out", str(out), "--design", design.name]) == 0
    code = "".join(p.read_text() for p in out.glob("*.py"))
    assert not re.search(r"^\s*(from|import) model_discovery", code, re.MULTILINE)
    saved = tmp_path / "alone.pt"
    done = subprocess.run([sys.executable, "-c", LOAD_ALONE, str(out), str(saved)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    alone = torch.load(saved)
    (row,) = [v for v in store.verifications() if v.design_id == design.id]
    ours, _, _ = load_verified(row.metrics["out"])
    ids = torch.tensor([[3, 17, 42, 5, 99, 1, 7, 8, 250, 4]])
    with torch.no_grad():
        torch.testing.assert_close(alone["logits"], ours(ids).logits, atol=1e-5, rtol=0)
    assert alone["generated"].shape == (1, 10) and torch.equal(alone["generated"], alone["recomputed"])
    assert any(m.endswith("modis_ops") for m in alone["loaded"])
    card = (out / "README.md").read_text()
    assert f"# {design.name}" in card and "llama" in card and "## Lineage" in card
    assert all(f"`{p}`" in card for p in design.parents)
    best = json.loads((discovered_run / "report.json").read_text())["best"]["name"]  # the default: the run's best
    assert main(["export", "hf", str(discovered_run), "--out", str(tmp_path / "best")]) == 0
    assert (tmp_path / "best" / "README.md").read_text().startswith("---\nlibrary_name: transformers")
    assert f"# {best}\n" in (tmp_path / "best" / "README.md").read_text()
    assert json.loads((tmp_path / "best" / "config.json").read_text())["design_name"] == best


def test_export_rewrites_imports_and_refuses_what_it_cannot_carry():
    from model_discovery.export.hf import ExportError, remote_source

    source = ("import torch\nfrom model_discovery.design import GABBase, GAUBase, ops as kernels\n"
              "import model_discovery.design.ops as O\n\ndef f():\n    from model_discovery.design.ops import rotary\n")
    text = remote_source(source, "design.py")
    assert "from .modis_design import GABBase, GAUBase, ops as kernels\n" in text
    assert "from .modis_design import ops as O\n" in text and "    from .modis_ops import rotary\n" in text
    with pytest.raises(ExportError, match=r"model_discovery\.verify\.run"):
        remote_source("from model_discovery.verify.run import verify\n", "design.py")


def test_push_to_hub_creates_the_repository_and_uploads_the_folder(exported, monkeypatch):
    """Up to the network call: the repository is created (or kept) and the exported folder uploaded to it."""
    from huggingface_hub import HfApi

    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo, **kw: calls.append(("create", repo, kw))
                        or f"https://huggingface.co/{repo}")
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)))
    from model_discovery.export.hf import push_to_hub

    assert push_to_hub(exported, "me/model", private=True) == "https://huggingface.co/me/model"
    assert calls[0] == ("create", "me/model", {"private": True, "exist_ok": True})
    assert calls[1][1]["repo_id"] == "me/model" and calls[1][1]["folder_path"] == str(exported)
