#!/usr/bin/env bash
# One command from a fresh clone: install, generate the synthetic Visual Genome, and run the main job on it.
# Usage: bash scripts/quickstart.sh [OUTPUT_DIR]        (default output/quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-output/quickstart}
PYTHON=${PYTHON:-python}
bash scripts/setup_env.sh
if [ ! -f datasets/synthetic_vg/VG-SGG-with-attri.h5 ]; then
  "$PYTHON" tools/make_synthetic_vg.py --output-dir datasets/synthetic_vg
fi
"$PYTHON" tools/dataset_info.py --config-file configs/synthetic/relation_predcls.yaml OUTPUT_DIR "$OUT"
