# Helpers sourced by the training scripts (not run on its own).

# protocol_switches PROTOCOL: sets the array SWITCHES to the two keys that select PredCls / SGCls / SGDet
# (SGB's convention), or stops with exit 2 on an unknown protocol.
protocol_switches() {
  local head=MODEL.ROI_RELATION_HEAD
  case "$1" in
    predcls) SWITCHES=("$head.USE_GT_BOX" True  "$head.USE_GT_OBJECT_LABEL" True) ;;
    sgcls)   SWITCHES=("$head.USE_GT_BOX" True  "$head.USE_GT_OBJECT_LABEL" False) ;;
    sgdet)   SWITCHES=("$head.USE_GT_BOX" False "$head.USE_GT_OBJECT_LABEL" False) ;;
    *) echo "unknown protocol '$1': use predcls, sgcls or sgdet" >&2; exit 2 ;;
  esac
}

# The VG-like profile (DATASET=vglike) has its own detector and relation_base yamls in configs/synthetic_vglike/;
# the method yamls exist for the small profile only (configs/synthetic/), so the scripts run them with these KEY VALUE
# pairs: the profile's catalog entries, image sizes, SGB's per-image caps and the schedule scale (every stage's
# iteration counts x2: 600 iterations did not converge there, DATASET.md). They repeat the values of
# configs/synthetic_vglike/relation_base.yaml (tests/tools/test_scripts.py checks that they agree).
VGLIKE_DATA=(DATASETS.TRAIN '("SyntheticVGLike_train",)' DATASETS.VAL '("SyntheticVGLike_val",)'
             DATASETS.TEST '("SyntheticVGLike_test",)' INPUT.MIN_SIZE_TRAIN '(384,)' INPUT.MAX_SIZE_TRAIN 448
             INPUT.MIN_SIZE_TEST 384 INPUT.MAX_SIZE_TEST 448 MODEL.ROI_HEADS.DETECTIONS_PER_IMG 80
             MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE 256 SOLVER.SCHEDULE_SCALE 2.0)

# dataset_data DATASET: sets the array DATA to the KEY VALUE pairs that move a configs/synthetic yaml onto DATASET
# (VGLIKE_DATA for vglike, none for synthetic and vg150, whose yamls are their own).
dataset_data() {
  case "$1" in
    vglike) DATA=("${VGLIKE_DATA[@]}") ;;
    *)      DATA=() ;;
  esac
}

# run_unless_done RUN_DIR COMMAND...: runs COMMAND unless RUN_DIR holds a finished run (model_final.pth and a
# results.json under inference/), so that a method's run_all.sh resumes where it stopped.
run_unless_done() {
  local run_dir=$1
  shift
  if [ -f "$run_dir/model_final.pth" ] && compgen -G "$run_dir/inference/*/results.json" > /dev/null; then
    echo "== $run_dir: done, skipped"
  else
    echo "== $run_dir"
    "$@"
  fi
}

# run_tool TOOL [ARG ...]: runs a tools/*.py in one process, or under torchrun with NPROC processes (rendezvous port
# PORT, default 29500); PYTHON is the interpreter.
run_tool() {
  local tool=$1
  shift
  if [ "${NPROC:-1}" -gt 1 ]; then
    "${PYTHON:-python}" -m torch.distributed.run --nproc_per_node "$NPROC" --master_port "${PORT:-29500}" "$tool" "$@"
  else
    "${PYTHON:-python}" "$tool" "$@"
  fi
}

# unknown_dataset: stops with exit 2 on a DATASET the calling script does not know.
unknown_dataset() {
  echo "unknown DATASET '$DATASET': use synthetic, vglike or vg150" >&2
  exit 2
}
