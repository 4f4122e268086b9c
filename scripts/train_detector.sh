#!/usr/bin/env bash
# Pre-train a detector, then evaluate it. One process, or one per GPU/CPU slot with torchrun when NPROC > 1.
# Usage: bash scripts/train_detector.sh [CONFIG] [KEY VALUE ...]
#   CONFIG defaults to configs/synthetic/detector_tiny_fpn.yaml (the CPU quick-start detector)
#   NPROC=4 bash scripts/train_detector.sh configs/detector/vg150_X_101_32_8_FPN.yaml SOLVER.IMS_PER_BATCH 8
#   PORT (default 29500) is the torchrun rendezvous port; change it to run two jobs on one machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
CONFIG=${1:-configs/synthetic/detector_tiny_fpn.yaml}
shift || true
source scripts/lib.sh
run_tool tools/detector_pretrain_net.py --config-file "$CONFIG" "$@"
