#!/usr/bin/env bash
# BA-SGG's two-stage recipe for one predictor in one protocol (docs/ba_sgg.md):
#   stage 1 (general model, plain CE; reused when $OUTPUT_ROOT/PREDICTOR/PROTOCOL/model_final.pth exists)
#   -> confusion matrix of the stage-1 PredCls model on the training split (reused when it exists)
#   -> stage 2 (specific model: Semantic Adjustment + Balanced Predicate Learning) in OUTPUT_DIR.
# Usage: bash scripts/ba_sgg/train.sh PREDICTOR PROTOCOL DETECTOR_CKPT [OUTPUT_DIR] [SEED] [KEY VALUE ...]
#   OUTPUT_DIR default $OUTPUT_ROOT/PREDICTOR_BASGG/PROTOCOL; SEED default 0 ('' keeps the config's).
#   DATASET (env) synthetic (default) | vglike | vg150; OUTPUT_ROOT default output/$DATASET; NPROC > 1 uses torchrun.
#   Overrides go to stage 2 only.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
DATASET=${DATASET:-synthetic}
export DATASET OUTPUT_ROOT=${OUTPUT_ROOT:-output/$DATASET}
PREDICTOR=${1:?predictor, e.g. TransformerPredictor or MotifPredictor}
PROTOCOL=${2:?protocol: predcls, sgcls or sgdet}
DETECTOR=${3:?detector checkpoint, e.g. output/qt/detector/model_final.pth}
OUTPUT_DIR=${4:-$OUTPUT_ROOT/${PREDICTOR}_BASGG/$PROTOCOL}
SEED=${5:-0}
shift $(( $# < 5 ? $# : 5 ))
source scripts/lib.sh
protocol_switches "$PROTOCOL"
dataset_data "$DATASET"
case "$DATASET" in
  synthetic|vglike) CONFIG=configs/synthetic/ba_sgg_stage2.yaml ;;
  vg150)     CONFIG=configs/ba_sgg/stage2.yaml ;;
  *) unknown_dataset ;;
esac
# stage 1 in this protocol and in PredCls (the confusion matrix is counted with GT boxes and labels, as the reference)
for P in "$PROTOCOL" predcls; do
  if [ ! -f "$OUTPUT_ROOT/$PREDICTOR/$P/model_final.pth" ]; then
    echo "== BA-SGG stage 1: $PREDICTOR $P"
    bash scripts/train_relation.sh "$PREDICTOR" "$P" "$DETECTOR"
  fi
done
STAGE1=$OUTPUT_ROOT/$PREDICTOR/$PROTOCOL/model_final.pth
CONF_MAT=${CONF_MAT:-$OUTPUT_ROOT/$PREDICTOR/predcls/conf_mat_freq_train.npy}
if [ ! -f "$CONF_MAT" ]; then
  echo "== BA-SGG confusion matrix of $PREDICTOR predcls -> $CONF_MAT"
  "$PYTHON" tools/relation_confusion_matrix.py --config-file "$OUTPUT_ROOT/$PREDICTOR/predcls/config.yaml" \
    --output "$CONF_MAT" OUTPUT_DIR "$OUTPUT_ROOT/$PREDICTOR/predcls" \
    MODEL.WEIGHT "$OUTPUT_ROOT/$PREDICTOR/predcls/model_final.pth"
fi
echo "== BA-SGG stage 2: $PREDICTOR $PROTOCOL -> $OUTPUT_DIR"
ARGS=(--config-file "$CONFIG" "${DATA[@]}" "${SWITCHES[@]}" MODEL.ROI_RELATION_HEAD.PREDICTOR "$PREDICTOR"
      MODEL.PRETRAINED_MODEL_CKPT "$STAGE1" MODEL.ROI_RELATION_HEAD.BA_SGG.CONFUSION_MATRIX_PATH "$CONF_MAT"
      OUTPUT_DIR "$OUTPUT_DIR")
[ -n "$SEED" ] && ARGS+=(SEED "$SEED")
run_tool tools/relation_train_net.py "${ARGS[@]}" "$@"
