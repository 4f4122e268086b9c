#!/usr/bin/env bash
# TransformerPredictor in sgdet: bash scripts/transformer/train_sgdet.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vglike|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" TransformerPredictor sgdet "$@"
