#!/usr/bin/env bash
# Writes a Beaker experiment spec whose tasks run `modis worker` against a run's store, then submits it when the
# beaker CLI is installed.
#   scripts/create_beaker.sh --store-env MODIS_STORE_URL --artifacts s3://B/P --image IMAGE [--workers N] [--workspace W]
# Every option but --workspace goes to `modis export beaker` (see `modis export beaker --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,5p "$0"; exit 2; }
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
