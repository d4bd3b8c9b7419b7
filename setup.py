"""The project's metadata is in pyproject.toml. This file adds one build step: the wheel carries copies of the project
folders the package reads at run time (library/, etc/, evals/) as model_discovery/_project/<name>, where
model_discovery/resources.py finds them when no checkout lies beside the package. An editable install reads the
checkout's folders and gets no copies."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROJECT_FOLDERS = ("library", "etc", "evals")  # = model_discovery.resources.PROJECT_FOLDERS
ROOT = Path(__file__).resolve().parent


class BuildPyWithProjectFolders(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "model_discovery" / "_project"
        shutil.rmtree(target, ignore_errors=True)  # no file deleted from the checkout lingers from an earlier build
        for name in PROJECT_FOLDERS:
            shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))


setup(cmdclass={"build_py": BuildPyWithProjectFolders})
