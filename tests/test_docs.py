"""The project's documents stand on their own: no text file cites a document outside the repository, and every
repository path that docs/architecture.md names exists."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TEXT = (".py", ".md", ".toml", ".yaml", ".sh", ".cfg", ".txt")
# Documents that live outside the repository (written in pieces so that this file does not name them). A folder
# ../shared beside the checkout is where real data is found (`MODIS_DATA_DIR=../shared/data`): a data path, allowed.
OUTSIDE = re.compile("|".join([re.escape("DESIGN" + ".md"), re.escape("STYLE" + ".md"),
                               re.escape("../" + "shared/") + r"(?!data\b)"]))
PACKAGES = ("design", "lm", "sandbox", "checker", "verify", "evolution", "evals", "agents", "workflow", "export", "ui")
# a repository path: from the top of the repository, or a module path inside the package (`workflow/design.py`)
PATH = re.compile(r"(?<![\w./<>-])((?:model_discovery|scripts|etc|library|tests|docs|evals)/[\w./<>*-]*"
                  rf"|(?:{'|'.join(PACKAGES)})/[\w/<>-]*\.py)")


def _project_files() -> list[Path]:
    """Tracked text files, and new ones git does not ignore."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return [ROOT / name for name in listed if name.endswith(TEXT) and (ROOT / name).is_file()]


def test_no_text_file_cites_a_document_outside_the_repository():
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in _project_files()
             for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, "cites a document outside the repository:\n" + "\n".join(found)


def test_the_data_path_example_stays_allowed():
    assert not OUTSIDE.search("MODIS_DATA_DIR=../" + "shared/data modis verify")
    assert OUTSIDE.search("see ../" + "shared/notes.md") and OUTSIDE.search("DESIGN" + ".md §3")


def _exists(path: str) -> bool:
    """A path exists; one with a placeholder (`<name>`, `*`) needs the folder above its first placeholder."""
    parts = path.rstrip("/").split("/")
    fixed = next((i for i, part in enumerate(parts) if "<" in part or "*" in part), len(parts))
    concrete = "/".join(parts[:fixed]) if fixed < len(parts) else "/".join(parts)
    roots = [ROOT] + ([ROOT / "model_discovery"] if parts[0] in PACKAGES else [])
    return any((root / concrete).is_dir() if fixed < len(parts) else (root / concrete).exists() for root in roots)


def test_every_path_in_the_architecture_document_exists():
    paths = {match.rstrip(".") for match in PATH.findall(ARCHITECTURE.read_text())}
    assert len(paths) > 50  # the pattern still finds the document's paths
    missing = sorted(p for p in paths if not _exists(p))
    assert not missing, f"docs/architecture.md names paths the repository lacks: {missing}"


def test_the_campaign_config_is_a_run_file_of_real_settings():
    """The committed campaign parses as a run file (an unknown key would be an error), resolves on the default
    ladder, and climbs what its comment says, with the best known design among its references."""
    import yaml

    from model_discovery import DiscoveryConfig

    path = ROOT / "campaigns" / "gutenberg-cpu.yaml"
    raw = yaml.safe_load(path.read_text())
    cfg = DiscoveryConfig.from_file(path).resolved()
    assert cfg.corpus == "gutenberg" and cfg.rungs == ["cpu-1m", "cpu-2m"] and cfg.eval_corpora == ["tinyshakespeare"]
    assert raw["references"] == ["llama", "best"] and cfg.noise_seeds == 3 and cfg.synthesis
    assert cfg.verify_budget == {"cpu-1m": 40, "cpu-2m": 6}
