#!/usr/bin/env bash
# The three ReBalance-HCA rows in the three protocols (docs/hca.md):
#   HCA_CE (3 protocols) -> confusion matrix of HCA_CE/predcls on the train split -> HCA_CDL (3 protocols)
#   -> HCA_CDL_BASGG (BA-SGG stage 2 from each HCA_CDL model).   Finished runs (model_final.pth present) are skipped.
# Usage: OUTPUT_ROOT=output/qt bash scripts/hca/run_all.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET, NPROC as train.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
DETECTOR=${1:?detector checkpoint, e.g. output/qt/detector/model_final.pth}
shift
export DATASET=${DATASET:-synthetic}
export OUTPUT_ROOT=${OUTPUT_ROOT:-output/$DATASET}
source scripts/lib.sh
run() {  # VARIANT NAME PROTOCOL [KEY VALUE ...]
  local variant=$1 name=$2 protocol=$3
  shift 3
  run_unless_done "$OUTPUT_ROOT/$name/$protocol" bash scripts/hca/train.sh "$variant" "$protocol" "$DETECTOR" "$@"
}
for protocol in predcls sgcls sgdet; do run ce HCA_CE "$protocol" "$@"; done
bash scripts/hca/confusion_matrix.sh "$@"
for protocol in predcls sgcls sgdet; do run cdl HCA_CDL "$protocol" "$@"; done
for protocol in predcls sgcls sgdet; do run two_stage HCA_CDL_BASGG "$protocol" "$@"; done
"${PYTHON:-python}" benchmarks/relation_table.py "$OUTPUT_ROOT"
