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
