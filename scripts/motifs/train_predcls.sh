#!/usr/bin/env bash
# MotifPredictor in predcls: bash scripts/motifs/train_predcls.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vglike|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" MotifPredictor predcls "$@"
