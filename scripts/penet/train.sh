#!/usr/bin/env bash
# PE-Net / SPL runs (docs/penet_spl.md), one variant in one protocol.
# Usage: bash scripts/penet/train.sh VARIANT PROTOCOL DETECTOR_CKPT [KEY VALUE ...]
#   VARIANT   penet           PE-Net with its prototype losses               -> $OUTPUT_ROOT/PENet/PROTOCOL
#             penet_reweight  PE-Net + predicate reweighting (USE_REWEIGHT)  -> $OUTPUT_ROOT/PENet_Reweight/PROTOCOL
#             spl             SPL as its README (with reweighting)           -> $OUTPUT_ROOT/SPL/PROTOCOL
#             spl_ce          SPL without reweighting                        -> $OUTPUT_ROOT/SPL_CE/PROTOCOL
#   PROTOCOL  predcls | sgcls | sgdet.   DATASET (env): synthetic (default), vglike or vg150.  NPROC (env): torchrun.
#   SPL needs the prototype files of scripts/penet/prototypes.sh:
#     VIS_PROTOS (env)  default $OUTPUT_ROOT/TransformerPredictor/predcls/vis_protos.pt
#     CON_PROTOS (env)  default $OUTPUT_ROOT/spl_concept_protos.pt (any width: CON_PRO_DIM is read from the file,
#                       the VAE latent is a quarter of it as in the reference, 1024 of 4096 and 576 of 2304)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
DATASET=${DATASET:-synthetic}
OUTPUT_ROOT=${OUTPUT_ROOT:-output/$DATASET}
VARIANT=${1:?variant: penet, penet_reweight, spl or spl_ce}
PROTOCOL=${2:?protocol: predcls, sgcls or sgdet}
DETECTOR=${3:?detector checkpoint, e.g. output/qt/detector/model_final.pth}
shift 3
VIS_PROTOS=${VIS_PROTOS:-$OUTPUT_ROOT/TransformerPredictor/predcls/vis_protos.pt}
CON_PROTOS=${CON_PROTOS:-$OUTPUT_ROOT/spl_concept_protos.pt}
source scripts/lib.sh
protocol_switches "$PROTOCOL"
dataset_data "$DATASET"
case "$DATASET" in
  synthetic|vglike) DIR=configs/synthetic; PENET=penet_ce; PENET_RW=penet_reweight; SPL=spl_reweight; SPL_CE=spl_ce ;;
  vg150)     DIR=configs/penet; PENET=penet; PENET_RW=penet_reweight; SPL=spl; SPL_CE=spl ;;
  *) unknown_dataset ;;
esac
EXTRA=()
case "$VARIANT" in
  penet)          CONFIG=$DIR/$PENET.yaml;    NAME=PENet ;;
  penet_reweight) CONFIG=$DIR/$PENET_RW.yaml; NAME=PENet_Reweight ;;
  spl)            CONFIG=$DIR/$SPL.yaml;      NAME=SPL ;;
  spl_ce)         CONFIG=$DIR/$SPL_CE.yaml;   NAME=SPL_CE
                  EXTRA=(MODEL.USE_REWEIGHT none
                         MODEL.ROI_RELATION_HEAD.LOSS '("RelationCE", "ObjectCE", "SPLVAE", "SPLPrototypeSimilarity")') ;;
  *) echo "unknown variant '$VARIANT': use penet, penet_reweight, spl or spl_ce" >&2; exit 2 ;;
esac
if [[ "$VARIANT" == spl* ]]; then
  for f in "$VIS_PROTOS" "$CON_PROTOS"; do
    [ -f "$f" ] || { echo "SPL: prototype file $f does not exist; run scripts/penet/prototypes.sh first" >&2; exit 2; }
  done
  CON_DIM=$("$PYTHON" -c "import sys, torch; d = torch.load(sys.argv[1], weights_only=True); \
print((d['prototypes'] if isinstance(d, dict) else d).shape[1])" "$CON_PROTOS")
  CON_LATENT=$(( CON_DIM / 4 > 0 ? CON_DIM / 4 : 1 ))
  EXTRA+=(MODEL.ROI_RELATION_HEAD.VIS_PRO_PATH "$VIS_PROTOS"
          MODEL.ROI_RELATION_HEAD.CON_PRO_TYPE FILE MODEL.ROI_RELATION_HEAD.CON_PRO_PATH "$CON_PROTOS"
          MODEL.ROI_RELATION_HEAD.CON_PRO_DIM "$CON_DIM" MODEL.ROI_RELATION_HEAD.CON_VAE_INPUT_DIM "$CON_DIM"
          MODEL.ROI_RELATION_HEAD.CON_VAE_LATENT_DIM "$CON_LATENT")
fi
ARGS=(--config-file "$CONFIG" "${DATA[@]}" "${SWITCHES[@]}" MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR"
      OUTPUT_DIR "$OUTPUT_ROOT/$NAME/$PROTOCOL" "${EXTRA[@]}")
run_tool tools/relation_train_net.py "${ARGS[@]}" "$@"
