"""Makes ``lm_eval --model modis`` work: lm-eval 0.4 reads no plugin entry points, so a one-line ``.pth`` file in
site-packages installs :class:`_RegistryHook`, which registers ``modis`` (as a lazy ``module:Class`` string, so
nothing heavy is imported) right after lm-eval creates its model registry. Python runs ``.pth`` lines at start-up;
this one costs an import of this small module.

    python -m model_discovery.evals.plugin          # writes model_discovery_lm_eval.pth (make setup does this)
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import sysconfig
from pathlib import Path

REGISTRY = "lm_eval.api.registry"
TARGET = "model_discovery.evals.lm_eval_model:ModisLM"
PTH_NAME = "model_discovery_lm_eval.pth"


def _register(module) -> None:
    if "modis" not in module.model_registry:
        module.model_registry.register("modis", target=TARGET)


class _RegistryHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader of lm-eval's registry module so ``modis`` is added once it runs."""

    def find_spec(self, name, path, target=None):
        if name != REGISTRY:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_and_register(module):
                exec_module(module)
                _register(module)

            spec.loader.exec_module = exec_and_register
        return spec


def install() -> None:
    """Called from the ``.pth`` line: registers now if lm-eval is already imported, else when it is."""
    if REGISTRY in sys.modules:
        _register(sys.modules[REGISTRY])
    elif not any(isinstance(f, _RegistryHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegistryHook())


def write_pth(site_packages: str | Path | None = None) -> Path:
    """Writes the ``.pth`` file into ``site_packages`` (default: this interpreter's) and returns its path."""
    path = Path(site_packages or sysconfig.get_paths()["purelib"]) / PTH_NAME
    path.write_text("import model_discovery.evals.plugin as _modis_plugin; _modis_plugin.install()\n")
    return path


if __name__ == "__main__":
    print(f"wrote {write_pth()}: `lm_eval --model modis` is available in this environment")
