#!/usr/bin/env bash
# FrequencyPredictor in sgdet: bash scripts/freq/train_sgdet.sh DETECTOR_CKPT [KEY VALUE ...]   (DATASET=synthetic|vglike|vg150, NPROC)
exec bash "$(dirname "$0")/../train_relation.sh" FrequencyPredictor sgdet "$@"
