#!/usr/bin/env bash
# VCTreePredictor in sgcls: bash scripts/vctree/train_sgcls.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" VCTreePredictor sgcls "$@"
