#!/usr/bin/env bash
# TransformerPredictor in predcls: bash scripts/transformer/train_predcls.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vglike|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" TransformerPredictor predcls "$@"
