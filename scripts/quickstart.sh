#!/usr/bin/env bash
# One command from a fresh clone: install, generate the synthetic Visual Genome, pre-train the tiny-FPN detector,
# then train and evaluate the Transformer relation head in PredCls, SGCls and SGDet, printing SGB's result tables.
# Usage: bash scripts/quickstart.sh [OUTPUT_ROOT]        (default output/quickstart; about 18 minutes on 2 CPU cores)
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
bash scripts/pipeline.sh TransformerPredictor
