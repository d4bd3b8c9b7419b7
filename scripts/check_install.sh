#!/usr/bin/env bash
# A plain install works: builds the wheel from this checkout (its tracked and unignored files, copied aside), installs
# it without extras into a new virtual environment (CPU torch first, so pip never resolves a CUDA build), and runs
# `modis --help`, an import of every core module, the missing-extra messages and a one-design offline discovery
# there, away from the checkout. Fails on any error, on a deprecation warning in the build output, on package data
# missing from the wheel and on a CUDA wheel in the environment. Prints each step's duration.
#   bash scripts/check_install.sh          (PYTHON=python3.11 to pick the interpreter; KEEP=1 keeps the temp folder)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC_ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}  # what scripts/setup.sh installs
TMP=$(mktemp -d -t modis-install.XXXXXX)
LOGS=$TMP/logs
mkdir -p "$LOGS" "$TMP/work"
if [ "${KEEP:-0}" = 1 ]; then
    echo "check_install: keeping $TMP"
else
    trap 'rm -rf "$TMP"' EXIT
fi
# the run's caches in the temp folder, nothing online (as .ci/run); the installed package's own folders, not the
# checkout's or another copy named in the environment
export MODIS_CACHE=$TMP/cache HF_HOME=$TMP/hf WANDB_MODE=offline WANDB_DIR=$TMP/wandb WANDB_CACHE_DIR=$TMP/wandb-cache \
    WANDB_CONFIG_DIR=$TMP/wandb-config WANDB_DATA_DIR=$TMP/wandb-data RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
unset PYTHONPATH MODIS_LIBRARY MODIS_EVALS VIRTUAL_ENV PYTHONHOME
VENV=$TMP/venv
VPY=$VENV/bin/python
SUMMARY=()
START=$(date +%s.%N)

# step NAME COMMAND...: runs COMMAND with its output in $LOGS/NAME.log; prints its duration, or the log's end and fails
step() {
    local name=$1; shift
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    "$@" >"$LOGS/$name.log" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    local took
    took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" -ne 0 ]; then
        echo "check_install: FAILED at step '$name' (exit $rc, ${took} s); the end of its output:" >&2
        tail -n 60 "$LOGS/$name.log" >&2
        exit 1
    fi
    SUMMARY+=("$(printf '%-10s %7s s' "$name" "$took")")
    printf 'check_install: %-10s %7s s\n' "$name" "$took"
}

copy_source() {  # what a fresh clone has (plus files not yet committed that git does not ignore)
    mkdir -p "$TMP/src"
    if git -C "$SRC_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$SRC_ROOT" ls-files -z --cached --others --exclude-standard \
            | (cd "$SRC_ROOT" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' _) \
            | tar -C "$SRC_ROOT" --null -T - -cf - | tar -C "$TMP/src" -xf -
    else
        tar -C "$SRC_ROOT" --exclude=./.venv --exclude=./build --exclude='*.egg-info' -cf - . | tar -C "$TMP/src" -xf -
    fi
}

make_venv() {
    "$PYTHON" -m venv "$VENV"
    "$VPY" -m pip install -q --upgrade pip
}

build_wheel() {
    "$VPY" -m pip wheel --no-deps -v -w "$TMP/dist" "$TMP/src"
    local found
    if found=$(grep -iE "deprecat" "$LOGS/wheel.log"); then
        echo "the build printed a deprecation warning:"; echo "$found"; return 1
    fi
    "$VPY" - "$TMP"/dist/model_discovery-*.whl <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
needed = ["model_discovery/_project/library/README.md", "model_discovery/_project/library/designs/llama/meta.yaml",
          "model_discovery/_project/etc/ladder_cpu.yaml", "model_discovery/_project/etc/prices.yaml",
          "model_discovery/_project/etc/agent_spec/proposer.yaml", "model_discovery/_project/evals/utils.py",
          "model_discovery/evolution/migrations/script.py.mako", "model_discovery/evolution/migrations/env.py",
          "model_discovery/evolution/migrations/versions/0001_initial.py",
          "model_discovery/export/hf_remote/modeling_modis.py", "model_discovery/ui/views/overview.py"]
missing = [n for n in needed if n not in names]
units = [n for n in names if n.startswith("model_discovery/_project/library/units/")]
stray = [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
print(f"{len(names)} files, {len(units)} library units")
if missing or not units or stray:
    sys.exit(f"the wheel lacks {missing or 'library units'}" if missing or not units else f"stray files: {stray}")
EOF
}

install_torch() { "$VPY" -m pip install -q "$TORCH"; }

install_wheel() {
    "$VPY" -m pip install -q "$TMP"/dist/model_discovery-*.whl
    local cuda
    if cuda=$("$VPY" -m pip list 2>/dev/null | grep -iE '^(nvidia-|triton )'); then
        echo "CUDA wheels were installed:"; echo "$cuda"; return 1
    fi
    "$VPY" -c "import torch; print('torch', torch.__version__); assert not torch.version.cuda, torch.version.cuda"
}

help_cmd() { (cd "$TMP/work" && "$VENV/bin/modis" --help && "$VENV/bin/modis" discover --help >/dev/null); }

imports() {  # every core module imports in the bare install and reads the installed copies of the project folders
    (cd "$TMP/work" && "$VPY" - <<'EOF'
import importlib, pkgutil, sys
from pathlib import Path
import model_discovery
from model_discovery.resources import project_dir
package = Path(model_discovery.__file__).parent
assert Path(sys.prefix) in package.parents, f"the package comes from {package}, not the venv"
for name in ("library", "etc", "evals"):
    assert project_dir(name).is_relative_to(package / "_project"), project_dir(name)
modules = [m.name for m in pkgutil.walk_packages(model_discovery.__path__, "model_discovery.")
           if not m.name.startswith(("model_discovery.ui", "model_discovery._project", "model_discovery.export.hf_remote"))
           and ".migrations" not in m.name]
for name in modules:
    importlib.import_module(name)
print(f"{len(modules)} modules import; library at {project_dir('library')}")
EOF
    )
}

extras() {  # the features whose extra is missing say which extra to install
    (cd "$TMP/work" && "$VPY" - <<'EOF'
import importlib.util, re
from pathlib import Path
from types import SimpleNamespace

def says(extra, call, module):
    if importlib.util.find_spec(module) is not None:
        print(f"note: {module} is installed (a dependency brought it), so the {extra} message is not checked here")
        return
    try:
        call()
    except (ImportError, RuntimeError) as exc:
        assert f"pip install 'model-discovery[{extra}]'" in str(exc), exc
        print(f"{extra}: {exc}")
    else:
        raise AssertionError(f"no error without the {extra} extra")

def ui():
    import model_discovery.ui.data  # noqa: F401

def ray():
    from model_discovery.evolution.executors import RayExecutor
    RayExecutor(SimpleNamespace(url="sqlite://", job_states=lambda: []), Path("."), None).start()

def beaker():
    from model_discovery.export.batch import BatchJob, beaker_spec
    beaker_spec(BatchJob(store="postgresql+psycopg://db/modis"), "modis:latest")

def postgres():
    from model_discovery.evolution.store import Store
    Store("postgresql+psycopg://modis@127.0.0.1:1/modis")

says("ui", ui, "streamlit")
says("ray", ray, "ray")
says("beaker", beaker, "beaker")
says("postgres", postgres, "psycopg")
EOF
    )
}

discover() {
    (cd "$TMP/work" && "$VENV/bin/modis" discover "smoke test of a plain install" --run-dir "$TMP/run" --rungs cpu-1m \
        --design-budget 1 --verify-budget cpu-1m=1 --train-fraction 0.004 --noise-seeds 1 --references llama)
    "$VPY" - "$TMP/run/report.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
counts = {k: report[k] for k in ("n_designs", "n_check_passed", "n_verified")}
assert counts["n_designs"] == 1 and counts["n_check_passed"] == 1 and counts["n_verified"] >= 1, counts
print(counts)
EOF
}

echo "check_install: $("$PYTHON" -V 2>&1), temp folder $TMP"
step copy copy_source
step venv make_venv
step wheel build_wheel
step torch install_torch
step install install_wheel
step help help_cmd
step imports imports
step extras extras
step discover discover
TOTAL=$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "check_install: ok (total $TOTAL s)"
printf '  %s\n' "${SUMMARY[@]}"
