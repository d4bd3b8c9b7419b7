#!/usr/bin/env bash
# Creates .venv and installs the project (what `make setup` does), for people without make.
# Torch goes in first and pinned, so that pip never resolves a CUDA build on a CPU machine.
# Idempotent: a second run with an unchanged pyproject.toml returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.installed"
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ]; then
    exit 0
fi
# bubblewrap gives the sandbox its namespaces; without it, sandboxed runs fall back to limits and the guard.
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q bubblewrap >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1; } \
        || echo "note: could not install bubblewrap; the sandbox will run without namespaces"
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "torch==2.13.0"
"$VENV/bin/pip" install -q -e ".[dev,ray,beaker,ui]"
# lm-eval 0.4 reads no plugin entry points: a .pth line registers `--model modis` with it
"$VENV/bin/python" -m model_discovery.evals.plugin
touch "$STAMP"
echo "set-up done: $VENV"
