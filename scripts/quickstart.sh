#!/usr/bin/env bash
# One command from a fresh clone: install, generate the synthetic Visual Genome, pre-train the tiny-FPN detector,
# then train and evaluate the Transformer relation head in PredCls, SGCls and SGDet, printing SGB's result tables.
# Usage: bash scripts/quickstart.sh [OUTPUT_ROOT]        (default output/quickstart; README gives its time)
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
# The detector of BENCHMARKS.md (same config) without its validation pass: the test split's AP is printed either way.
DETECTOR_DIR="$OUTPUT_ROOT/detector"
if [ ! -f "$DETECTOR_DIR/model_final.pth" ]; then
  echo "== detector pre-training (configs/synthetic/detector_tiny_fpn.yaml) -> $DETECTOR_DIR"
  bash scripts/train_detector.sh configs/synthetic/detector_tiny_fpn.yaml OUTPUT_DIR "$DETECTOR_DIR" SOLVER.TO_VAL False
fi
# Quick-start settings of the relation runs, which cut their CPU time by about half (BENCHMARKS.md, "The quick
# start"): no validation passes (the test split evaluates the final model either way); union features RoIAligned
# on each union box's own FPN level (SGB's POOLING_ALL_LEVELS False) instead of on all four levels plus a 3x3 conv;
# 24 SGDet detections per image instead of 32 (3x the at most 8 objects of a synthetic image), so 552 candidate
# pairs instead of 992. PredCls and SGCls take GT boxes, so the detection count only changes SGDet.
QUICK_RELATION_OPTS=(SOLVER.TO_VAL False SOLVER.PRE_VAL False MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS False
                     MODEL.ROI_HEADS.DETECTIONS_PER_IMG 24)
relation() {
  echo "== TransformerPredictor $1 (log: $OUTPUT_ROOT/TransformerPredictor/$1.log)"
  bash scripts/train_relation.sh TransformerPredictor "$1" "$DETECTOR_DIR/model_final.pth" "${QUICK_RELATION_OPTS[@]}" \
    > "$OUTPUT_ROOT/TransformerPredictor/$1.log" 2>&1
}
# The three relation runs need only the frozen detector, so they share the cores in two lanes: SGDet alone, PredCls
# then SGCls: a second thread gained a relation run little (BENCHMARKS.md, "The quick start"), a second process
# on the other core should gain more.
THREADS=$(( $(nproc) / 2 > 1 ? $(nproc) / 2 : 1 ))
mkdir -p "$OUTPUT_ROOT/TransformerPredictor"
OMP_NUM_THREADS=$THREADS relation sgdet &
sgdet_lane=$!
(OMP_NUM_THREADS=$THREADS relation predcls && OMP_NUM_THREADS=$THREADS relation sgcls) &
gt_box_lane=$!
failed=0
wait "$sgdet_lane" || failed=1
wait "$gt_box_lane" || failed=1
echo "== results"
for protocol in predcls sgcls sgdet; do
  result="$OUTPUT_ROOT/TransformerPredictor/$protocol/inference/SyntheticVG_test/results.txt"
  if [ -f "$result" ]; then
    echo "-- $protocol: $result"
    cat "$result"
  else
    echo "-- $protocol: no results; the end of $OUTPUT_ROOT/TransformerPredictor/$protocol.log:" >&2
    tail -n 20 "$OUTPUT_ROOT/TransformerPredictor/$protocol.log" >&2 || true
    failed=1
  fi
done
exit "$failed"
