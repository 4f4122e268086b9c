#!/usr/bin/env bash
# ReBalance-HCA runs (docs/hca.md), one variant in one protocol.
# Usage: bash scripts/hca/train.sh VARIANT PROTOCOL DETECTOR_CKPT [KEY VALUE ...]
#   VARIANT   ce        HCA with cross-entropy                        -> $OUTPUT_ROOT/HCA_CE/PROTOCOL
#             cdl       HCA + predicate reweighting (cdl loss)        -> $OUTPUT_ROOT/HCA_CDL/PROTOCOL
#             two_stage HCA + reweighting, BA-SGG stage 2 (clean classifier on the BPL split, the rest frozen),
#                       from the cdl model of the same protocol       -> $OUTPUT_ROOT/HCA_CDL_BASGG/PROTOCOL
#   PROTOCOL  predcls | sgcls | sgdet.   DATASET (env): synthetic (default), vglike or vg150.  NPROC (env): torchrun.
#   CONF_MAT (env)  confusion matrix for cdl / two_stage; default $OUTPUT_ROOT/HCA_CE/predcls/conf_mat_freq_train.npy
#                   (scripts/hca/confusion_matrix.sh writes it)
#   STAGE1 (env)    stage-1 weights for two_stage; default $OUTPUT_ROOT/HCA_CDL/PROTOCOL/model_final.pth
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
DATASET=${DATASET:-synthetic}
OUTPUT_ROOT=${OUTPUT_ROOT:-output/$DATASET}
VARIANT=${1:?variant: ce, cdl or two_stage}
PROTOCOL=${2:?protocol: predcls, sgcls or sgdet}
DETECTOR=${3:?detector checkpoint, e.g. output/qt/detector/model_final.pth}
shift 3
CONF_MAT=${CONF_MAT:-$OUTPUT_ROOT/HCA_CE/predcls/conf_mat_freq_train.npy}
STAGE1=${STAGE1:-$OUTPUT_ROOT/HCA_CDL/$PROTOCOL/model_final.pth}
source scripts/lib.sh
protocol_switches "$PROTOCOL"
dataset_data "$DATASET"
case "$DATASET" in
  synthetic|vglike) CONFIG_DIR=configs/synthetic; PREFIX=hca_ ;;
  vg150)     CONFIG_DIR=configs/hca; PREFIX=hca_ ;;
  *) unknown_dataset ;;
esac
need_file() {
  [ -f "$1" ] || { echo "$VARIANT needs $2: $1 does not exist ($3)" >&2; exit 2; }
}
case "$VARIANT" in
  ce)  NAME=HCA_CE; CONFIG=$CONFIG_DIR/${PREFIX}ce.yaml; METHOD=() ;;
  cdl) NAME=HCA_CDL; CONFIG=$CONFIG_DIR/${PREFIX}cdl.yaml
       need_file "$CONF_MAT" "the predicate confusion matrix (CONF_MAT)" "run scripts/hca/confusion_matrix.sh first"
       METHOD=(MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH "$CONF_MAT") ;;
  two_stage)
       NAME=HCA_CDL_BASGG; CONFIG=$CONFIG_DIR/${PREFIX}cdl_basgg.yaml
       need_file "$CONF_MAT" "the predicate confusion matrix (CONF_MAT)" "run scripts/hca/confusion_matrix.sh first"
       need_file "$STAGE1" "the stage-1 weights (STAGE1)" "train the cdl variant in $PROTOCOL first"
       # BA-SGG stage 2 (hca_cdl_basgg.yaml: clean classifier, BPL split, transfer off as ReBalance-HCA's scripts)
       METHOD=(MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH "$CONF_MAT" MODEL.PRETRAINED_MODEL_CKPT "$STAGE1") ;;
  *) echo "unknown variant '$VARIANT': use ce, cdl or two_stage" >&2; exit 2 ;;
esac
ARGS=(--config-file "$CONFIG" "${DATA[@]}" "${SWITCHES[@]}" "${METHOD[@]}" MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR"
      OUTPUT_DIR "$OUTPUT_ROOT/$NAME/$PROTOCOL")
run_tool tools/relation_train_net.py "${ARGS[@]}" "$@"
