#!/usr/bin/env bash
# Train (then test) IterativeSG in SGDet (docs/iterative_sg.md). One process, or torchrun when NPROC > 1.
# Usage: bash scripts/iterative_sg/train.sh [DETECTOR_CKPT] [KEY VALUE ...]
#   DETECTOR_CKPT: a detector checkpoint whose backbone starts the model ("" = ImageNet/random backbone weights).
#   DATASET (env): synthetic (default, configs/synthetic/iterative_sg.yaml) or vg150 (configs/iterative_sg/vg150_R101.yaml)
#   NAME (env): the run's folder, default IterativeSG; output goes to ${OUTPUT_ROOT:-output/$DATASET}/$NAME/sgdet
#   OUTPUT_ROOT=output/qt bash scripts/iterative_sg/train.sh output/qt/detector/model_final.pth
#   NAME=IterativeSG_noreweight bash scripts/iterative_sg/train.sh ckpt.pth MODEL.DETR.REWEIGHT_RELATIONS False
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
DATASET=${DATASET:-synthetic}
NAME=${NAME:-IterativeSG}
DETECTOR=${1:-}
shift || true
case "$DATASET" in
  synthetic) CONFIG=configs/synthetic/iterative_sg.yaml ;;
  vg150)     CONFIG=configs/iterative_sg/vg150_R101.yaml ;;
  *) echo "unknown DATASET '$DATASET': use synthetic or vg150" >&2; exit 2 ;;
esac
ARGS=(--config-file "$CONFIG" OUTPUT_DIR "${OUTPUT_ROOT:-output/$DATASET}/$NAME/sgdet")
[ -n "$DETECTOR" ] && ARGS+=(MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR")
if [ "$NPROC" -gt 1 ]; then
  "$PYTHON" -m torch.distributed.run --nproc_per_node "$NPROC" --master_port "${PORT:-29500}" \
    tools/relation_train_net.py "${ARGS[@]}" "$@"
else
  "$PYTHON" tools/relation_train_net.py "${ARGS[@]}" "$@"
fi
