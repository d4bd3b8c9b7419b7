#!/usr/bin/env bash
# Writes a Beaker experiment spec that runs `modis verify`, then submits it when the beaker CLI is installed.
#   scripts/create_beaker.sh DESIGN --scale gpu-14m --image IMAGE [--cluster C] [--budget B] [--workspace W]
# Every option but --workspace goes to `modis export beaker` (see `modis export beaker --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,4p "$0"; exit 2; }
WORKSPACE=""
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --workspace) WORKSPACE="$2"; shift 2 ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
SPEC=$(mktemp --suffix=.yaml "${TMPDIR:-/tmp}/modis-beaker-XXXX")
MODIS=${MODIS:-.venv/bin/modis}
"$MODIS" export beaker "${ARGS[@]}" --out "$SPEC"
if command -v beaker >/dev/null 2>&1; then
    beaker experiment create ${WORKSPACE:+--workspace "$WORKSPACE"} "$SPEC"
else
    echo "the beaker CLI is not installed; submit with: beaker experiment create $SPEC"
fi
