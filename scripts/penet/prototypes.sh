#!/usr/bin/env bash
# The offline SPL prototype files (docs/penet_spl.md).
# Usage: bash scripts/penet/prototypes.sh [KEY VALUE ...]   (overrides go to compute_visual_prototypes.py)
#   Visual:  class-mean union features of a trained baseline over the training split
#     BASELINE (env)    trained run; default $OUTPUT_ROOT/TransformerPredictor/predcls
#                       (bash scripts/train_relation.sh TransformerPredictor predcls DETECTOR_CKPT makes it)
#     VIS_PROTOS (env)  output; default $BASELINE/vis_protos.pt
#   Conceptual: predicate text embeddings
#     CONCEPT_SOURCE (env)  glove (default: averaged word vectors, seeded random without GloVe) |
#                           sentence (pip install sentence-transformers; SENTENCE_MODEL: a local model folder) |
#                           file (CON_INPUT: a reference CLIP / LLaMA file)
#     DESCRIPTIONS (env)    default configs/spl/predicate_descriptions_<dataset>.txt
#     CON_PROTOS (env)      output; default $OUTPUT_ROOT/spl_concept_protos.pt
#   Existing outputs are kept.  DATASET (env): synthetic (default), vglike or vg150.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
DATASET=${DATASET:-synthetic}
OUTPUT_ROOT=${OUTPUT_ROOT:-output/$DATASET}
BASELINE=${BASELINE:-$OUTPUT_ROOT/TransformerPredictor/predcls}
VIS_PROTOS=${VIS_PROTOS:-$BASELINE/vis_protos.pt}
CON_PROTOS=${CON_PROTOS:-$OUTPUT_ROOT/spl_concept_protos.pt}
CONCEPT_SOURCE=${CONCEPT_SOURCE:-glove}
source scripts/lib.sh
case "$DATASET" in
  synthetic|vglike) DESCRIPTIONS=${DESCRIPTIONS:-configs/spl/predicate_descriptions_synthetic.txt}; GLOVE_DIM=${GLOVE_DIM:-50} ;;
  vg150)     DESCRIPTIONS=${DESCRIPTIONS:-configs/spl/predicate_descriptions_vg150.txt}; GLOVE_DIM=${GLOVE_DIM:-300} ;;
  *) unknown_dataset ;;
esac
if [ -f "$VIS_PROTOS" ]; then
  echo "== visual prototypes $VIS_PROTOS exist, kept"
else
  for f in "$BASELINE/config.yaml" "$BASELINE/model_final.pth"; do
    [ -f "$f" ] || { echo "visual prototypes: $f does not exist; train the baseline first" \
                          "(bash scripts/train_relation.sh TransformerPredictor predcls DETECTOR_CKPT)" >&2; exit 2; }
  done
  "$PYTHON" tools/compute_visual_prototypes.py --config-file "$BASELINE/config.yaml" --output "$VIS_PROTOS" \
    MODEL.WEIGHT "$BASELINE/model_final.pth" OUTPUT_DIR "$BASELINE" "$@"
fi
if [ -f "$CON_PROTOS" ]; then
  echo "== concept prototypes $CON_PROTOS exist, kept"
else
  ARGS=(--source "$CONCEPT_SOURCE" --output "$CON_PROTOS" --descriptions "$DESCRIPTIONS")
  case "$CONCEPT_SOURCE" in
    glove) ARGS+=(--glove-dir "${GLOVE_DIR:-datasets/glove}" --dim "$GLOVE_DIM") ;;
    sentence) ARGS+=(--sentence-model "${SENTENCE_MODEL:?SENTENCE_MODEL: a local sentence-transformers model folder}") ;;
    file)  ARGS+=(--input "${CON_INPUT:?CON_INPUT: the reference CLIP / LLaMA prototype file}") ;;
  esac
  "$PYTHON" tools/compute_concept_prototypes.py "${ARGS[@]}"
fi
echo "== SPL prototypes: $VIS_PROTOS $CON_PROTOS"
