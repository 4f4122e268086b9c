#!/usr/bin/env bash
# FrequencyPredictor in predcls: bash scripts/freq/train_predcls.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vglike|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" FrequencyPredictor predcls "$@"
