#!/usr/bin/env bash
# Causal TDE (docs/causal_tde.md) as SGB's README: train with EFFECT_TYPE none (the training run's own test gives
# the factual "none" numbers in OUTPUT_DIR/inference), then test the same weights with EFFECT_TYPE TDE (or EFFECT,
# below) in OUTPUT_DIR/EFFECT/inference.
# Usage: bash scripts/causal/train.sh PROTOCOL DETECTOR_CKPT [KEY VALUE ...]   (overrides go to both runs)
#   PROTOCOL  predcls | sgcls | sgdet.   DATASET (env): synthetic (default), vglike or vg150.  NPROC (env): torchrun.
#   CONTEXT (env) motifs (default) | vctree | vtranse;  FUSION (env) sum (default) | gate;  EFFECT (env) TDE | NIE | TE.
#   OUTPUT_DIR: $OUTPUT_ROOT/Causal_<CONTEXT>_<FUSION>/PROTOCOL (OUTPUT_ROOT default output/$DATASET).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
DATASET=${DATASET:-synthetic}
OUTPUT_ROOT=${OUTPUT_ROOT:-output/$DATASET}
CONTEXT=${CONTEXT:-motifs}
FUSION=${FUSION:-sum}
EFFECT=${EFFECT:-TDE}
PROTOCOL=${1:?protocol: predcls, sgcls or sgdet}
DETECTOR=${2:?detector checkpoint, e.g. output/qt/detector/model_final.pth}
shift 2
source scripts/lib.sh
protocol_switches "$PROTOCOL"
dataset_data "$DATASET"
case "$DATASET" in
  synthetic|vglike) CONFIG=configs/synthetic/causal_motifs.yaml ;;
  vg150)            CONFIG=configs/causal/causal_motifs.yaml ;;
  *) unknown_dataset ;;
esac
OUT=$OUTPUT_ROOT/Causal_${CONTEXT}_${FUSION}/$PROTOCOL
HEAD=MODEL.ROI_RELATION_HEAD
CAUSAL=("$HEAD.PREDICTOR" CausalAnalysisPredictor "$HEAD.CAUSAL.CONTEXT_LAYER" "$CONTEXT"
        "$HEAD.CAUSAL.FUSION_TYPE" "$FUSION")
run_tool tools/relation_train_net.py --config-file "$CONFIG" "${DATA[@]}" "${SWITCHES[@]}" "${CAUSAL[@]}" \
  "$HEAD.CAUSAL.EFFECT_TYPE" none MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR" OUTPUT_DIR "$OUT" "$@"
run_tool tools/relation_test_net.py --config-file "$CONFIG" "${DATA[@]}" "${SWITCHES[@]}" "${CAUSAL[@]}" \
  "$HEAD.CAUSAL.EFFECT_TYPE" "$EFFECT" MODEL.WEIGHT "$OUT/model_final.pth" OUTPUT_DIR "$OUT/$EFFECT" "$@"
