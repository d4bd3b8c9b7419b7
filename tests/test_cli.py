import json
import os
import subprocess
import sys
from pathlib import Path

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
