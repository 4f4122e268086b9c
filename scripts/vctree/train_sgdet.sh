#!/usr/bin/env bash
# VCTreePredictor in sgdet: bash scripts/vctree/train_sgdet.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" VCTreePredictor sgdet "$@"
