#!/usr/bin/env bash
# MotifPredictor in sgdet: bash scripts/motifs/train_sgdet.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vglike|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" MotifPredictor sgdet "$@"
