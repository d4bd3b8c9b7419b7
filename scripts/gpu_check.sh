#!/usr/bin/env bash
# GPU readiness in under 5 minutes on one GPU, run as is: `bash scripts/gpu_check.sh [OUT_DIR]`.
#   1. a sandboxed `modis verify` of llama at gpu-14m in bf16 (the sandbox binds /dev/nvidia*): tokens/s and MFU;
#   2. a two-worker discovery run on the gpu ladder: both local workers claim from one queue and share the GPU.
# One summary line per check ("check NAME: ok|FAILED ..."). Without a GPU it says so and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODIS=${MODIS:-.venv/bin/modis}
OUT=${1:-$(mktemp -d "${TMPDIR:-/tmp}/modis-gpu-check.XXXXXX")}
STEPS=${GPU_CHECK_STEPS:-30}
mkdir -p "$OUT"
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA GPU visible to torch on this machine; nothing to check"
    exit 0
fi
export MODIS_CACHE=${MODIS_CACHE:-$OUT/cache} WANDB_MODE=offline
"$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"gpu_check: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}")'
status=0

# 1. bf16 training throughput and model FLOPs utilisation at gpu-14m
start=$(date +%s)
if "$MODIS" verify llama --scale gpu-14m --blimp none --max-steps "$STEPS" --out "$OUT/verify-llama" --json \
        > "$OUT/verify.json" 2> "$OUT/verify.log"; then
    "$PY" - "$OUT/verify.json" "$(( $(date +%s) - start ))" <<'EOF'
import json, sys

import torch

from model_discovery.lm import find_scale

m, wall = json.load(open(sys.argv[1])), int(sys.argv[2])
scale = find_scale("gpu-14m")
# training FLOPs per token: 6 x (block parameters + the tied head's vocab x d) + attention's 12 x L x d x T
flops_per_token = 6 * (m["params"] + scale.vocab * scale.d_model) + 12 * scale.n_block * scale.d_model * scale.context
name = torch.cuda.get_device_properties(0).name
peaks = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}
peak = next((v for k, v in peaks.items() if k in name), None)
mfu = f"{flops_per_token * m['tokens_per_s'] / peak:.1%}" if peak else "n/a (unknown peak for this GPU)"
print(f"check verify-gpu-14m-bf16: ok, {m['tokens_per_s']:,.0f} tokens/s, MFU {mfu}, device {m.get('device')}, "
      f"val loss {m['val_loss']:.3f} after {m['train_tokens']:,} tokens, isolation {m.get('isolation')}, {wall} s")
EOF
else
    echo "check verify-gpu-14m-bf16: FAILED (see $OUT/verify.log)"; tail -5 "$OUT/verify.log"; status=1
fi

# 2. two local workers sharing the GPU through the store's queue
start=$(date +%s)
if "$MODIS" discover "gpu check" --run-dir "$OUT/run" --ladder gpu --workers 2 --design-budget 2 \
        --verify-budget gpu-14m=3 --train-fraction 0.004 --references llama --blimp none --no-check --json \
        > "$OUT/discover.json" 2> "$OUT/discover.log"; then
    "$PY" - "$OUT/run" "$(( $(date +%s) - start ))" <<'EOF'
import sys

from model_discovery.evolution.store import Store

jobs = sorted((j.started, j.finished, j.worker) for j in Store(sys.argv[1], seed_references=False).jobs()
              if j.status == "done")
workers = {w for _, _, w in jobs}
overlap = any(a_end > b_start and a_w != b_w for i, (_, a_end, a_w) in enumerate(jobs) for b_start, _, b_w in jobs[i + 1:])
print(f"check two-workers-one-gpu: {'ok' if len(workers) == 2 else 'FAILED'}, {len(jobs)} verifications by "
      f"{len(workers)} workers, overlapping: {overlap}, {sys.argv[2]} s")
sys.exit(0 if len(workers) == 2 else 1)
EOF
    [ $? -eq 0 ] || status=1
else
    echo "check two-workers-one-gpu: FAILED (see $OUT/discover.log)"; tail -5 "$OUT/discover.log"; status=1
fi
echo "gpu_check: outputs in $OUT"
exit $status
