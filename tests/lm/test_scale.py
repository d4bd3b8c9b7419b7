import pytest

from model_discovery.design.library import design_names
from model_discovery.lm import find_scale, fit_to_scale, ladder_names, load_ladder
from model_discovery.lm.fit import block_params
from model_discovery.verify.kinds import lowest_corpus_rung


def test_shipped_ladders():
    assert {"cpu", "gpu"} <= set(ladder_names())
    cpu, gpu = load_ladder("cpu"), load_ladder("gpu")
    # Both ladders start with the synthetic-task rung `mad`; the corpus rungs follow it.
    assert cpu.rungs[0].kind == gpu.rungs[0].kind == "mad"
    cpu_lm, gpu_lm = [s for s in cpu.rungs if s.kind == "lm"], [s for s in gpu.rungs if s.kind == "lm"]
    assert 2 <= len(cpu_lm) <= 3 and cpu_lm[0].train_tokens >= 1_000_000 and lowest_corpus_rung(cpu) == cpu_lm[0]
    assert [s.d_model for s in gpu_lm] == [128, 256, 512, 768, 1024]
    assert [s.n_block for s in gpu_lm] == [6, 6, 6, 12, 24]
    nominal = [14e6, 31e6, 70e6, 125e6, 350e6]
    assert [s.train_tokens / n for s, n in zip(gpu_lm, nominal)] == pytest.approx([50, 40, 30, 20, 20])
    # Default runs climb the corpus rungs only: mad's ranking did not predict cpu-1m's on real text.
    assert cpu.defaults.rungs == [s.name for s in cpu_lm] and gpu.defaults.rungs == [s.name for s in gpu_lm]
    assert gpu.selection_ratio == 0.25


@pytest.mark.parametrize("ladder", ["cpu", "gpu"])
def test_ref_params_is_the_llama_reference(ladder, library_design):
    llama = library_design("llama")
    for scale in load_ladder(ladder).rungs:
        assert block_params(llama, scale, llama.gab_config, scale.n_block) == scale.ref_params


@pytest.mark.parametrize("name", design_names())
def test_every_design_fits_every_gpu_rung(name, library_design):
    for scale in load_ladder("gpu").rungs:
        assert abs(fit_to_scale(library_design(name), scale).rel_error) <= 0.2


def test_bad_names_get_suggestions(tmp_path):
    with pytest.raises(KeyError, match="Did you mean cpu-1m"):
        load_ladder("cpu").rung("cpu-1n")
    with pytest.raises(KeyError, match="Did you mean gpu-14m"):
        find_scale("gpu-14")
    with pytest.raises(FileNotFoundError, match="shipped ladders: cpu, gpu"):
        load_ladder("tpu")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrungs:\n  - {name: r, d_model: 8, n_block: 1, context: 10, vocab: 8, train_tokens: 1,"
                   " batch_tokens: 15, lr: 1, warmup: 0, ref_params: 1, typo: 1}\n")
    with pytest.raises(ValueError, match="typo"):
        load_ladder(bad)
