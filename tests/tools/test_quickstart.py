"""The quick start (scripts/quickstart.sh): what it runs, and the mapped-level union pooling its relation runs use."""
import os
import subprocess
from collections import OrderedDict

import torch
from torchvision.ops import roi_align

from sgg.modeling.roi_heads.relation_head.feature_extractors import RelationFeatureExtractor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Stands in for python: records each call; a detector run leaves model_final.pth (so pipeline.sh skips its own
# detector step), a relation run the results.txt the pipeline prints.
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
out=""; prev=""
for a in "$@"; do [ "$prev" = OUTPUT_DIR ] && out="$a"; prev="$a"; done
if [[ "$*" == *detector_pretrain_net.py* ]]; then
  mkdir -p "$out" && touch "$out/model_final.pth"
elif [[ "$*" == *relation_train_net.py* ]]; then
  mkdir -p "$out/inference/SyntheticVG_test" && echo "table of $out" > "$out/inference/SyntheticVG_test/results.txt"
fi
"""


def test_quickstart_runs_the_detector_then_three_protocols_with_the_quick_settings(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = dict(os.environ, PYTHON=str(fake), CALLS=str(calls))
    root = tmp_path / "qs"
    proc = subprocess.run(["bash", "scripts/quickstart.sh", str(root)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = calls.read_text().splitlines()
    detector = [line for line in lines if "tools/detector_pretrain_net.py" in line]
    relation = [line for line in lines if "tools/relation_train_net.py" in line]
    assert len(detector) == 1  # pipeline.sh finds its checkpoint and does not train a second one
    assert detector[0].endswith(f"--config-file configs/synthetic/detector_tiny_fpn.yaml OUTPUT_DIR {root}/detector "
                                "SOLVER.TO_VAL False")
    assert lines.index(detector[0]) < lines.index(relation[0])
    switches = {"predcls": ("True", "True"), "sgcls": ("True", "False"), "sgdet": ("False", "False")}
    assert len(relation) == 3
    for line, (protocol, (gt_box, gt_label)) in zip(relation, switches.items()):
        words = line.split()
        assert f"MODEL.ROI_RELATION_HEAD.USE_GT_BOX {gt_box} MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL {gt_label}" \
            in line
        assert words[words.index("OUTPUT_DIR") + 1] == f"{root}/TransformerPredictor/{protocol}"
        assert words[words.index("MODEL.PRETRAINED_DETECTOR_CKPT") + 1] == f"{root}/detector/model_final.pth"
        # the quick-start settings come last, so they win over the yaml
        assert line.endswith("SOLVER.TO_VAL False SOLVER.PRE_VAL False "
                             "MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS False MODEL.ROI_HEADS.DETECTIONS_PER_IMG 24")
    for protocol in switches:
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
