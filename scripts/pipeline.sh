#!/usr/bin/env bash
# The whole pipeline for one predictor: detector pre-training, then PredCls, SGCls and SGDet training and testing.
# Usage: bash scripts/pipeline.sh [PREDICTOR] [KEY VALUE ...]      (extra KEY VALUE pairs go to relation training)
#   DATASET=synthetic (default), vglike or vg150; OUTPUT_ROOT (default output/$DATASET); NPROC for torchrun.
#   The detector step is skipped when OUTPUT_ROOT/detector/model_final.pth exists.
set -euo pipefail
cd "$(dirname "$0")/.."
PREDICTOR=${1:-TransformerPredictor}
shift || true
export DATASET=${DATASET:-synthetic}
export OUTPUT_ROOT=${OUTPUT_ROOT:-output/$DATASET}
DETECTOR_DIR="$OUTPUT_ROOT/detector"
source scripts/lib.sh
case "$DATASET" in
  synthetic) DETECTOR_CONFIG=configs/synthetic/detector_tiny_fpn.yaml ;;
  vglike)    DETECTOR_CONFIG=configs/synthetic_vglike/detector_tiny_fpn.yaml ;;
  vg150)     DETECTOR_CONFIG=configs/e2e_relation_detector_X_101_32_8_FPN_1x.yaml ;;
  *) unknown_dataset ;;
esac
if [ ! -f "$DETECTOR_DIR/model_final.pth" ]; then
  echo "== detector pre-training ($DETECTOR_CONFIG) -> $DETECTOR_DIR"
  bash scripts/train_detector.sh "$DETECTOR_CONFIG" OUTPUT_DIR "$DETECTOR_DIR"
fi
for protocol in predcls sgcls sgdet; do
  echo "== $PREDICTOR $protocol"
  bash scripts/train_relation.sh "$PREDICTOR" "$protocol" "$DETECTOR_DIR/model_final.pth" "$@"
done
echo "== results"
for protocol in predcls sgcls sgdet; do
  for f in "$OUTPUT_ROOT/$PREDICTOR/$protocol"/inference/*/results.txt; do
    if [ -f "$f" ]; then echo "-- $protocol: $f"; cat "$f"; fi  # not `&&`: a run without results is not a failure
  done
done
