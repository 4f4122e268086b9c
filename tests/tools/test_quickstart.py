"""The quick start (scripts/quickstart.sh): what it runs, and the mapped-level union pooling its relation runs use."""
import os
import subprocess
from collections import OrderedDict

import torch
from torchvision.ops import roi_align

from sgg.modeling.roi_heads.relation_head.feature_extractors import RelationFeatureExtractor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Stands in for python: records each call; a detector run leaves model_final.pth (so pipeline.sh skips its own
# detector step), a relation run the results.txt the quick start prints (or fails for the protocol FAIL).
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$* | threads=${OMP_NUM_THREADS:-unset}" >> "$CALLS"
out=""; prev=""
for a in "$@"; do [ "$prev" = OUTPUT_DIR ] && out="$a"; prev="$a"; done
if [[ "$*" == *detector_pretrain_net.py* ]]; then
  mkdir -p "$out" && touch "$out/model_final.pth"
elif [[ "$*" == *relation_train_net.py* ]]; then
  [[ -n "${FAIL:-}" && "$out" == *"/$FAIL" ]] && { echo "$FAIL broke" >&2; exit 1; }
  mkdir -p "$out/inference/SyntheticVG_test" && echo "table of $out" > "$out/inference/SyntheticVG_test/results.txt"
fi
"""


def _quickstart(tmp_path, **env):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    root = tmp_path / "qs"
    env = dict(os.environ, PYTHON=str(fake), CALLS=str(calls), **env)
    env.pop("OMP_NUM_THREADS", None)  # as a new user runs it: only the relation lanes set a thread count
    proc = subprocess.run(["bash", "scripts/quickstart.sh", str(root)], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=60)
    return proc, calls.read_text().splitlines(), root


def test_quickstart_runs_the_detector_then_three_protocols_with_the_quick_settings(tmp_path):
    proc, lines, root = _quickstart(tmp_path)
    assert proc.returncode == 0, proc.stderr
    detector = [line for line in lines if "tools/detector_pretrain_net.py" in line]
    relation = [line for line in lines if "tools/relation_train_net.py" in line]
    assert len(detector) == 1
    assert detector[0].split(" | ")[0].endswith(
        f"--config-file configs/synthetic/detector_tiny_fpn.yaml OUTPUT_DIR {root}/detector SOLVER.TO_VAL False")
    assert detector[0].endswith("threads=unset")  # torch's default: all cores for the detector
    assert lines.index(detector[0]) < min(lines.index(line) for line in relation)
    # two lanes, one per half of the cores: SGDet alone, PredCls then SGCls
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    switches = {"predcls": ("True", "True"), "sgcls": ("True", "False"), "sgdet": ("False", "False")}
    assert len(relation) == 3
    runs = {}
    for line in relation:
        args, threads_used = line.split(" | ")
        words = args.split()
        runs[words[words.index("OUTPUT_DIR") + 1].rsplit("/", 1)[1]] = args
        assert threads_used == f"threads={threads}"
    assert relation.index(next(r for r in relation if "/predcls " in r)) < \
        relation.index(next(r for r in relation if "/sgcls " in r))
    assert sorted(runs) == sorted(switches)
    for protocol, (gt_box, gt_label) in switches.items():
        args = runs[protocol]
        words = args.split()
        assert f"MODEL.ROI_RELATION_HEAD.USE_GT_BOX {gt_box} MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL {gt_label}" \
            in args
        assert words[words.index("OUTPUT_DIR") + 1] == f"{root}/TransformerPredictor/{protocol}"
        assert words[words.index("MODEL.PRETRAINED_DETECTOR_CKPT") + 1] == f"{root}/detector/model_final.pth"
        # the quick-start settings come last, so they win over the yaml
        assert args.endswith("SOLVER.TO_VAL False SOLVER.PRE_VAL False "
                             "MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS False MODEL.ROI_HEADS.DETECTIONS_PER_IMG 24")
    tables = proc.stdout[proc.stdout.index("== results"):]
    for protocol in switches:
        assert f"table of {root}/TransformerPredictor/{protocol}" in tables


def test_quickstart_fails_when_one_protocol_fails_and_shows_its_log(tmp_path):
    proc, lines, root = _quickstart(tmp_path, FAIL="sgdet")
    assert proc.returncode == 1
    assert f"-- sgdet: no results; the end of {root}/TransformerPredictor/sgdet.log:" in proc.stderr
    assert "sgdet broke" in proc.stderr
    for protocol in ("predcls", "sgcls"):  # the other lane still ran and printed its tables
        assert f"table of {root}/TransformerPredictor/{protocol}" in proc.stdout


def test_mapped_level_union_pooling_takes_each_box_from_its_fpn_level():
    """POOLING_ALL_LEVELS False (the quick start's setting): FPN level k = floor(4 + log2(sqrt(area) / 224)),
    clamped to the 4 levels P2..P5 (SGB's LevelMapper), at that level's stride, sampling ratio and aligned=False."""
    torch.manual_seed(0)
    names = ["0", "1", "2", "3"]  # strides 4, 8, 16, 32 on a 256 x 256 image
    features = OrderedDict((name, torch.randn(1, 8, 256 // 2 ** (i + 2), 256 // 2 ** (i + 2)))
                           for i, name in enumerate(names))
    extractor = RelationFeatureExtractor(8, names, resolution=3, sampling_ratio=2, mlp_dim=16, pool_all_levels=False)
    boxes = torch.tensor([[10.0, 20.0, 250.0, 255.0],   # sqrt(area) 237.5 -> k = 4 -> "2"
                          [3.0, 5.0, 43.0, 35.0],       # 34.6 -> k = 1, clamped to 2 -> "0"
                          [0.0, 40.0, 120.0, 160.0],    # 120 -> k = 3 -> "1"
                          [0.0, 0.0, 256.0, 256.0]])    # 256 -> k = 4 -> "2" (P5 needs >= 448)
    pooled = extractor._pool(features, [boxes], [(256, 256)])
    for i, (box, level) in enumerate(zip(boxes, ["2", "0", "1", "2"])):
        stride = 2 ** (names.index(level) + 2)
        expected = roi_align(features[level], [box[None]], 3, spatial_scale=1.0 / stride, sampling_ratio=2,
                             aligned=False)
        assert torch.allclose(pooled[i], expected[0], atol=1e-6), level
