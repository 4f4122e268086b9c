#!/usr/bin/env bash
# One run of the CCE paper's recipe (Huang et al., ACCV 2020; docs/linknet_cce.md) in one protocol.
# Usage: bash scripts/linknet/train.sh VARIANT PROTOCOL DETECTOR_CKPT [KEY VALUE ...]
#   VARIANT:  linknet_ce          LinkNet with cross-entropy                  -> $OUTPUT_ROOT/LinkNet_CE/PROTOCOL
#             linknet_cce_ranker  LinkNet + CCE + Ranker, fine-tuned from CE  -> $OUTPUT_ROOT/LinkNet_CCE_Ranker/PROTOCOL
#             motif_cce_ranker    Motif + CCE + Ranker, fine-tuned from CE    -> $OUTPUT_ROOT/Motif_CCE_Ranker/PROTOCOL
#   PROTOCOL: predcls | sgcls | sgdet
# Environment: DATASET synthetic (default) | vglike | vg150, OUTPUT_ROOT (default output/$DATASET), NPROC (torchrun), PYTHON,
#   CE_CKPT  the CE checkpoint the *_cce_ranker variants fine-tune from (MODEL.WEIGHT), as the paper's train_sg.sh;
#            default $OUTPUT_ROOT/LinkNet_CE/PROTOCOL/model_final.pth (LinkNet) or
#            $OUTPUT_ROOT/MotifPredictor/PROTOCOL/model_final.pth (Motif, scripts/train_relation.sh's folder);
#            CE_CKPT=none starts from the detector alone (the paper README's variant).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
DATASET=${DATASET:-synthetic}
OUTPUT_ROOT=${OUTPUT_ROOT:-output/$DATASET}
VARIANT=${1:?variant: linknet_ce, linknet_cce_ranker or motif_cce_ranker}
PROTOCOL=${2:?protocol: predcls, sgcls or sgdet}
DETECTOR=${3:?detector checkpoint, e.g. output/qt/detector/model_final.pth}
shift 3
source scripts/lib.sh
protocol_switches "$PROTOCOL"
dataset_data "$DATASET"
case "$DATASET" in
  synthetic|vglike) CONFIG_DIR=configs/synthetic ;;
  vg150)     CONFIG_DIR=configs/linknet ;;
  *) unknown_dataset ;;
esac
case "$VARIANT" in
  linknet_ce)         NAME=LinkNet_CE;         CE_DEFAULT="" ;;
  linknet_cce_ranker) NAME=LinkNet_CCE_Ranker; CE_DEFAULT="$OUTPUT_ROOT/LinkNet_CE/$PROTOCOL/model_final.pth" ;;
  motif_cce_ranker)   NAME=Motif_CCE_Ranker;   CE_DEFAULT="$OUTPUT_ROOT/MotifPredictor/$PROTOCOL/model_final.pth" ;;
  *) echo "unknown variant '$VARIANT': use linknet_ce, linknet_cce_ranker or motif_cce_ranker" >&2; exit 2 ;;
esac
ARGS=(--config-file "$CONFIG_DIR/$VARIANT.yaml" "${DATA[@]}" "${SWITCHES[@]}" MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR"
      OUTPUT_DIR "$OUTPUT_ROOT/$NAME/$PROTOCOL")
if [ -n "$CE_DEFAULT" ]; then
  START=${CE_CKPT:-$CE_DEFAULT}
  if [ "$START" != "none" ]; then
    if [ ! -f "$START" ]; then
      echo "$VARIANT fine-tunes from a CE checkpoint, and $START does not exist: train it first" \
           "(bash scripts/linknet/train.sh linknet_ce $PROTOCOL ... or bash scripts/train_relation.sh MotifPredictor" \
           "$PROTOCOL ...), point CE_CKPT at one, or set CE_CKPT=none to start from the detector" >&2
      exit 2
    fi
    ARGS+=(MODEL.WEIGHT "$START")
  fi
fi
run_tool tools/relation_train_net.py "${ARGS[@]}" "$@"
