"""Where the project folders the package reads at run time are: ``library/`` (the reference units and designs),
``etc/`` (ladders, agent specs, prices) and ``evals/`` (the lm-eval task configs).

In a checkout (and an editable install) they are the top-level folders beside ``model_discovery/``. A wheel carries
copies of them as ``model_discovery/_project/<name>`` (``setup.py`` puts them there at build time), so an installed
package needs no source tree. This module imports nothing from the package.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_FOLDERS = ("library", "etc", "evals")  # setup.py copies the same ones (tests/test_packaging.py checks it)
PACKAGE = Path(__file__).resolve().parent
BUNDLED = PACKAGE / "_project"


def project_dir(name: str) -> Path:
    """The project folder ``name``: the wheel's copy when the package carries one, else the checkout's."""
    if name not in PROJECT_FOLDERS:
        raise ValueError(f"{name!r} is not a project folder; those are {', '.join(PROJECT_FOLDERS)}")
    bundled = BUNDLED / name
    return bundled if bundled.is_dir() else PACKAGE.parent / name
