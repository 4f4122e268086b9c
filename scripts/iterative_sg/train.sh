#!/usr/bin/env bash
# IterativeSG in SGDet (docs/iterative_sg.md): DETR pre-training on the dataset's objects (once; skipped when its
# checkpoint exists), then IterativeSG started from it, as the reference starts from a VG-pretrained DETR.
# One process, or torchrun when NPROC > 1.
# Usage: bash scripts/iterative_sg/train.sh [DETECTOR_CKPT] [KEY VALUE ...]
#   DETECTOR_CKPT: a Faster R-CNN checkpoint whose backbone starts the DETR ("" = ImageNet/random backbone weights)
#   DATASET (env): synthetic (default: configs/synthetic/detr.yaml, iterative_sg.yaml), vglike (the same yamls on
#                  the VG-like profile: scripts/lib.sh's VGLIKE_DATA) or vg150
#                  (configs/iterative_sg/vg150_detr_R101.yaml, vg150_R101.yaml)
#   DETR_CKPT (env): auto (default: $DETR_DIR/model_final.pth, trained if missing), a DETR checkpoint to start
#                  from, or none (no DETR: IterativeSG starts from DETECTOR_CKPT's backbone alone)
#   NAME (env): the run's folder, default IterativeSG; output goes to RUN_DIR (env), default <root>/$NAME/sgdet,
#                  <root> = ${OUTPUT_ROOT:-output/$DATASET}; the DETR to DETR_DIR (env), default <root>/DETR.
#   KEY VALUE pairs go to both stages (data paths, schedules); DETR_OPTS (env, "KEY VALUE ...") to the DETR stage
#                  only, after them (e.g. its own schedule when the pairs set IterativeSG's).
#   OUTPUT_ROOT=output/qt bash scripts/iterative_sg/train.sh output/qt/detector/model_final.pth
#   NAME=IterativeSG_noreweight bash scripts/iterative_sg/train.sh ckpt.pth MODEL.DETR.REWEIGHT_RELATIONS False
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
DATASET=${DATASET:-synthetic}
NAME=${NAME:-IterativeSG}
ROOT=${OUTPUT_ROOT:-output/$DATASET}
RUN_DIR=${RUN_DIR:-$ROOT/$NAME/sgdet}
DETR_DIR=${DETR_DIR:-$ROOT/DETR}
DETECTOR=${1:-}
shift || true
source scripts/lib.sh
case "$DATASET" in
  synthetic|vglike) DETR_CONFIG=configs/synthetic/detr.yaml; CONFIG=configs/synthetic/iterative_sg.yaml ;;
  vg150)     DETR_CONFIG=configs/iterative_sg/vg150_detr_R101.yaml; CONFIG=configs/iterative_sg/vg150_R101.yaml ;;
  *) unknown_dataset ;;
esac
dataset_data "$DATASET"

DETR_CKPT=${DETR_CKPT:-auto}
case "$DETR_CKPT" in
  none) START=$DETECTOR ;;
  auto)
    START=$DETR_DIR/model_final.pth
    if [ ! -f "$START" ]; then
      echo "== DETR pre-training -> $DETR_DIR" >&2
      DETR_ARGS=(--config-file "$DETR_CONFIG" "${DATA[@]}" OUTPUT_DIR "$DETR_DIR")
      [ -n "$DETECTOR" ] && DETR_ARGS+=(MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR")
      read -r -a DETR_EXTRA <<< "${DETR_OPTS:-}"
      run_tool tools/detector_pretrain_net.py "${DETR_ARGS[@]}" "$@" "${DETR_EXTRA[@]}"
    fi ;;
  *)
    [ -f "$DETR_CKPT" ] || { echo "DETR_CKPT $DETR_CKPT does not exist (use auto, none or a checkpoint)" >&2; exit 2; }
    START=$DETR_CKPT ;;
esac

ARGS=(--config-file "$CONFIG" "${DATA[@]}" OUTPUT_DIR "$RUN_DIR")
[ -n "$START" ] && ARGS+=(MODEL.PRETRAINED_DETECTOR_CKPT "$START")
run_tool tools/relation_train_net.py "${ARGS[@]}" "$@"
