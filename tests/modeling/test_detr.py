"""The DETR detector that starts IterativeSG (docs/iterative_sg.md, "DETR pre-training"): its matching cost by hand,
per-layer matching, training and detection outputs, and the weight mapping into IterativeSG (whose subject branch
must then reproduce the DETR exactly before training)."""
import math

import pytest
import torch

from sgg.config import load_config
from sgg.modeling import build_detection_model
from sgg.modeling.iterative_sg import DETRDetector, IterativeSceneGraph, iterative_sg_state_from_detr
from sgg.modeling.iterative_sg.detr import object_cost_matrix
from sgg.structures import BoxList, to_image_list

NUM_CLASSES, NUM_PREDICATES = 6, 5
SIZES = ["MODEL.BACKBONE.CONV_BODY", "tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", "True",
         "MODEL.BACKBONE.OUT_CHANNELS", "16", "MODEL.TINY_BACKBONE.STAGE_CHANNELS", "(8, 8, 16, 16)",
         "MODEL.ROI_BOX_HEAD.NUM_CLASSES", str(NUM_CLASSES), "MODEL.DETR.FEATURE_STRIDE", "16",
         "MODEL.DETR.HIDDEN_DIM", "16", "MODEL.DETR.NHEADS", "2", "MODEL.DETR.DIM_FEEDFORWARD", "32",
         "MODEL.DETR.ENC_LAYERS", "1", "MODEL.DETR.DEC_LAYERS", "2", "MODEL.DETR.NUM_OBJECT_QUERIES", "6",
         "MODEL.DETR.NUM_RELATION_QUERIES", "6", "MODEL.DETR.DROPOUT", "0.0"]


def _detr_cfg(*extra):
    return load_config(None, ["MODEL.META_ARCHITECTURE", "DETR", "MODEL.RELATION_ON", "False", *SIZES, *extra])


def _isg_cfg():
    return load_config(None, ["MODEL.META_ARCHITECTURE", "IterativeSceneGraph", "MODEL.RELATION_ON", "True", *SIZES,
                              "MODEL.ROI_RELATION_HEAD.NUM_CLASSES", str(NUM_PREDICATES),
                              "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "False",
                              "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "False"])


def _statistics():
    return {"obj_classes": ["__background__"] + [f"c{i}" for i in range(1, NUM_CLASSES)],
            "rel_classes": ["__background__"] + [f"p{i}" for i in range(1, NUM_PREDICATES)],
            "predicate_counts": [0, 70, 20, 9, 1]}


def _detr(*extra):
    torch.manual_seed(0)
    return build_detection_model(_detr_cfg(*extra))


def _targets():
    a = BoxList(torch.tensor([[2.0, 2, 30, 30], [20, 10, 60, 40]]), (96, 64))
    a.add_field("labels", torch.tensor([1, 4]))
    b = BoxList(torch.tensor([[10.0, 10, 40, 40]]), (80, 60))
    b.add_field("labels", torch.tensor([5]))
    return [a, b]


def _images():
    torch.manual_seed(1)
    return to_image_list([torch.randn(3, 64, 96), torch.randn(3, 60, 80)], 32)


def test_object_cost_by_hand():
    # two queries, one GT object of class 1 at (0.5, 0.5, 0.2, 0.2)
    logits = torch.tensor([[0.0, math.log(3.0), 0.0], [0.0, 0.0, 0.0]])  # p(1) = 3/5 and 1/3
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.6, 0.5, 0.2, 0.2]])
    gt = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    cost = object_cost_matrix(logits, boxes, torch.tensor([1]), gt, class_weight=1.0, l1_weight=5.0, giou_weight=2.0)
    # query 0: exact box, GIoU 1.  query 1: shifted by 0.1 in x; overlap 0.1 x 0.2 = 0.02, union 0.06, hull 0.3 x 0.2
    giou = 0.02 / 0.06 - (0.06 - 0.06) / 0.06
    expected = torch.tensor([[-3 / 5 + 0.0 - 2.0], [-1 / 3 + 5 * 0.1 - 2.0 * giou]])
    assert torch.allclose(cost, expected, atol=1e-5)
    assert object_cost_matrix(logits, boxes, torch.zeros(0, dtype=torch.long), gt[:0], 1, 5, 2).shape == (2, 0)


def test_registered_and_trains_with_three_named_losses_per_layer_summed():
    model = _detr()
    assert isinstance(model, DETRDetector)
    model.train()
    losses = model(_images(), _targets())
    assert set(losses) == {"loss_ce", "loss_bbox", "loss_giou"}
    total = sum(losses.values())
    total.backward()
    assert model.transformer.queries.weight.grad.abs().sum() > 0
    trainable = [p for p in model.backbone.parameters() if p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)
    # the last layer alone is less than the sum over both layers
    last = _detr("MODEL.DETR.DEEP_SUPERVISION", "False").train()(_images(), _targets())
    assert last["loss_bbox"] < losses["loss_bbox"]


def test_each_layer_is_matched_on_its_own_outputs(monkeypatch):
    model = _detr().train()
    seen = []
    import sgg.modeling.iterative_sg.detr as detr_module

    original = detr_module.object_cost_matrix

    def spy(logits, boxes, *args):
        seen.append(boxes.clone())
        return original(logits, boxes, *args)

    monkeypatch.setattr(detr_module, "object_cost_matrix", spy)
    model(_images(), _targets())
    assert len(seen) == 2 * 2  # two layers x two images
    assert not torch.equal(seen[0], seen[2])  # image 0 of layer 0 and of layer 1: different predictions


def test_loss_falls_on_one_batch():
    model = _detr().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, targets = _images(), _targets()
    first = None
    for _ in range(60):
        loss = sum(model(images, targets).values())
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.5 * first


def test_detections_are_sorted_boxlists_in_image_coordinates():
    model = _detr("MODEL.ROI_HEADS.DETECTIONS_PER_IMG", "4").eval()
    with torch.no_grad():
        detections = model(_images())
    assert len(detections) == 2
    for det, (w, h) in zip(detections, [(96, 64), (80, 60)]):
        assert det.size == (w, h) and len(det) == 4
        scores, labels = det.get_field("pred_scores"), det.get_field("pred_labels")
        assert torch.all(scores[:-1] >= scores[1:])
        assert labels.min() >= 1 and labels.max() < NUM_CLASSES  # background never reported
        assert det.bbox[:, 0::2].max() <= w and det.bbox[:, 1::2].max() <= h and det.bbox.min() >= 0


def test_needs_targets_and_labels_in_training():
    model = _detr().train()
    with pytest.raises(ValueError, match="needs targets"):
        model(_images())
    targets = _targets()
    targets[1].remove_field("labels")
    with pytest.raises(ValueError, match="target 1 has no 'labels'"):
        model(_images(), targets)


def test_iterative_sg_starts_as_the_detr_it_was_loaded_from(tmp_path):
    detr = _detr().eval()
    path = tmp_path / "detr.pth"
    torch.save({"model": detr.state_dict()}, path)
    torch.manual_seed(5)
    model = IterativeSceneGraph.from_config(_isg_cfg(), _statistics()).eval()
    model.load_pretrained_detector(str(path))
    decoder = model.transformer.decoder
    for branch in (decoder.subject_layers, decoder.object_layers, decoder.relation_layers):
        for mine, theirs in zip(branch, detr.transformer.decoder_layers):
            assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()))
    assert torch.equal(model.transformer.subject_queries.weight, detr.transformer.queries.weight)
    assert not torch.equal(model.transformer.object_queries.weight, detr.transformer.queries.weight)
    images = _images()
    with torch.no_grad():
        outputs, _ = model.predict(images)
        reference = detr.transformer(*_features(detr, images))
    # zero-initialised conditioning: the subject branch is exactly the DETR
    assert torch.allclose(outputs["subject_logits"], reference["logits"], atol=1e-5)
    assert torch.allclose(outputs["subject_boxes"], reference["boxes"], atol=1e-5)


def _features(detr, images):
    from sgg.modeling.iterative_sg.backbone_input import padding_mask, prepare_images

    images = prepare_images(images)
    features = detr.feature_reader(detr.backbone(images.tensors))
    return features, padding_mask(images, features.shape[-2:])


def test_state_mapping_copies_the_decoder_three_times():
    state = {"transformer.decoder_layers.0.ffn.linear1.weight": torch.ones(2), "transformer.queries.weight":
             torch.zeros(3), "transformer.decoder_norm.bias": torch.ones(1), "backbone.body.x": torch.ones(1),
             "transformer.encoder.0.norm1.weight": torch.ones(1)}
    mapped = iterative_sg_state_from_detr(state)
    assert sorted(mapped) == sorted([
        "backbone.body.x", "transformer.encoder.0.norm1.weight", "transformer.subject_queries.weight",
        "transformer.decoder.entity_norm.bias", "transformer.decoder.relation_norm.bias",
        *[f"transformer.decoder.{b}.0.ffn.linear1.weight" for b in ("subject_layers", "object_layers",
                                                                     "relation_layers")]])


def test_detr_checkpoint_that_does_not_fit_is_explained(tmp_path):
    torch.manual_seed(0)
    wide = build_detection_model(_detr_cfg("MODEL.DETR.HIDDEN_DIM", "32"))
    path = tmp_path / "wide_detr.pth"
    torch.save({"model": wide.state_dict()}, path)
    model = IterativeSceneGraph.from_config(_isg_cfg(), _statistics())
    with pytest.raises(ValueError, match="DETR checkpoint that does not fit") as err:
        model.load_pretrained_detector(str(path))
    assert str(path) in str(err.value) and "other shapes" in str(err.value) and "HIDDEN_DIM" in str(err.value)
    fewer = build_detection_model(_detr_cfg("MODEL.DETR.NUM_OBJECT_QUERIES", "4"))
    torch.save({"model": fewer.state_dict()}, tmp_path / "q4.pth")
    with pytest.raises(ValueError, match="subject_queries"):
        model.load_pretrained_detector(str(tmp_path / "q4.pth"))


def test_source_feature_stride_average_pools_the_finer_map():
    model = _detr("MODEL.DETR.SOURCE_FEATURE_STRIDE", "4").eval()
    reader = model.feature_reader
    assert (reader.name, reader.pool) == ("0", 4)  # tiny-FPN P2, pooled 4 x 4 to stride 16
    outputs = {"0": torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(1, 2, 8, 8)}
    pooled = reader(outputs)
    assert pooled.shape == (1, 2, 2, 2)
    assert pooled[0, 0, 0, 0] == outputs["0"][0, 0, :4, :4].mean()
    with torch.no_grad():
        assert len(model(_images())) == 2
    assert _detr().feature_reader.pool == 1


@pytest.mark.parametrize("source, message", [("32", "must divide"), ("3", "must divide"),
                                             ("2", "SOURCE_FEATURE_STRIDE 2: backbone tiny-FPN has no feature map")])
def test_bad_source_feature_stride_is_explained(source, message):
    with pytest.raises(ValueError, match=message):
        _detr("MODEL.DETR.SOURCE_FEATURE_STRIDE", source)


def test_more_objects_than_queries_leaves_out_what_the_minimum_cost_assignment_leaves_out():
    from sgg.modeling.iterative_sg import hungarian_match
    # two queries, three GT: the minimum-cost assignment q0 -> g1 (1) and q1 -> g2 (0) leaves g0 out
    cost = torch.tensor([[5.0, 1.0, 3.0], [2.0, 4.0, 0.0]])
    query, gt = hungarian_match(cost, allow_unmatched_gt=True)
    assert query.tolist() == [0, 1] and gt.tolist() == [1, 2]
    with pytest.raises(ValueError, match="cannot match 3 GT targets to 2 queries"):
        hungarian_match(cost)


def test_trains_on_an_image_with_more_objects_than_queries(caplog):
    # the VG-like profile has training images with more boxes than a 32-query DETR has queries
    model = _detr("MODEL.DETR.NUM_OBJECT_QUERIES", "1", "MODEL.DETR.NUM_RELATION_QUERIES", "1").train()
    with caplog.at_level("WARNING"):
        losses = model(_images(), _targets())  # image 0 has two objects
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert "image 0 of the batch has 2 GT objects but MODEL.DETR.NUM_OBJECT_QUERIES is 1: 1 left unmatched" in caplog.text
    assert "image 1 of the batch" not in caplog.text


def test_unmatched_objects_still_count_in_the_box_loss_normaliser():
    # one query, two GT objects in a 100 x 100 image: (cx, cy, w, h) = (0.1, 0.1, 0.2, 0.2) and (0.6, 0.6, 0.2, 0.2).
    # The query's box (0.15, 0.1, 0.2, 0.2) is matched to the first (L1 0.05 against 0.95); the second is left out
    # but counts: loss_bbox = 5 * 0.05 / 2 (not / 1), as the reference's num_boxes counts every GT box.
    model = _detr("MODEL.DETR.NUM_OBJECT_QUERIES", "1", "MODEL.DETR.NUM_RELATION_QUERIES", "1",
                  "MODEL.DETR.DEEP_SUPERVISION", "False")
    target = BoxList(torch.tensor([[0.0, 0, 20, 20], [50, 50, 70, 70]]), (100, 100))
    target.add_field("labels", torch.tensor([1, 2]))
    outputs = {"logits": torch.zeros(1, 1, 1, NUM_CLASSES), "boxes": torch.tensor([[[[0.15, 0.1, 0.2, 0.2]]]])}
    losses = model.losses(outputs, [target])
    assert float(losses["loss_bbox"]) == pytest.approx(5.0 * 0.05 / 2, abs=1e-6)
    giou = (0.15 * 0.2) / (0.25 * 0.2)  # overlap 0.15 x 0.2, union 0.25 x 0.2 = hull: no hull penalty
    assert float(losses["loss_giou"]) == pytest.approx(2.0 * (1 - giou) / 2, abs=1e-6)
