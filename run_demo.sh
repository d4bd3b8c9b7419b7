#!/usr/bin/env bash
# The front-end: ./run_demo.sh [RUN_DIR] [--port N]
# Sets up .venv if needed, then serves the Streamlit app on 127.0.0.1 over RUN_DIR (default: the most recent run
# under runs/; with none, the Launch page starts one).
set -euo pipefail
cd "$(dirname "$0")"
PORT=8501
RUN_DIR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT=${2:?--port needs a number}; shift 2 ;;
        --port=*) PORT=${1#--port=}; shift ;;
        -h|--help) sed -n 2,4p "$0"; exit 0 ;;
        *) RUN_DIR=$1; shift ;;
    esac
done
make -s setup
if [ -n "$RUN_DIR" ]; then
    [ -f "$RUN_DIR/store.db" ] || { echo "run_demo.sh: $RUN_DIR holds no run (no store.db)" >&2; exit 2; }
    export MODIS_RUN_DIR=$(cd "$RUN_DIR" && pwd)
fi
echo "Model Discovery front-end: http://127.0.0.1:$PORT  (run: ${MODIS_RUN_DIR:-the most recent under runs/})"
exec .venv/bin/streamlit run model_discovery/ui/app.py --server.address 127.0.0.1 --server.port "$PORT" \
    --server.headless true --browser.gatherUsageStats false --server.fileWatcherType none
