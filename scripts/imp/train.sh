#!/usr/bin/env bash
# IMPPredictor (docs/imp.md) in one protocol: train, then test.
# Usage: bash scripts/imp/train.sh PROTOCOL DETECTOR_CKPT [KEY VALUE ...]
#   PROTOCOL: predcls | sgcls | sgdet (PredCls and SGCls also run without a detector: pass "")
# Environment: DATASET synthetic (default: configs/synthetic/imp.yaml) | vglike (the same yaml with the VG-like
#   profile's data keys, scripts/lib.sh) | vg150 (SGB's relation yaml with
#   PREDICTOR IMPPredictor, and SOLVER.BASE_LR 0.001 in SGCls as SGB's README says: "or the model won't converge"),
#   OUTPUT_ROOT (default output/$DATASET; the run goes to $OUTPUT_ROOT/IMPPredictor/PROTOCOL), NPROC (torchrun), PYTHON.
#   OUTPUT_ROOT=output/qt bash scripts/imp/train.sh sgcls output/qt/detector/model_final.pth
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
DATASET=${DATASET:-synthetic}
PROTOCOL=${1:?protocol: predcls, sgcls or sgdet}
DETECTOR=${2:-}
shift 2 || shift $#
source scripts/lib.sh
protocol_switches "$PROTOCOL"
dataset_data "$DATASET"
EXTRA=()
case "$DATASET" in
  synthetic|vglike) CONFIG=configs/synthetic/imp.yaml ;;
  vg150)     CONFIG=configs/e2e_relation_X_101_32_8_FPN_1x.yaml
             [ "$PROTOCOL" = sgcls ] && EXTRA=(SOLVER.BASE_LR 0.001) ;;
  *) unknown_dataset ;;
esac
ARGS=(--config-file "$CONFIG" "${DATA[@]}" "${SWITCHES[@]}" MODEL.ROI_RELATION_HEAD.PREDICTOR IMPPredictor "${EXTRA[@]}"
      OUTPUT_DIR "${OUTPUT_ROOT:-output/$DATASET}/IMPPredictor/$PROTOCOL")
[ -n "$DETECTOR" ] && ARGS+=(MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR")
run_tool tools/relation_train_net.py "${ARGS[@]}" "$@"
