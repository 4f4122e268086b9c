#!/usr/bin/env bash
# FrequencyPredictor in sgcls: bash scripts/freq/train_sgcls.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vglike|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" FrequencyPredictor sgcls "$@"
