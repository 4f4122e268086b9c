#!/usr/bin/env bash
# The benchmark rows of the CCE paper's recipe in the three protocols: LinkNet (CE), then LinkNet + CCE + Ranker and
# Motif + CCE + Ranker, each fine-tuned from its CE model (Motif's CE run is trained first when it is missing).
# Usage: bash scripts/linknet/run_all.sh DETECTOR_CKPT [KEY VALUE ...]    (DATASET, OUTPUT_ROOT, NPROC as train.sh)
#   OUTPUT_ROOT=output/qt bash scripts/linknet/run_all.sh output/qt/detector/model_final.pth
set -euo pipefail
cd "$(dirname "$0")/../.."
DETECTOR=${1:?detector checkpoint}
shift
DATASET=${DATASET:-synthetic}
export DATASET OUTPUT_ROOT=${OUTPUT_ROOT:-output/$DATASET}
for PROTOCOL in predcls sgcls sgdet; do
  [ -f "$OUTPUT_ROOT/LinkNet_CE/$PROTOCOL/model_final.pth" ] || \
    bash scripts/linknet/train.sh linknet_ce "$PROTOCOL" "$DETECTOR" "$@"
  bash scripts/linknet/train.sh linknet_cce_ranker "$PROTOCOL" "$DETECTOR" "$@"
  if [ ! -f "$OUTPUT_ROOT/MotifPredictor/$PROTOCOL/model_final.pth" ]; then
    bash scripts/train_relation.sh MotifPredictor "$PROTOCOL" "$DETECTOR" "$@"
  fi
  bash scripts/linknet/train.sh motif_cce_ranker "$PROTOCOL" "$DETECTOR" "$@"
done
