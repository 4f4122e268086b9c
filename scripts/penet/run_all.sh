#!/usr/bin/env bash
# The PE-Net, PE-Net + reweight and SPL rows in the three protocols (docs/penet_spl.md):
#   PENet, PENet_Reweight (3 protocols) -> SPL prototypes (needs the TransformerPredictor PredCls run) -> SPL.
#   Finished runs (model_final.pth and results.json present) are skipped. SPL_CE too when WITH_SPL_CE=1.
# Usage: OUTPUT_ROOT=output/qt bash scripts/penet/run_all.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET, NPROC as train.sh)
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
  run_unless_done "$OUTPUT_ROOT/$name/$protocol" bash scripts/penet/train.sh "$variant" "$protocol" "$DETECTOR" "$@"
}
for protocol in predcls sgcls sgdet; do run penet PENet "$protocol" "$@"; done
for protocol in predcls sgcls sgdet; do run penet_reweight PENet_Reweight "$protocol" "$@"; done
BASELINE=${BASELINE:-$OUTPUT_ROOT/TransformerPredictor/predcls}
if [ ! -f "$BASELINE/model_final.pth" ]; then
  echo "== baseline $BASELINE for the visual prototypes"
  bash scripts/train_relation.sh TransformerPredictor predcls "$DETECTOR"
fi
bash scripts/penet/prototypes.sh
for protocol in predcls sgcls sgdet; do run spl SPL "$protocol" "$@"; done
if [ "${WITH_SPL_CE:-0}" = 1 ]; then
  for protocol in predcls sgcls sgdet; do run spl_ce SPL_CE "$protocol" "$@"; done
fi
"${PYTHON:-python}" benchmarks/relation_table.py "$OUTPUT_ROOT"
