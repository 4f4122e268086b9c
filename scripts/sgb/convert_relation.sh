#!/usr/bin/env bash
# A trained SGB relation model (its model_final.pth: detector + relation head) as this framework's checkpoint, then
# its VG150 test with tools/relation_test_net.py (docs/detector.md, "SGB checkpoints"):
#   bash scripts/sgb/convert_relation.sh PREDICTOR PROTOCOL SGB_CKPT OUTPUT.pth [KEY VALUE ...]
# PREDICTOR: the SGB run's (MotifPredictor, TransformerPredictor, VCTreePredictor, IMPPredictor or
# CausalAnalysisPredictor, with its CAUSAL keys among the options); PROTOCOL: predcls, sgcls or sgdet. The options
# must give the SGB run's sizes where they differ from configs/e2e_relation_X_101_32_8_FPN_1x.yaml.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
protocol_switches "${2:-}"
if [ $# -lt 4 ]; then
  echo "usage: bash scripts/sgb/convert_relation.sh PREDICTOR PROTOCOL SGB_CKPT OUTPUT.pth [KEY VALUE ...]" >&2
  exit 2
fi
predictor=$1
sgb_checkpoint=$3
output=$4
shift 4
PYTHON=${PYTHON:-python}
config=configs/e2e_relation_X_101_32_8_FPN_1x_sgb_detector.yaml
opts=(MODEL.ROI_RELATION_HEAD.PREDICTOR "$predictor" "${SWITCHES[@]}" "$@")
"$PYTHON" tools/convert_sgb_checkpoint.py --sgb-checkpoint "$sgb_checkpoint" --output "$output" \
  --config-file "$config" "${opts[@]}"
# a fresh OUTPUT_DIR: the test tool would prefer a last_checkpoint found there over MODEL.WEIGHT
"$PYTHON" tools/relation_test_net.py --config-file "$config" "${opts[@]}" MODEL.WEIGHT "$output" \
  OUTPUT_DIR "${output%.pth}_test"
