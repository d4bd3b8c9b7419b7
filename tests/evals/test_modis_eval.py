"""`modis eval`: lm-eval's simple_evaluate with the modis model object and the project's task configs, with no
reliance on the plugin registration; it scores what `modis verify` measured."""

import json

import pytest

from model_discovery.cli import main


def test_modis_eval_scores_what_verify_measured(tmp_path, verified_llama, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / "results.json"
    assert main(["eval", str(verified_llama), "--tasks", "modis_synthetic", "--batch-size", "16",
                 "--output", str(out)]) == 0
    results = json.loads(out.read_text())
    measured = json.loads((verified_llama / "metrics.json").read_text())["blimp"]
    assert results["modis_synthetic"]["acc,none"] == pytest.approx(measured["acc"], abs=1e-9)
    assert "modis_synthetic: acc" in capsys.readouterr().out
    assert main(["eval", str(verified_llama), "--tasks", "modis_synthetc"]) == 2
    assert "Did you mean modis_synthetic" in capsys.readouterr().err
