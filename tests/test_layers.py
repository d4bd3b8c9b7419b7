"""The one-way layering of the package (docs/architecture.md, "Layers") holds: import-linter's contract in
pyproject.toml, with function-level imports counted. A contract that inverts two layers must break, so the check
can fail."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")


def _lint(config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([LINT, "--config", str(config), "--no-cache"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[dev]')")
def test_layers_contract_is_kept():
    out = _lint(ROOT / "pyproject.toml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


@pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[dev]')")
def test_an_upward_import_breaks_the_contract(tmp_path):
    config = tmp_path / "inverted.toml"
    config.write_text('[tool.importlinter]\nroot_package = "model_discovery"\n\n[[tool.importlinter.contracts]]\n'
                      'name = "inverted"\ntype = "layers"\nlayers = ["model_discovery.design", '
                      '"model_discovery.workflow"]\n')
    out = _lint(config)
    assert out.returncode != 0 and "BROKEN" in out.stdout, out.stdout
