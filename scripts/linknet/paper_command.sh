#!/usr/bin/env bash
# Exactly the CCE paper's training command (stevehuanghe/scene_graph README / train_sg.sh) on VG150:
#   train_rels.py -m sgcls -model linknet -b 10 -clip 5 -p 100 -hidden_dim 256 -pooling_dim 4096 -lr 1e-4 -ngpu 1
#                 -ckpt <detector> -save_dir <dir> -nepoch 30 -use_bias -loss cce -lambda1 100 -lambda2 1 -m1 0
#                 -use_rank
# through tools/relation_train_net.py, every flag spelled out as its config key (table: docs/linknet_cce.md). The
# reference code's implicit settings (SGD momentum 0.9, -l2 1e-5, 256 pairs per image, plateau on val mR@100, ...)
# come from configs/linknet/linknet_cce_ranker.yaml.
# Usage: bash scripts/linknet/paper_command.sh DETECTOR_CKPT SAVE_DIR [CE_CKPT] [KEY VALUE ...]
#   CE_CKPT: a CE-trained LinkNet SGCls checkpoint to fine-tune from (train_sg.sh's -ckpt .../vgrel-9.tar);
#            "" or none = from the detector (the README's -ckpt <detector>).
# Environment: NGPU (-ngpu, default 1; torchrun over NGPU processes, 10 images each), ITERS_PER_EPOCH (default:
#   ceil(training images / 10), counted from the dataset), DRY_RUN=1 prints the command instead of running it, PYTHON.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
NGPU=${NGPU:-1}
DETECTOR=${1:?detector checkpoint (-ckpt)}
SAVE_DIR=${2:?output folder (-save_dir)}
CE_CKPT=${3:-}
shift 2
[ $# -gt 0 ] && shift
CONFIG=configs/linknet/linknet_cce_ranker.yaml
BATCH=$((10 * NGPU))                                       # -b 10 is per GPU; IMS_PER_BATCH is the global batch
if [ -z "${ITERS_PER_EPOCH:-}" ]; then
  ITERS_PER_EPOCH=$("$PYTHON" - "$CONFIG" "$BATCH" "$@" <<'PY'
import math, os, sys
sys.path.insert(0, os.getcwd())
from sgg.config import load_config
from sgg.data.build import build_datasets
config, batch, opts = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
cfg = load_config(config, opts + ["DATASETS.CHECK_IMAGES", "False"])
print(math.ceil(sum(len(d) for d in build_datasets(cfg, "train")) / batch))
PY
)
fi
ARGS=(--config-file "$CONFIG"
  MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False   # -m sgcls
  MODEL.ROI_RELATION_HEAD.PREDICTOR LinkNetPredictor                                          # -model linknet
  SOLVER.IMS_PER_BATCH "$BATCH"                                                               # -b 10 (x -ngpu)
  SOLVER.GRAD_NORM_CLIP 5.0                                                                   # -clip 5
  SOLVER.LOG_PERIOD 100                                                                       # -p 100
  MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM 256                                              # -hidden_dim 256
  MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM 4096                                            # -pooling_dim 4096
  SOLVER.BASE_LR 0.0001 SOLVER.SCALE_LR_BY_BATCH True                                         # -lr 1e-4 (x batch)
  MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR"                                                  # -ckpt <detector>
  OUTPUT_DIR "$SAVE_DIR"                                                                      # -save_dir <dir>
  SOLVER.MAX_ITER $((30 * ITERS_PER_EPOCH))                                                   # -nepoch 30
  SOLVER.VAL_PERIOD "$ITERS_PER_EPOCH" SOLVER.CHECKPOINT_PERIOD "$ITERS_PER_EPOCH"            # per epoch
  MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS True                                               # -use_bias
  MODEL.ROI_RELATION_HEAD.LOSS '("cce", "ObjectCE", "gce", "ranker")'                         # -loss cce (+ rank)
  MODEL.ROI_RELATION_HEAD.CCE.LAMBDA1 100.0                                                   # -lambda1 100
  MODEL.ROI_RELATION_HEAD.RANKER.LAMBDA2 1.0                                                  # -lambda2 1
  MODEL.ROI_RELATION_HEAD.CCE.MARGIN_M1 0.0                                                   # -m1 0
  MODEL.ROI_RELATION_HEAD.RESCORER Ranker)                                                    # -use_rank
if [ -n "$CE_CKPT" ] && [ "$CE_CKPT" != none ]; then
  ARGS+=(MODEL.WEIGHT "$CE_CKPT")                          # train_sg.sh: -ckpt <CE LinkNet checkpoint>
fi
if [ "$NGPU" -gt 1 ]; then
  COMMAND=("$PYTHON" -m torch.distributed.run --nproc_per_node "$NGPU" --master_port "${PORT:-29500}"
           tools/relation_train_net.py "${ARGS[@]}" "$@")
else
  COMMAND=("$PYTHON" tools/relation_train_net.py "${ARGS[@]}" "$@")
fi
if [ "${DRY_RUN:-0}" = 1 ]; then printf '%q ' "${COMMAND[@]}"; echo; else "${COMMAND[@]}"; fi
