import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from model_discovery.cli import EXPORT_COMMANDS, LIBRARY_COMMANDS, build_parser, main
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


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every parser under ``parser``, by the words that reach it: the top level, the groups, their actions."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _unrenderable_helps() -> list[str]:
    failures = []
    for path, parser in _parsers(build_parser()):
        try:
            parser.format_help()
        except (TypeError, ValueError, KeyError) as err:  # a bare `%` in a help string
            failures.append(f"{' '.join(('modis', *path, '--help'))}: {err!r}")
    return failures


def test_every_help_renders(capsys):
    """`--help` formats help strings with `%`: one bare `%` in any of them (ours or a field description) breaks
    the page that shows it, and the top level shows every command's."""
    paths = {path for path, _ in _parsers(build_parser())}
    wanted = {("library", name) for name, *_ in LIBRARY_COMMANDS} | {("export", name) for name, *_ in EXPORT_COMMANDS}
    assert wanted | {(), ("library",), ("export",), ("fidelity",), ("discover",)} <= paths
    assert _unrenderable_helps() == []
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("usage: modis")


def test_a_percent_in_a_field_description_cannot_break_help(monkeypatch):
    """The help of `discover`/`evolve`/`design` and of `export beaker|slurm` is written in other modules, as field
    descriptions: a `%` there is shown, not read as a format."""
    from model_discovery.export.batch import BatchJob
    from model_discovery.workflow.config import DiscoveryConfig

    monkeypatch.setattr(BatchJob.model_fields["memory"], "description", "memory per worker, e.g. 95% of a node")
    monkeypatch.setattr(DiscoveryConfig.model_fields["seed"], "description", "seed (100% reproducible)")
    assert _unrenderable_helps() == []
    beaker = dict(_parsers(build_parser()))[("export", "beaker")]
    assert "95% of a node" in " ".join(beaker.format_help().split())


README = Path(__file__).resolve().parents[1] / "README.md"
SHELL_OPERATORS = {">", ">>", "<", "|", "&&", "||", ";"}


def _readme_commands() -> list[str]:
    """Every `modis ...` line of README.md's fenced code blocks, continuations (a trailing backslash) joined."""
    commands, fenced, pending = [], False, ""
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            fenced, pending = not fenced, ""
            continue
        if not fenced:
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            if re.match(r"\s*([A-Za-z_]\w*=\S*\s+)*modis\s", pending):  # `modis …`, or `VAR=… modis …`
                commands.append(pending.strip())
            pending = ""
    return commands


def _argv(command: str) -> list[str]:
    """The arguments of a README command line: its comment and any shell redirection dropped, its optional
    `[--flag VALUE]` parts kept (without the brackets) so that their flags are checked too."""
    words = shlex.split(re.sub(r"\[(--[^\[\]]*)\]", r"\1", command), comments=True)
    words = words[words.index("modis") + 1:]
    cut = next((i for i, word in enumerate(words) if word in SHELL_OPERATORS), len(words))
    return words[:cut]


def _check_parses(command: str, capsys) -> None:
    from model_discovery.cli import _given

    try:
        args = build_parser().parse_args(_argv(command))
    except SystemExit:
        pytest.fail(f"{command!r} does not parse: {capsys.readouterr().err.strip()}")
    if hasattr(args, "settings"):  # the settings flags' values are read only when the command runs
        args.settings.settings_cls(**_given(args))


README_COMMANDS = _readme_commands()


def test_the_readme_commands_are_found():
    assert len(README_COMMANDS) >= 20
    continued = [c for c in README_COMMANDS if c.startswith("modis export slurm")]
    assert continued and "--partition gpu" in continued[0]  # the line after a trailing backslash
    assert any(c.startswith("MODIS_DATA_DIR=") for c in README_COMMANDS)
    assert _argv('modis discover "…" --design-budget 20 --print-config > run.yaml   # a file') == [
        "discover", "…", "--design-budget", "20", "--print-config"]
    assert _argv("modis show --run-dir runs/r1 [--json]  # x") == ["show", "--run-dir", "runs/r1", "--json"]


@pytest.mark.parametrize("command", README_COMMANDS, ids=[c[:60] for c in README_COMMANDS])
def test_readme_command_parses(command, capsys):
    _check_parses(command, capsys)


@pytest.mark.parametrize("command", ["modis show --run-dir runs/r1 --bogus", "modis fidelity --run-dir r [--jsn]",
                                     "modis discover x --desing-budget 3"])
def test_a_readme_command_with_an_unknown_flag_fails(command, capsys):
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        _check_parses(command, capsys)


RUN_COMMANDS = {"show": [], "evolve": [], "import": ["f.py"], "design": ["x"], "discover": ["x"], "fidelity": [],
                ("export", "hf"): ["--out", "hf/r1"]}


@pytest.mark.parametrize("command", RUN_COMMANDS, ids=str)
def test_every_run_command_takes_run_dir(command, capsys):
    words = [command] if isinstance(command, str) else list(command)
    args = build_parser().parse_args([*words, *RUN_COMMANDS[command], "--run-dir", "runs/r1"])
    assert str(args.run_dir) == "runs/r1"
    with pytest.raises(SystemExit):
        main([*words, "--help"])
    assert "--run-dir RUN" in capsys.readouterr().out


@pytest.mark.parametrize("old, new", [
    (["fidelity", "runs/r1"], ["fidelity", "--run-dir", "runs/r1"]),
    (["export", "hf", "runs/r1", "--out", "hf/r1"], ["export", "hf", "--run-dir", "runs/r1", "--out", "hf/r1"])])
def test_the_positional_run_folder_is_still_accepted(old, new):
    from model_discovery.cli import _one_folder

    for words in (old, new):
        assert _one_folder(build_parser().parse_args(words), "a folder") == "runs/r1"


@pytest.mark.parametrize("words", [["fidelity"], ["export", "hf", "--out", "hf/r1"]])
def test_a_run_folder_given_twice_or_not_at_all_is_an_error(words, capsys):
    assert main([*words, "--run-dir", "runs/a", "runs/b"]) == 2
    assert "got two folders" in capsys.readouterr().err
    assert main(words) == 2
    err = capsys.readouterr().err
    assert err.startswith("modis: ") and "needs a folder: give" in err and "--run-dir RUN" in err
