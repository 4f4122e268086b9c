#!/usr/bin/env bash
# Train (then test) one relation predictor in one protocol. One process, or torchrun when NPROC > 1.
# Usage: bash scripts/train_relation.sh PREDICTOR PROTOCOL DETECTOR_CKPT [KEY VALUE ...]
#   PROTOCOL: predcls | sgcls | sgdet.  DATASET (env): synthetic (default), vglike (the VG-like profile) or vg150.
#   DATASET=vg150 NPROC=2 bash scripts/train_relation.sh MotifPredictor predcls ckpt/model_final.pth GLOVE_DIR glove
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
DATASET=${DATASET:-synthetic}
PREDICTOR=${1:?predictor name, e.g. TransformerPredictor}
PROTOCOL=${2:?protocol: predcls, sgcls or sgdet}
DETECTOR=${3:-}
shift 3 || shift $#
source scripts/lib.sh
protocol_switches "$PROTOCOL"
case "$DATASET" in
  synthetic) CONFIG=configs/synthetic/relation_base.yaml ;;
  vglike)    CONFIG=configs/synthetic_vglike/relation_base.yaml ;;
  vg150)     CONFIG=configs/e2e_relation_X_101_32_8_FPN_1x.yaml ;;
  *) unknown_dataset ;;
esac
ARGS=(--config-file "$CONFIG" "${SWITCHES[@]}" MODEL.ROI_RELATION_HEAD.PREDICTOR "$PREDICTOR"
      OUTPUT_DIR "${OUTPUT_ROOT:-output/$DATASET}/$PREDICTOR/$PROTOCOL")
[ -n "$DETECTOR" ] && ARGS+=(MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR")
run_tool tools/relation_train_net.py "${ARGS[@]}" "$@"
