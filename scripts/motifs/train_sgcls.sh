#!/usr/bin/env bash
# MotifPredictor in sgcls: bash scripts/motifs/train_sgcls.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vglike|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" MotifPredictor sgcls "$@"
