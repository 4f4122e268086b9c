#!/usr/bin/env bash
# TransformerPredictor in sgcls: bash scripts/transformer/train_sgcls.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vglike|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" TransformerPredictor sgcls "$@"
