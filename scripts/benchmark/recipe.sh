#!/usr/bin/env bash
# Multi-stage recipes for tools/run_benchmark.py (configs/benchmark_*.yaml, `command:` entries). Each recipe trains
# its prerequisites once per seed, then its final stage with OUTPUT_DIR = the benchmark's run folder, so the results
# land where the benchmark looks for them (OUTPUT_DIR/inference/<test set>/results.json).
# Usage: bash scripts/benchmark/recipe.sh RECIPE PREDICTOR PROTOCOL DETECTOR_CKPT OUTPUT_DIR SEED [KEY VALUE ...]
#   RECIPE      cce_ranker  CE model of PREDICTOR, then CCE + Ranker fine-tuned from it (docs/linknet_cce.md)
#               ba_sgg      BA-SGG: CE model, confusion matrix, stage 2 (docs/ba_sgg.md)
#               cdl         CE model (PredCls) -> confusion matrix -> PREDICTOR trained with the cdl loss (docs/hca.md)
#               cdl_ba_sgg  HCA only: the cdl model of PROTOCOL as stage 1, then BA-SGG's stage 2 with cdl (docs/hca.md)
#               spl         Transformer PredCls -> visual + conceptual prototypes -> SPL with reweighting
#               spl_ce      the same, SPL with plain CE (docs/penet_spl.md)
#               causal_tde  Causal TDE (docs/causal_tde.md): CausalAnalysisPredictor with PREDICTOR's context
#                           (MotifPredictor: motifs, VCTreePredictor: vctree) trained with EFFECT_TYPE none, then
#                           the same weights tested with EFFECT_TYPE TDE in OUTPUT_DIR (CE_ROOT: the factual row)
#   PREDICTOR   MotifPredictor, TransformerPredictor, LinkNetPredictor, HybridCoAttentionPredictor (ignored by spl*)
#   STAGES (env)   where prerequisites live, shared by every recipe of one seed; default
#                  <benchmark root>/_stages/seed<SEED> (OUTPUT_DIR is <root>/<name>/<protocol>/seed<SEED>)
#   CE_ROOT (env)  the benchmark's own CE row of PREDICTOR (<root>/<row name>): a finished run of it,
#                  <CE_ROOT>/<protocol>/seed<SEED>, is linked as the CE prerequisite instead of training it again
#   CDL_ROOT (env) cdl_ba_sgg: the benchmark's HCA+cdl row, linked the same way as stage 1 (the same config)
#   DATASET (env)  synthetic (default) | vglike | vg150.   KEY VALUE overrides go to every stage a recipe trains
#                  (data paths, schedule); prerequisites that already exist are reused as they are.
set -euo pipefail
cd "$(dirname "$0")/../.."
RECIPE=${1:?recipe: cce_ranker, ba_sgg, cdl, cdl_ba_sgg, spl, spl_ce or causal_tde}
PREDICTOR=${2:?predictor, e.g. TransformerPredictor}
PROTOCOL=${3:?protocol: predcls, sgcls or sgdet}
DETECTOR=${4:?detector checkpoint}
OUTPUT_DIR=${5:?output folder of the final stage}
SEED=${6:?seed}
shift 6
OVERRIDES=("$@")
export PYTHON=${PYTHON:-python}
export DATASET=${DATASET:-synthetic}
export OUTPUT_ROOT=${STAGES:-$(dirname "$(dirname "$(dirname "$OUTPUT_DIR")")")/_stages/seed$SEED}
source scripts/lib.sh
protocol_switches "$PROTOCOL"
dataset_data "$DATASET"
case "$DATASET" in
  synthetic) BASE=configs/synthetic/relation_base.yaml; LINKNET=configs/synthetic
             HCA=configs/synthetic; SPL_RW=configs/synthetic/spl_reweight.yaml; SPL_CE=configs/synthetic/spl_ce.yaml
             CAUSAL=configs/synthetic/causal_motifs.yaml ;;
  vglike)    BASE=configs/synthetic_vglike/relation_base.yaml; LINKNET=configs/synthetic
             HCA=configs/synthetic; SPL_RW=configs/synthetic/spl_reweight.yaml; SPL_CE=configs/synthetic/spl_ce.yaml
             CAUSAL=configs/synthetic/causal_motifs.yaml ;;
  vg150)     BASE=configs/e2e_relation_X_101_32_8_FPN_1x.yaml; LINKNET=configs/linknet
             HCA=configs/hca; SPL_RW=configs/penet/spl.yaml; SPL_CE=configs/penet/spl.yaml
             CAUSAL=configs/causal/causal_motifs.yaml ;;
  *) unknown_dataset ;;
esac

# link_benchmark_row ROW_ROOT STAGE_DIR PROTOCOL WHAT: when STAGE_DIR does not exist and the benchmark's own row
# (ROW_ROOT: CE_ROOT, CDL_ROOT) has a finished run of PROTOCOL and SEED, link it as the stage instead of training it.
link_benchmark_row() {
  local root=$1 stage=$2 row=$1/$3/seed$SEED
  if [ ! -e "$stage" ] && [ -n "$root" ] && [ -f "$row/model_final.pth" ]; then
    echo "== $4 <- the benchmark's run $row" >&2
    mkdir -p "$(dirname "$stage")"
    ln -s "$(cd "$row" && pwd)" "$stage"
  fi
}

# The CE model of PREDICTOR in PROTOCOL (trained once per seed); prints its folder.
ce_model() {
  local protocol=$1 folder
  case "$PREDICTOR" in
    LinkNetPredictor)           folder=$OUTPUT_ROOT/LinkNet_CE/$protocol ;;
    HybridCoAttentionPredictor) folder=$OUTPUT_ROOT/HCA_CE/$protocol ;;
    *)                          folder=$OUTPUT_ROOT/$PREDICTOR/$protocol ;;
  esac
  link_benchmark_row "${CE_ROOT:-}" "$folder" "$protocol" "CE stage: $PREDICTOR $protocol"
  if [ ! -f "$folder/model_final.pth" ]; then
    echo "== CE stage: $PREDICTOR $protocol -> $folder" >&2
    case "$PREDICTOR" in
      LinkNetPredictor)           bash scripts/linknet/train.sh linknet_ce "$protocol" "$DETECTOR" SEED "$SEED" "${OVERRIDES[@]}" >&2 ;;
      HybridCoAttentionPredictor) bash scripts/hca/train.sh ce "$protocol" "$DETECTOR" SEED "$SEED" "${OVERRIDES[@]}" >&2 ;;
      *)                          bash scripts/train_relation.sh "$PREDICTOR" "$protocol" "$DETECTOR" SEED "$SEED" "${OVERRIDES[@]}" >&2 ;;
    esac
  fi
  echo "$folder"
}

confusion_matrix() {  # the confusion matrix of the CE PredCls model; prints its path
  local run matrix
  run=$(ce_model predcls)
  matrix=$run/conf_mat_freq_train.npy
  if [ ! -f "$matrix" ]; then
    "$PYTHON" tools/relation_confusion_matrix.py --config-file "$run/config.yaml" MODEL.WEIGHT "$run/model_final.pth" \
      OUTPUT_DIR "$run" >&2
  fi
  echo "$matrix"
}

final() {  # CONFIG [KEY VALUE ...]: the last stage, in OUTPUT_DIR
  local config=$1
  shift
  "$PYTHON" tools/relation_train_net.py --config-file "$config" "${DATA[@]}" "${SWITCHES[@]}" \
    MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR" SEED "$SEED" OUTPUT_DIR "$OUTPUT_DIR" "$@"
}

case "$RECIPE" in
  cce_ranker)
    CE=$(ce_model "$PROTOCOL")
    if [ "$PREDICTOR" = LinkNetPredictor ]; then
      final "$LINKNET/linknet_cce_ranker.yaml" MODEL.WEIGHT "$CE/model_final.pth" "$@"
    else
      final "$LINKNET/motif_cce_ranker.yaml" MODEL.ROI_RELATION_HEAD.PREDICTOR "$PREDICTOR" \
        MODEL.WEIGHT "$CE/model_final.pth" "$@"
    fi ;;
  ba_sgg)
    ce_model "$PROTOCOL" > /dev/null
    ce_model predcls > /dev/null  # the confusion matrix's model
    bash scripts/ba_sgg/train.sh "$PREDICTOR" "$PROTOCOL" "$DETECTOR" "$OUTPUT_DIR" "$SEED" "$@" ;;
  cdl)
    MATRIX=$(confusion_matrix)
    if [ "$PREDICTOR" = HybridCoAttentionPredictor ]; then
      final "$HCA/hca_cdl.yaml" MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH "$MATRIX" "$@"
    else
      final "$BASE" MODEL.ROI_RELATION_HEAD.PREDICTOR "$PREDICTOR" MODEL.ROI_RELATION_HEAD.LOSS '("cdl", "ObjectCE")' \
        MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH "$MATRIX" "$@"
    fi ;;
  cdl_ba_sgg)
    [ "$PREDICTOR" = HybridCoAttentionPredictor ] || {
      echo "recipe cdl_ba_sgg is ReBalance-HCA's two-stage recipe: PREDICTOR must be HybridCoAttentionPredictor" >&2
      exit 2; }
    MATRIX=$(confusion_matrix)
    STAGE1=$OUTPUT_ROOT/HCA_CDL/$PROTOCOL
    link_benchmark_row "${CDL_ROOT:-}" "$STAGE1" "$PROTOCOL" "stage 1: HCA + cdl $PROTOCOL"  # the list's HCA+cdl row
    if [ ! -f "$STAGE1/model_final.pth" ]; then
      echo "== stage 1: HCA + cdl $PROTOCOL -> $STAGE1" >&2
      CONF_MAT=$MATRIX bash scripts/hca/train.sh cdl "$PROTOCOL" "$DETECTOR" SEED "$SEED" "${OVERRIDES[@]}" >&2
    fi
    final "$HCA/hca_cdl_basgg.yaml" MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH "$MATRIX" \
      MODEL.PRETRAINED_MODEL_CKPT "$STAGE1/model_final.pth" "$@" ;;
  spl|spl_ce)
    PREDICTOR=TransformerPredictor
    BASELINE=$(ce_model predcls)
    VIS_PROTOS=$BASELINE/vis_protos.pt CON_PROTOS=$OUTPUT_ROOT/spl_concept_protos.pt BASELINE=$BASELINE \
      bash scripts/penet/prototypes.sh >&2
    CON_DIM=$("$PYTHON" -c "import sys, torch; d = torch.load(sys.argv[1], weights_only=True); \
print((d['prototypes'] if isinstance(d, dict) else d).shape[1])" "$OUTPUT_ROOT/spl_concept_protos.pt")
    CONFIG=$SPL_RW
    EXTRA=()
    if [ "$RECIPE" = spl_ce ]; then
      CONFIG=$SPL_CE
      EXTRA=(MODEL.USE_REWEIGHT none
             MODEL.ROI_RELATION_HEAD.LOSS '("RelationCE", "ObjectCE", "SPLVAE", "SPLPrototypeSimilarity")')
    fi
    final "$CONFIG" MODEL.ROI_RELATION_HEAD.VIS_PRO_PATH "$BASELINE/vis_protos.pt" \
      MODEL.ROI_RELATION_HEAD.CON_PRO_TYPE FILE MODEL.ROI_RELATION_HEAD.CON_PRO_PATH "$OUTPUT_ROOT/spl_concept_protos.pt" \
      MODEL.ROI_RELATION_HEAD.CON_PRO_DIM "$CON_DIM" MODEL.ROI_RELATION_HEAD.CON_VAE_INPUT_DIM "$CON_DIM" \
      MODEL.ROI_RELATION_HEAD.CON_VAE_LATENT_DIM $(( CON_DIM / 4 > 0 ? CON_DIM / 4 : 1 )) "${EXTRA[@]}" "$@" ;;
  causal_tde)
    case "$PREDICTOR" in
      MotifPredictor)  CONTEXT=motifs ;;
      VCTreePredictor) CONTEXT=vctree ;;
      *) echo "recipe causal_tde: PREDICTOR names the causal context, MotifPredictor or VCTreePredictor" >&2; exit 2 ;;
    esac
    CAUSAL_OPTS=(MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER "$CONTEXT")
    STAGE=$OUTPUT_ROOT/Causal_$CONTEXT/$PROTOCOL
    link_benchmark_row "${CE_ROOT:-}" "$STAGE" "$PROTOCOL" "factual stage: Causal $CONTEXT $PROTOCOL"
    if [ ! -f "$STAGE/model_final.pth" ]; then
      echo "== factual stage: Causal $CONTEXT $PROTOCOL (EFFECT_TYPE none) -> $STAGE" >&2
      "$PYTHON" tools/relation_train_net.py --config-file "$CAUSAL" "${DATA[@]}" "${SWITCHES[@]}" "${CAUSAL_OPTS[@]}" \
        MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE none MODEL.PRETRAINED_DETECTOR_CKPT "$DETECTOR" SEED "$SEED" \
        OUTPUT_DIR "$STAGE" "${OVERRIDES[@]}" >&2
    fi
    "$PYTHON" tools/relation_test_net.py --config-file "$CAUSAL" "${DATA[@]}" "${SWITCHES[@]}" "${CAUSAL_OPTS[@]}" \
      MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE TDE MODEL.WEIGHT "$STAGE/model_final.pth" SEED "$SEED" \
      OUTPUT_DIR "$OUTPUT_DIR" "$@"
    # the model table reads the trained model's description
    if [ -f "$STAGE/model_info.json" ]; then cp "$STAGE/model_info.json" "$OUTPUT_DIR/model_info.json"; fi ;;
  *) echo "unknown recipe '$RECIPE': use cce_ranker, ba_sgg, cdl, cdl_ba_sgg, spl, spl_ce or causal_tde" >&2; exit 2 ;;
esac
