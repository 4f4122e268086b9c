#!/usr/bin/env bash
# VCTreePredictor in predcls: bash scripts/vctree/train_predcls.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" VCTreePredictor predcls "$@"
