#!/usr/bin/env bash
# One command from a fresh clone: install, generate the synthetic Visual Genome, pre-train the tiny-FPN detector,
# then train and evaluate the Transformer relation head in PredCls, SGCls and SGDet, printing SGB's result tables.
# Usage: bash scripts/quickstart.sh [OUTPUT_ROOT]        (default output/quickstart; README gives the measured time)
set -euo pipefail
cd "$(dirname "$0")/.."
export OUTPUT_ROOT=${1:-output/quickstart}
export DATASET=synthetic
PYTHON=${PYTHON:-python}
bash scripts/setup_env.sh
if [ ! -f datasets/synthetic_vg/VG-SGG-with-attri.h5 ]; then
  "$PYTHON" tools/make_synthetic_vg.py --output-dir datasets/synthetic_vg
fi
"$PYTHON" tools/dataset_info.py --config-file configs/synthetic/relation_predcls.yaml OUTPUT_DIR "$OUTPUT_ROOT/dataset"
# Two quick-start settings for the relation runs, which cut their CPU time about in half (BENCHMARKS.md, "Relation
# heads on synthetic VG"): no validation passes (the test split evaluates the final model either way, so the tables
# do not change), and union features RoIAligned on each union box's own FPN level (SGB's POOLING_ALL_LEVELS False)
# instead of on all four levels plus a 3x3 conv, which dominated SGDet's test with its 992 pairs per image.
QUICK_RELATION_OPTS=(SOLVER.TO_VAL False SOLVER.PRE_VAL False MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS False)
bash scripts/pipeline.sh TransformerPredictor "${QUICK_RELATION_OPTS[@]}"
