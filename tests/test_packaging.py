"""Packaging: every third-party import of the package is declared in pyproject.toml (the core's in
``[project] dependencies``, a feature's in its extra), a feature whose extra is missing says which extra to install,
and the wheel carries what the package reads at run time. The bare-venv install itself is the slow test at the end
(scripts/check_install.sh)."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Where an extra's packages may be imported: (path prefix, whether at module level). The two core modules import
# theirs inside the function that needs them, so the rest of the module works without the extra; the whole ui
# package is the feature (its __init__ says which extra is missing).
FEATURES = {
    "ray": [("model_discovery/evolution/executors.py", False)],
    "beaker": [("model_discovery/export/batch.py", False)],
    "ui": [("model_discovery/ui/", True)],
}
# An extra's distributions that no module imports by name: SQLAlchemy imports the database driver.
LOADED_BY_NAME = {"postgres": {"psycopg"}}
# Core distributions that no module of the package imports by name, and why they are declared.
CORE_NOT_IMPORTED = {
    "einops": "designs may import it (model_discovery.checker.static.ALLOWED_IMPORTS)",
    "s3fs": "fsspec's s3:// protocol, for --artifacts s3://…",
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    """Distribution names of PEP 508 requirements; ``model-discovery[a,b]`` (an extra naming others) expands."""
    names = set()
    for requirement in requirements:
        name = normalize(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group())
        if name == normalize(PYPROJECT["project"]["name"]):
            extras = re.search(r"\[([^\]]*)\]", requirement).group(1)
            names |= {n for extra in extras.split(",") for n in extra_names(extra.strip())}
        else:
            names.add(name)
    return names


def core_names() -> set[str]:
    return requirement_names(PYPROJECT["project"]["dependencies"])


def extra_names(extra: str) -> set[str]:
    return requirement_names(PYPROJECT["project"]["optional-dependencies"][extra])


def imports(source: str) -> list[tuple[str, int, bool]]:
    """``(module, line, in a function)`` for every absolute import of ``source``."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno, in_function))
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(source), False)
    return found


def package_sources() -> dict[str, str]:
    """The package's modules and the Python files of the project folders the wheel carries (library units, lm-eval
    task functions): all of it runs in an installed package."""
    from model_discovery.resources import PROJECT_FOLDERS

    files = sorted((ROOT / "model_discovery").rglob("*.py"))
    files += sorted(p for name in PROJECT_FOLDERS for p in (ROOT / name).rglob("*.py"))
    return {p.relative_to(ROOT).as_posix(): p.read_text() for p in files if "__pycache__" not in p.parts}


@cache
def _distribution_files(dist: str) -> tuple[str, ...]:
    return tuple(str(f) for f in metadata.files(dist) or ())


@cache
def _top_level_providers() -> dict[str, list[str]]:
    return metadata.packages_distributions()


@cache
def providers(module: str) -> frozenset[str]:
    """The installed distributions that provide ``module``; of a namespace package spread over several (langgraph),
    the ones holding the deepest part of the dotted name."""
    parts = module.split(".")
    candidates = set(_top_level_providers().get(parts[0], []))
    for depth in range(len(parts), 1 if len(candidates) > 1 else len(parts), -1):
        stem = "/".join(parts[:depth])
        owners = {d for d in candidates
                  if any(f == f"{stem}.py" or f.startswith(f"{stem}/") for f in _distribution_files(d))}
        if owners:
            return frozenset(map(normalize, owners))
    return frozenset(map(normalize, candidates))


def third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in sys.stdlib_module_names and top not in ("__future__", "model_discovery")


def undeclared(sources: dict[str, str]) -> list[str]:
    """One line per import that a plain install, or an install with the feature's extra, would lack."""
    core, problems = core_names(), []
    for path, source in sources.items():
        for module, line, in_function in imports(source):
            if not third_party(module):
                continue
            where, dists = f"{path}:{line}: import {module}", providers(module)
            if not dists:
                problems.append(f"{where}: no installed distribution provides it (declare it and install it)")
                continue
            if dists & core:
                continue
            extras = [(extra, level_ok) for extra, places in FEATURES.items() for prefix, level_ok in places
                      if path.startswith(prefix) and dists & extra_names(extra)]
            if not extras:
                problems.append(f"{where}: {'/'.join(sorted(dists))} is not in [project] dependencies"
                                + "".join(f" (it is in the extra {e!r}, which {path} does not belong to)"
                                          for e in PYPROJECT["project"]["optional-dependencies"]
                                          if e != "dev" and dists & extra_names(e)))
            elif not in_function and not any(level_ok for _, level_ok in extras):
                problems.append(f"{where}: the extra {extras[0][0]!r} is optional, so {path} imports it inside the "
                                "function that needs it (the rest of the module works without it)")
    return problems


def imported_distributions(sources: dict[str, str], prefixes: list[str] | None = None) -> set[str]:
    return {d for path, source in sources.items() if prefixes is None or path.startswith(tuple(prefixes))
            for module, _, _ in imports(source) if third_party(module) for d in providers(module)}


# --- declarations -------------------------------------------------------------------------------------------------


def test_every_third_party_import_of_the_package_is_declared():
    problems = undeclared(package_sources())
    assert not problems, "undeclared imports:\n" + "\n".join(problems)


@pytest.mark.parametrize(("path", "source", "expected"), [
    ("model_discovery/verify/new.py", "import pandas\n", "not in [project] dependencies (it is in the extra 'ui'"),
    ("model_discovery/lm/new.py", "def f():\n    import pytest\n", "pytest is not in [project] dependencies"),
    ("model_discovery/evolution/executors.py", "import ray\n", "imports it inside the function"),
    ("model_discovery/ui/new.py", "import ray\n", "ray is not in [project] dependencies (it is in the extra 'ray'"),
    ("library/units/New.py", "import plotly\n", "plotly is not in [project] dependencies"),
    ("model_discovery/agents/new.py", "from modis_nonexistent_pkg.sub import x\n", "no installed distribution"),
])
def test_an_undeclared_import_is_reported(path, source, expected):
    problems = undeclared({path: source})
    assert len(problems) == 1 and expected in problems[0], problems


def test_allowed_imports_are_not_reported():
    assert undeclared({
        "model_discovery/evolution/executors.py": "def start():\n    import ray\n",
        "model_discovery/ui/new.py": "import streamlit as st\nimport plotly.graph_objects as go\nimport pandas\n",
        "model_discovery/workflow/new.py": "from langgraph.checkpoint.sqlite import SqliteSaver\nimport yaml\n",
    }) == []


def test_each_extra_holds_only_what_its_feature_imports():
    sources = package_sources()
    for extra, places in FEATURES.items():
        used = imported_distributions(sources, [prefix for prefix, _ in places])
        assert extra_names(extra) <= used | LOADED_BY_NAME.get(extra, set()), extra
    for extra, loaded in LOADED_BY_NAME.items():
        assert extra_names(extra) == loaded


def test_every_core_dependency_is_used():
    core = core_names()
    unused = core - imported_distributions(package_sources()) - set(CORE_NOT_IMPORTED)
    assert not unused, f"declared but never imported: {sorted(unused)}"
    assert set(CORE_NOT_IMPORTED) <= core


def test_the_dev_extra_brings_what_the_tests_of_the_features_need():
    assert extra_names("ui") | extra_names("postgres") <= extra_names("dev")


# --- a missing extra says which one to install ------------------------------------------------------------------


def test_the_ray_executor_without_ray_names_the_extra(monkeypatch, tmp_path):
    from model_discovery.evolution.executors import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)
    store = SimpleNamespace(url="sqlite:///unused.db", job_states=lambda: [])
    with pytest.raises(ImportError, match=re.escape("pip install 'model-discovery[ray]'")):
        RayExecutor(store, tmp_path, None).start()


def test_beaker_specs_without_beaker_py_name_the_extra(monkeypatch):
    from model_discovery.export.batch import BatchJob, beaker_spec

    monkeypatch.setitem(sys.modules, "beaker", None)
    with pytest.raises(RuntimeError, match=re.escape("pip install 'model-discovery[beaker]'")):
        beaker_spec(BatchJob(store="postgresql+psycopg://db/modis"), "modis:latest")


@pytest.mark.parametrize("module", ["streamlit", "plotly", "pandas"])
def test_the_front_end_without_its_packages_names_the_extra(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)
    for name in [n for n in sys.modules if n == "model_discovery.ui" or n.startswith("model_discovery.ui.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=rf"needs {module}: pip install 'model-discovery\[ui\]'"):
        import model_discovery.ui.data  # noqa: F401


@pytest.mark.parametrize(("url", "advice"), [
    ("postgresql+psycopg://modis:hunter2@db/modis", "pip install 'model-discovery[postgres]'"),
    ("postgresql+psycopg2://modis:hunter2@db/modis", "and write the URL as postgresql+psycopg://"),
    ("postgresql://modis:hunter2@db/modis", "pip install 'model-discovery[postgres]'"),  # psycopg2 before SQLA 2.1
])
def test_a_postgresql_store_without_psycopg_names_the_extra(monkeypatch, url, advice):
    from model_discovery.evolution.store import Store

    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(ImportError, match=re.escape(advice)) as error:
        Store(url, seed_references=True)
    assert "model-discovery[postgres]" in str(error.value) and "hunter2" not in str(error.value)


# --- what the wheel carries ---------------------------------------------------------------------------------------


def test_setup_py_copies_the_folders_the_package_looks_up():
    from model_discovery.resources import PROJECT_FOLDERS

    tree = ast.parse((ROOT / "setup.py").read_text())
    copied = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                  and any(getattr(t, "id", None) == "PROJECT_FOLDERS" for t in node.targets))
    assert copied == PROJECT_FOLDERS
    assert all((ROOT / name).is_dir() for name in PROJECT_FOLDERS)
    manifest = (ROOT / "MANIFEST.in").read_text().split()
    assert all(name in manifest for name in PROJECT_FOLDERS)  # the sdist carries them too


def test_an_installed_package_reads_its_own_copies(monkeypatch, tmp_path):
    from model_discovery import resources

    assert resources.project_dir("library") == ROOT / "library"  # a checkout: the folders beside the package
    (tmp_path / "library").mkdir()
    monkeypatch.setattr(resources, "BUNDLED", tmp_path)
    assert resources.project_dir("library") == tmp_path / "library"  # a wheel: its copies
    assert resources.project_dir("etc") == ROOT / "etc"
    with pytest.raises(ValueError, match="not a project folder"):
        resources.project_dir("tests")


def test_the_license_is_an_spdx_expression():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    setuptools = next(r for r in PYPROJECT["build-system"]["requires"] if normalize(r).startswith("setuptools"))
    assert int(re.search(r">=\s*(\d+)", setuptools).group(1)) >= 77  # the first setuptools that reads it


@pytest.mark.slow
def test_the_wheel_runs_in_a_bare_virtual_environment():
    """Builds the wheel, installs it without extras into a new venv (CPU torch first), runs `modis --help` and a
    one-design discovery there, and checks the build printed no deprecation warning."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "check_install.sh")], capture_output=True, text=True,
                         timeout=1800, env={**os.environ, "PYTHON": sys.executable})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "check_install: ok" in out.stdout
