"""The relation head as explicit parts: built from hand-made parts (no config, no detector), and its logit-adjusting
stage (``MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS``, BA-SGG's transfer among them) run in the configured order."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgg.config import ConfigError
from sgg.modeling.detector.scene_graph_rcnn import SceneGraphRCNN
from sgg.modeling.registry import RELATION_LOGIT_ADJUSTERS
from sgg.modeling.roi_heads.relation_head.ba_sgg import transfer_matrix
from sgg.modeling.roi_heads.relation_head.inference import RelationPostProcessor
from sgg.modeling.roi_heads.relation_head.relation_head import RelationHead
from sgg.modeling.roi_heads.relation_head.sampling import PairSampler
from sgg.modeling.roi_heads.relation_head.types import PredictorOutput
from sgg.structures import BoxList

from test_scene_graph_model import NUM_PREDICATES, _batch, _cfg, _statistics


# ------------------------------------------------------------------------------------------------ hand-made parts
class CornerPooler(nn.Module):
    """Stands in for RoIAlign: a box's 'pooled feature' is its corners / 100."""

    def forward(self, features, boxes, image_sizes):
        return torch.cat(boxes) / 100


class PairDifferencePredictor(nn.Module):
    """rel_logits of (s, o) = [0, x1_s - x1_o, y2_s - y2_o]: non-symmetric in s and o, no parameters."""

    def forward(self, batch):
        self.batch = batch
        roi, offset, rows = batch.roi_features, 0, []
        for boxes, pairs in zip(batch.boxes, batch.pair_idxs):
            s, o = roi[offset + pairs[:, 0]], roi[offset + pairs[:, 1]]
            rows.append(torch.stack([torch.zeros(len(pairs)), s[:, 0] - o[:, 0], s[:, 3] - o[:, 3]], dim=1))
            offset += len(boxes)
        obj_logits = torch.zeros(len(roi), 4)
        return PredictorOutput(obj_logits, obj_logits.argmax(1), torch.cat(rows))


class Times(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, logits):
        return logits * self.factor


class RecordingLoss(nn.Module):
    def forward(self, inputs):
        self.inputs = inputs
        return {"loss_rel": F.cross_entropy(inputs.rel_logits, inputs.rel_labels)}


def _boxes():
    boxes = BoxList(torch.tensor([[0.0, 0, 10, 20], [30, 5, 50, 15], [60, 40, 80, 90]]), (100, 100))
    boxes.add_field("labels", torch.tensor([1, 2, 3]))
    relation = torch.zeros(3, 3, dtype=torch.long)
    relation[0, 1], relation[2, 0] = 1, 2
    boxes.add_field("relation", relation)
    return boxes


def _hand_made_head(**changes):
    parts = dict(pair_sampler=PairSampler("predcls", batch_size_per_image=6, positive_fraction=0.5),
                 box_pooler=CornerPooler(), box_feature_extractor=nn.Identity(), union_feature_extractor=None,
                 predictor=PairDifferencePredictor(), rescorer=None, loss_terms=RecordingLoss(),
                 post_processor=RelationPostProcessor("predcls"), logit_adjusters=[("triple", Times(3.0))])
    parts.update(changes)
    return RelationHead(**parts)


def test_a_head_from_hand_made_parts_predicts_through_its_adjuster():
    head = _hand_made_head().eval()
    boxes = _boxes()
    (prediction,) = head({}, [boxes], [(100, 100)])
    pairs = prediction.get_field("rel_pair_idxs")
    assert len(pairs) == 6  # every ordered pair of 3 boxes
    corners = boxes.bbox / 100
    for (s, o), scores in zip(pairs.tolist(), prediction.get_field("pred_rel_scores")):
        logits = 3.0 * torch.tensor([0.0, corners[s, 0] - corners[o, 0], corners[s, 3] - corners[o, 3]])
        torch.testing.assert_close(scores, logits.softmax(0))
    assert dict(head.named_children())["triple"].factor == 3.0 and head.logit_adjuster_names == ["triple"]


def test_a_head_from_hand_made_parts_trains_on_its_sampled_pairs():
    loss_terms = RecordingLoss()
    head = _hand_made_head(loss_terms=loss_terms, logit_adjusters=()).train()
    boxes = _boxes()
    losses = head({}, [boxes], [(100, 100)], [boxes])
    inputs = loss_terms.inputs
    # the sampler's labels are the GT predicates of the pairs; 6 pairs = both GT relations + 4 background pairs
    labels = {tuple(p): int(l) for p, l in zip(head.predictor.batch.pair_idxs[0].tolist(), inputs.rel_labels)}
    assert sorted(labels.values()) == [0, 0, 0, 0, 1, 2] and labels[(0, 1)] == 1 and labels[(2, 0)] == 2
    assert inputs.obj_logits is None  # PredCls: no object loss
    # no adjuster: the loss reads the predictor's own logits
    corners = boxes.bbox / 100
    s, o = (2, 0)
    row = [tuple(p) for p in labels].index((2, 0))
    torch.testing.assert_close(inputs.rel_logits[row],
                               torch.tensor([0.0, corners[s, 0] - corners[o, 0], corners[s, 3] - corners[o, 3]]))
    assert torch.isclose(losses["loss_rel"], F.cross_entropy(inputs.rel_logits, inputs.rel_labels))
    # with the adjuster, the loss reads the adjusted logits of the same pairs
    adjusted = _hand_made_head(loss_terms=loss_terms).train()
    torch.manual_seed(0)
    head({}, [boxes], [(100, 100)], [boxes])
    raw, pairs = loss_terms.inputs.rel_logits, head.predictor.batch.pair_idxs[0]
    torch.manual_seed(0)
    adjusted({}, [boxes], [(100, 100)], [boxes])
    assert torch.equal(adjusted.predictor.batch.pair_idxs[0], pairs)
    torch.testing.assert_close(loss_terms.inputs.rel_logits, 3.0 * raw)


# ------------------------------------------------------------------------------------------------ LOGIT_ADJUSTERS
@RELATION_LOGIT_ADJUSTERS.register("TestPredicateShift")
class PredicateShift(nn.Module):
    """Adds 0, 1, 2, ... to the predicate logits: does not commute with the transfer matrix."""

    HEAD_ATTRIBUTE = "predicate_shift"

    def __init__(self, num_predicates):
        super().__init__()
        self.register_buffer("shift", torch.arange(num_predicates, dtype=torch.float32))

    @classmethod
    def from_config(cls, cfg, statistics):
        return cls(len(statistics["rel_classes"]))

    def forward(self, logits):
        return logits + self.shift


@RELATION_LOGIT_ADJUSTERS.register("TestNoAttribute")
class NoAttribute(PredicateShift):
    HEAD_ATTRIBUTE = ""


def _confusion(tmp_path):
    c = np.arange(NUM_PREDICATES ** 2, dtype=np.float64).reshape(NUM_PREDICATES, NUM_PREDICATES) % 5 + 1
    np.save(tmp_path / "c.npy", c)
    return c, str(tmp_path / "c.npy")


def test_configured_adjusters_run_in_order_before_the_transfer(tmp_path):
    c, path = _confusion(tmp_path)
    torch.manual_seed(0)
    cfg = _cfg("MotifPredictor", True, True, "MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS", "('TestPredicateShift',)",
               "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True",
               "MODEL.ROI_RELATION_HEAD.BA_SGG.CONFUSION_MATRIX_PATH", path)
    model = SceneGraphRCNN.from_config(cfg, _statistics()).eval()
    head = model.relation_head
    assert head.logit_adjuster_names == ["predicate_shift", "transfer"]
    # checkpoint keys of the stages: the transfer matrix keeps the name it had before the stage existed
    assert {"relation_head.predicate_shift.shift", "relation_head.transfer.matrix"} <= set(model.state_dict())
    captured = []
    head.predictor.register_forward_hook(lambda m, i, out: captured.append(out.rel_logits))
    images, targets = _batch()
    with torch.no_grad():
        predictions = model(images, targets)
    shift = torch.arange(NUM_PREDICATES, dtype=torch.float32)
    expected = torch.softmax((captured[0] + shift) @ transfer_matrix(c).t(), dim=-1)  # A' (z + b), not A' z + b
    wrong_order = torch.softmax(captured[0] @ transfer_matrix(c).t() + shift, dim=-1)
    scores = torch.cat([p.get_field("pred_rel_scores") for p in predictions]).sort(dim=0).values
    assert torch.allclose(scores, expected.sort(dim=0).values, atol=1e-6)
    assert not torch.allclose(scores, wrong_order.sort(dim=0).values, atol=1e-3)


def test_transfer_listed_by_name_equals_the_reference_switch(tmp_path):
    _, path = _confusion(tmp_path)
    matrix_key = ["MODEL.ROI_RELATION_HEAD.BA_SGG.CONFUSION_MATRIX_PATH", path]
    models = []
    for switch in (["MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True"],
                   ["MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS", "('TransferClassifier',)"],
                   ["MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS", "('TransferClassifier',)",
                    "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True"]):  # listed once, not twice
        torch.manual_seed(0)
        models.append(SceneGraphRCNN.from_config(_cfg("MotifPredictor", True, True, *switch, *matrix_key),
                                                 _statistics()))
    for model in models:
        assert model.relation_head.logit_adjuster_names == ["transfer"]
        assert list(model.state_dict()) == list(models[0].state_dict())


@pytest.mark.parametrize("adjusters,message", [
    ("('TestPredicateShfit',)", r"unknown relation logit adjuster 'TestPredicateShfit' \(config key "
                                r"MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS\). Did you mean: TestPredicateShift"),
    ("('TestNoAttribute',)", r"LOGIT_ADJUSTERS: TestNoAttribute declares no HEAD_ATTRIBUTE"),
    ("('TestPredicateShift', 'TestPredicateShift')", r"LOGIT_ADJUSTERS lists TestPredicateShift twice"),
])
def test_bad_logit_adjusters_are_named(adjusters, message):
    cfg = _cfg("MotifPredictor", True, True, "MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS", adjusters)
    with pytest.raises(ConfigError, match=message):
        SceneGraphRCNN.from_config(cfg, _statistics())


def test_pair_sampler_reads_its_keys():
    keys = ["MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE", "17", "MODEL.ROI_RELATION_HEAD.POSITIVE_FRACTION", "0.4",
            "MODEL.ROI_RELATION_HEAD.NUM_SAMPLE_PER_GT_REL", "3", "MODEL.ROI_RELATION_HEAD.REQUIRE_BOX_OVERLAP", "False",
            "TEST.RELATION.REQUIRE_OVERLAP", "True", "MODEL.ROI_HEADS.FG_IOU_THRESHOLD", "0.6"]
    sgdet = PairSampler.from_config(_cfg("MotifPredictor", False, False, *keys), "sgdet")
    assert sgdet == PairSampler("sgdet", 17, 0.4, 3, require_overlap_train=False, require_overlap_test=True,
                                fg_iou_threshold=0.6)
    # test pairs overlap only in SGDet (GT boxes keep every pair)
    predcls = PairSampler.from_config(_cfg("MotifPredictor", True, True, *keys), "predcls")
    assert not predcls.require_overlap_test
    boxes = _boxes()  # three boxes, no two overlapping
    assert sgdet.test_pairs([boxes])[0].shape == (0, 2) and len(predcls.test_pairs([boxes])[0]) == 6
