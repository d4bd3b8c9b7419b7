import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_discovery.cli import main
from model_discovery.design import load_design
from tests.conftest import LIBRARY


def test_library_list_json(capsys):
    assert main(["library", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == LIBRARY
    assert all(r["title"] and r["units"] for r in rows)


def test_library_show_prints_the_unit_tree(capsys):
    assert main(["library", "show", "lightbulb_router"]) == 0
    out = capsys.readouterr().out
    assert "ExpertRouter [token_mixer]" in out and "TopKRetrievalMemory [memory]" in out


def test_library_path_is_a_loadable_design(capsys):
    assert main(["library", "path", "rwkv6"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.is_file() and load_design(path).gab_config["rwkv_head_dim"] == 32


def test_unknown_design_exits_2_with_a_hint(capsys):
    assert main(["library", "show", "mamba"]) == 2
    assert "Did you mean mamba2" in capsys.readouterr().err


def test_console_script_runs():
    exe = Path(sys.executable).parent / "modis"
    out = subprocess.run([str(exe), "library", "list"], capture_output=True, text=True, env=os.environ, check=True)
    assert "llama" in out.stdout


def test_bad_per_rung_values_say_the_expected_form(capsys, tmp_path):
    assert main(["discover", "x", "--run-dir", str(tmp_path / "r"), "--verify-budget", "cpu-1m=8,cpu-2m"]) == 2
    assert "expected one int or RUNG=int,RUNG=int" in capsys.readouterr().err
    assert main(["discover", "x", "--run-dir", str(tmp_path / "r"), "--verify-budget", "cpu1m=8"]) == 2
    assert "Did you mean cpu-1m" in capsys.readouterr().err


def test_per_rung_settings_written_as_text_are_read(tmp_path):
    """What the UI's form and a hand-written run file give: `cpu-1m=8,cpu-2m=2` as text."""
    from model_discovery.workflow.config import DiscoveryConfig

    config = DiscoveryConfig(verify_budget="cpu-1m=8,cpu-2m=2", train_fraction="cpu-1m=0.5")
    assert config.verify_budget == {"cpu-1m": 8, "cpu-2m": 2} and config.train_fraction == {"cpu-1m": 0.5}
    (tmp_path / "run.yaml").write_text("verify_budget: cpu-1m=4\n")
    assert DiscoveryConfig.from_file(tmp_path / "run.yaml").verify_budget == {"cpu-1m": 4}
    with pytest.raises(ValueError, match="expected one int or RUNG=int"):
        DiscoveryConfig(verify_budget="cpu-1m=8,cpu-2m")


def test_run_settings_round_trip_through_a_file(tmp_path, capsys):
    """`--print-config` writes the settings the flags give; `--config` reads them back unchanged; flags beside it
    override the file."""
    from model_discovery.workflow.config import DiscoveryConfig

    flags = ["linear-time", "--design-budget", "2", "--verify-budget", "cpu-1m=2,cpu-2m=1", "--synthesis", "off",
             "--no-check", "--eval-corpus", "a", "--references", "llama,rwkv6", "--modes.weights",
             '{"mutation": 1}']
    assert main(["discover", *flags, "--print-config"]) == 0
    written = capsys.readouterr().out
    run_file = tmp_path / "run.yaml"
    run_file.write_text(written)
    assert main(["discover", "--config", str(run_file), "--print-config"]) == 0
    assert capsys.readouterr().out == written
    config = DiscoveryConfig.from_file(run_file)
    assert (config.prompt, config.design_budget, config.verify_budget) == ("linear-time", 2, {"cpu-1m": 2, "cpu-2m": 1})
    assert not config.synthesis and not config.check and config.eval_corpora == ["a"]
    assert config.references == ["llama", "rwkv6"] and config.modes.weights == {"mutation": 1.0}
    assert main(["discover", "--config", str(run_file), "--seed", "5", "--print-config"]) == 0
    assert DiscoveryConfig.from_file(run_file, seed=5).to_yaml() == capsys.readouterr().out


def test_a_bad_key_in_a_run_file_is_named(tmp_path, capsys):
    run_file = tmp_path / "run.yaml"
    run_file.write_text("design_budget: 2\ndesing_budget: 3\n")
    assert main(["discover", "--config", str(run_file)]) == 2
    err = capsys.readouterr().err
    assert "'desing_budget' is not a setting" in err and "Did you mean design_budget" in err
    assert main(["discover", "--design-budget", "many", "--print-config"]) == 2  # a bad value names its field
    assert "design_budget" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["discover", "evolve", "design"])
def test_help_shows_every_setting_with_its_description(command, capsys):
    from model_discovery.cli import DESIGN_SETTINGS, EVOLVE_SETTINGS
    from model_discovery.workflow.config import DiscoveryConfig

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    fields = {"discover": list(DiscoveryConfig.model_fields), "evolve": EVOLVE_SETTINGS,
              "design": DESIGN_SETTINGS}[command]
    for name in fields:
        description = DiscoveryConfig.model_fields[name].description.split("; default:")[0]
        assert description and " ".join(description.split())[:40] in text, name
