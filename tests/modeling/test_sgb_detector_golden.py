"""SGB's proposal selection and box post-processing reproduced exactly on SGB's own numbers.

Golden fixture ``fixtures/sgb_detector_golden.pt``: produced by Scene-Graph-Benchmark.pytorch (KaihuaTang, commit
6f75881ad6076d3a1aee34e9bead2b3595631086) on the CPU (its compiled ops replaced by a Python port of its ``nms_cpu``
and torchvision's legacy ``roi_align``), from its X-101-FPN detector
(``configs/e2e_relation_detector_X_101_32_8_FPN_1x.yaml`` with ``ROI_BOX_HEAD.NUM_CLASSES 21``,
``RPN.POST_NMS_TOP_N_TEST 100``, ``RPN.FPN_POST_NMS_TOP_N_TEST 300``) built under ``torch.manual_seed(0)`` with its
four output layers re-drawn as ``tools/compare_sgb_detector.py: seed_heads`` does (normal, generator seed 1: class
scores std 3e-4, box deltas 1e-5, RPN objectness 1e-3, RPN deltas 1e-4), on one 720 x 477 photo (``load_image``,
then bilinearly resized to 150 x 210, padded 160 x 224: a 3 x 4 P6 grid, whose torchvision strides would be
53 / 56, not 64). It holds

* the RPN head's outputs per level (``objectness`` (A, H, W) logits, ``rpn_deltas`` (4A, H, W)) and the proposals of
  ``RPNPostProcessor.forward`` (``proposals``, ``proposal_objectness``);
* the box predictor's outputs for those proposals (``class_logits``, ``box_regression``) and the detections of
  ``roi_heads/box_head/inference.py: PostProcessor`` (SCORE_THRESH 0.01, NMS 0.3, POST_NMS_PER_CLS_TOPN 20) with
  ``NMS_FILTER_DUPLICATES`` True / 50 detections (``filter_duplicates``) and False / 100 (``per_class``: 92 found,
  the cut does not bind).

No weights need mapping: our RPN (anchors, decoding, selection) and post-processor run on SGB's head outputs."""
import os
from collections import OrderedDict

import pytest
import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList as TorchvisionImageList

from sgg.config import load_config
from sgg.modeling.roi_heads.box_head.inference import BoxPostProcessor
from sgg.modeling.rpn import build_rpn
from sgg.modeling.sgb_conventions import PlusOneBoxCoder

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(HERE, "fixtures", "sgb_detector_golden.pt")
SGB_RULES = ["MODEL.BOX_CODER_PLUS_ONE", "True", "MODEL.RPN.LEGACY_ANCHORS", "True",
             "MODEL.RPN.FPN_POST_NMS_PER_LEVEL_CAP", "True", "MODEL.NMS_PLUS_ONE", "True",
             "MODEL.CLIP_TO_LAST_PIXEL", "True", "MODEL.ROI_HEADS.PROPOSAL_ORDER", "True"]


@pytest.fixture(scope="module")
def golden():
    if not os.path.isfile(FIXTURE):
        pytest.fail(f"golden fixture missing: {FIXTURE}")
    return torch.load(FIXTURE, weights_only=False)


def same_boxes(ours, theirs) -> bool:
    """Equal up to float32 rounding: the box decoding's exp and products round differently on other CPU types (3 of
    the 300 proposals differ by 3.8e-6 on an Intel Xeon, none on the AMD EPYC that checked the fixture), while a
    changed rule moves boxes by a pixel fraction or more, or changes which are selected."""
    return ours.shape == theirs.shape and torch.allclose(ours, theirs, rtol=0.0, atol=1e-4)


class StoredHead(nn.Module):
    """Stands in for the RPN head: returns SGB's head outputs."""

    def __init__(self, objectness, deltas):
        super().__init__()
        self.objectness, self.deltas = objectness, deltas

    def forward(self, features):
        return [o[None] for o in self.objectness], [d[None] for d in self.deltas]


class FPNStrides(nn.Module):
    out_channels = 256
    feature_strides = OrderedDict([("0", 4), ("1", 8), ("2", 16), ("3", 32), ("pool", 64)])


def sgb_config(*opts):
    return load_config(os.path.join(REPO, "configs", "e2e_relation_detector_X_101_32_8_FPN_1x.yaml"),
                       ["MODEL.RPN.POST_NMS_TOP_N_TEST", "100", "MODEL.RPN.FPN_POST_NMS_TOP_N_TEST", "300",
                        "MODEL.ROI_BOX_HEAD.NUM_CLASSES", "21", "MODEL.ROI_HEADS.POST_NMS_PER_CLS_TOPN", "20",
                        *opts])


def run_rpn(golden, cfg):
    rpn = build_rpn(cfg, FPNStrides()).eval()
    rpn.head = StoredHead(golden["objectness"], golden["rpn_deltas"])
    features = OrderedDict((name, torch.zeros(1, 1, *o.shape[-2:]))
                           for name, o in zip(FPNStrides.feature_strides, golden["objectness"]))
    images = TorchvisionImageList(torch.zeros(1, 3, *golden["padded_size"]), [tuple(golden["image_size"])])
    selected = {}
    select = rpn.filter_proposals  # torchvision's forward returns the boxes only: keep the scores too

    def keep_scores(*args):
        selected["boxes"], selected["scores"] = select(*args)
        return selected["boxes"], selected["scores"]

    rpn.filter_proposals = keep_scores
    with torch.no_grad():
        (boxes,), _ = rpn(images, features)
    assert boxes is selected["boxes"][0]
    return boxes, selected["scores"][0]


def test_rpn_with_sgb_rules_gives_sgbs_proposals(golden):
    boxes, scores = run_rpn(golden, sgb_config(*SGB_RULES))
    assert same_boxes(boxes, golden["proposals"]) and torch.equal(scores, golden["proposal_objectness"])
    assert len(boxes) == 300  # at most 100 per level, then the best 300 over all levels


@pytest.mark.parametrize("key", ["MODEL.RPN.LEGACY_ANCHORS", "MODEL.RPN.FPN_POST_NMS_PER_LEVEL_CAP",
                                 "MODEL.NMS_PLUS_ONE", "MODEL.CLIP_TO_LAST_PIXEL"])
def test_each_rpn_rule_is_needed(golden, key):
    boxes, _ = run_rpn(golden, sgb_config(*SGB_RULES, key, "False"))
    assert not same_boxes(boxes, golden["proposals"])


def post_processor(cfg, filter_duplicates, detections):
    heads = cfg.MODEL.ROI_HEADS
    return BoxPostProcessor(PlusOneBoxCoder(tuple(heads.BBOX_REG_WEIGHTS)), heads.SCORE_THRESH, heads.NMS, detections,
                            heads.POST_NMS_PER_CLS_TOPN, filter_duplicates, cfg.MODEL.NMS_PLUS_ONE,
                            cfg.MODEL.CLIP_TO_LAST_PIXEL, heads.PROPOSAL_ORDER)


def run_post(golden, post):
    logits = golden["class_logits"]
    (result,) = post(logits, golden["box_regression"], torch.zeros(len(logits), 1), [golden["proposals"]],
                     [tuple(golden["image_size"])])
    return result


@pytest.mark.parametrize("setting, filter_duplicates, detections, count", [("filter_duplicates", True, 50, 50),
                                                                           ("per_class", False, 100, 92)])
def test_post_processing_with_sgb_rules_gives_sgbs_detections(golden, setting, filter_duplicates, detections, count):
    ref = golden[setting]
    result = run_post(golden, post_processor(sgb_config(*SGB_RULES), filter_duplicates, detections))
    assert same_boxes(result.bbox, ref["boxes"])
    assert torch.equal(result.get_field("pred_labels"), ref["labels"])
    assert torch.equal(result.get_field("pred_scores"), ref["scores"])
    assert len(ref["labels"]) == count
    # each rule changes the result here
    for key in ("MODEL.NMS_PLUS_ONE", "MODEL.CLIP_TO_LAST_PIXEL", "MODEL.ROI_HEADS.PROPOSAL_ORDER"):
        other = run_post(golden, post_processor(sgb_config(*SGB_RULES, key, "False"), filter_duplicates, detections))
        same = len(other) == len(ref["labels"]) and same_boxes(other.bbox, ref["boxes"]) and \
            torch.equal(other.get_field("pred_labels"), ref["labels"])
        assert not same, key
