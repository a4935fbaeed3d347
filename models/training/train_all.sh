#!/usr/bin/env bash
# Retrains every shipped model from scratch (fixed seeds), exports the ONNX files, evaluates them on held-out
# synthetic sets (models/eval.json), writes the fixtures and the manifest. CPU by default; uses a GPU if torch sees one.
# Needs Debian's python3-torch python3-onnx python3-numpy python3-pil (run with /usr/bin/python3).
# FAST=1 runs a few steps of each (a smoke test of the pipeline, not models to ship).
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-/usr/bin/python3}"
mkdir -p .cache
start=$(date +%s)
run() { local t0; t0=$(date +%s); "$PY" "$@" 2>&1 | grep -v -E "Warning|warnings.warn|_C\._jit|^\s*$"; echo "[time] $1: $(( $(date +%s) - t0 )) s"; }
run make_xray.py
run train_scene.py
run train_obb.py
run train_scene.py --detector-rows   # scene-gru fine-tuned on the detector's own rows of rendered scenes
run evaluate_pipeline.py
run train_seg.py
run train_sam.py
[ "${FAST:-}" = 1 ] || run ood_eval.py --write   # sam-tiny on shapes from another generator
run make_fixtures.py
run write_manifest.py
echo "[time] total: $(( $(date +%s) - start )) s"
