#!/usr/bin/env bash
# The predicate confusion matrix the cdl loss needs (docs/hca.md): BA-SGG's tools/relation_confusion_matrix.py runs
# the trained HCA CE PredCls model over the training split and writes C[GT predicate, argmax foreground prediction].
# Usage: bash scripts/hca/confusion_matrix.sh [KEY VALUE ...]
#   RUN (env)       the trained run; default $OUTPUT_ROOT/HCA_CE/predcls (OUTPUT_ROOT default output/$DATASET)
#   CONF_MAT (env)  where the matrix must end up; default $RUN/conf_mat_freq_train.npy (what train.sh reads)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
DATASET=${DATASET:-synthetic}
OUTPUT_ROOT=${OUTPUT_ROOT:-output/$DATASET}
RUN=${RUN:-$OUTPUT_ROOT/HCA_CE/predcls}
CONF_MAT=${CONF_MAT:-$RUN/conf_mat_freq_train.npy}
if [ -f "$CONF_MAT" ]; then
  echo "== confusion matrix $CONF_MAT exists, kept"
  exit 0
fi
for f in "$RUN/config.yaml" "$RUN/model_final.pth"; do
  [ -f "$f" ] || { echo "confusion matrix: $f does not exist; train the PredCls model first" \
                        "(bash scripts/hca/train.sh ce predcls DETECTOR_CKPT)" >&2; exit 2; }
done
"$PYTHON" tools/relation_confusion_matrix.py --config-file "$RUN/config.yaml" \
  MODEL.WEIGHT "$RUN/model_final.pth" OUTPUT_DIR "$RUN" "$@"
[ -f "$CONF_MAT" ] || { echo "confusion matrix: tools/relation_confusion_matrix.py did not write $CONF_MAT" >&2; exit 2; }
echo "== confusion matrix: $CONF_MAT"
