#!/usr/bin/env bash
# The whole synthetic-VG comparison in one command: data (if missing), detector (if missing), every experiment of
# configs/benchmark_synthetic.yaml, then output/benchmark/benchmark.md. Finished runs are skipped on a re-run.
# Usage: bash scripts/benchmark_synthetic.sh [--only NAME ...] [--protocols ...] [KEY VALUE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
if [ ! -f datasets/synthetic_vg/VG-SGG-with-attri.h5 ]; then
  "$PYTHON" tools/make_synthetic_vg.py --output-dir datasets/synthetic_vg
fi
"$PYTHON" tools/run_benchmark.py --experiments "${EXPERIMENTS:-configs/benchmark_synthetic.yaml}" \
  --output-root "${OUTPUT_ROOT:-output/benchmark}" "$@"
