"""The scene graph model end to end on tiny configs: every baseline predictor in every protocol."""
import numpy as np
import pytest
import torch

from sgg.config import ConfigError, load_config
from sgg.evaluation import SceneGraphEvaluator
from sgg.modeling.detector.scene_graph_rcnn import SceneGraphRCNN, assign_gt_labels
from sgg.modeling.roi_heads.relation_head.inference import groundtruth_to_eval_fields, prediction_to_eval_fields
from sgg.structures import BoxList, to_image_list

NUM_CLASSES, NUM_PREDICATES = 6, 5
PROTOCOLS = [("predcls", True, True), ("sgcls", True, False), ("sgdet", False, False)]
PREDICTORS = ["FrequencyPredictor", "MotifPredictor", "TransformerPredictor"]


def _statistics():
    rng = np.random.default_rng(0)
    dist = rng.dirichlet(np.ones(NUM_PREDICATES), size=(NUM_CLASSES, NUM_CLASSES)).astype(np.float32)
    return {"pred_dist": np.log(dist + 1e-3), "fg_matrix": np.ones((NUM_CLASSES,) * 2 + (NUM_PREDICATES,), np.int64),
            "obj_classes": ["__background__"] + [f"c{i}" for i in range(1, NUM_CLASSES)],
            "rel_classes": ["__background__"] + [f"p{i}" for i in range(1, NUM_PREDICATES)]}


def _cfg(predictor, box, label, *extra):
    return load_config(None, [
        "MODEL.BACKBONE.CONV_BODY", "tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", "True", "MODEL.RELATION_ON", "True",
        "MODEL.ROI_BOX_HEAD.NUM_CLASSES", str(NUM_CLASSES), "MODEL.ROI_RELATION_HEAD.NUM_CLASSES", str(NUM_PREDICATES),
        "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "64",
        "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", "4", "MODEL.BACKBONE.OUT_CHANNELS", "16",
        "MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "32", "MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM", "64",
        "MODEL.ROI_RELATION_HEAD.EMBED_DIM", "16", "MODEL.ROI_RELATION_HEAD.TRANSFORMER.INNER_DIM", "32",
        "MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE", "32",
        "MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor, "MODEL.ROI_HEADS.SCORE_THRESH", "0.0",
        "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", "8", "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", str(box),
        "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", str(label), "GLOVE_DIR", "/nonexistent", *extra])


def _target(boxes, labels, rels, size=(96, 64)):
    t = BoxList(torch.tensor(boxes, dtype=torch.float32), size)
    t.add_field("labels", torch.tensor(labels))
    matrix = torch.zeros(len(boxes), len(boxes), dtype=torch.long)
    for s, o, p in rels:
        matrix[s, o] = p
    t.add_field("relation", matrix)
    t.add_field("relation_tuple", torch.tensor(rels, dtype=torch.long).reshape(-1, 3))
    return t


def _batch():
    torch.manual_seed(0)
    images = to_image_list([torch.randn(3, 64, 96), torch.randn(3, 64, 96)], 32)
    targets = [_target([[2, 2, 30, 30], [20, 10, 60, 40], [50, 30, 90, 60], [5, 40, 25, 60]], [1, 2, 3, 4],
                       [[0, 1, 1], [1, 2, 2], [3, 0, 4]]),
               _target([[10, 10, 40, 40], [45, 5, 80, 50]], [5, 2], [[0, 1, 3]])]
    return images, targets


@pytest.mark.parametrize("predictor", PREDICTORS)
@pytest.mark.parametrize("mode,box,label", PROTOCOLS)
def test_each_predictor_in_each_protocol_trains_and_predicts(predictor, mode, box, label):
    model = SceneGraphRCNN.from_config(_cfg(predictor, box, label), _statistics())
    images, targets = _batch()
    model.train()
    assert not model.detector.training  # frozen detector stays in eval mode
    losses = model(images, targets)
    assert {"loss_rel", "loss_refine_obj"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    if mode != "sgdet":  # a random detector finds no matching boxes, so SGDet may have no pair to learn from
        total.backward()
        assert all(p.grad is None for p in model.detector.parameters())
        assert any(p.grad is not None for p in model.relation_head.predictor.parameters())
    model.eval()
    with torch.no_grad():
        predictions = model(images, targets)
    evaluator = SceneGraphEvaluator(mode=mode, num_predicates=NUM_PREDICATES,
                                    predicate_names=_statistics()["rel_classes"])
    for prediction, target in zip(predictions, targets):
        pairs = prediction.get_field("rel_pair_idxs")
        scores = prediction.get_field("pred_rel_scores")
        assert scores.shape == (len(pairs), NUM_PREDICATES)
        assert torch.allclose(scores.sum(1), torch.ones(len(pairs)), atol=1e-5)
        if mode != "sgdet":
            assert len(prediction) == len(target)  # GT boxes stay aligned with the GT
            assert torch.equal(prediction.bbox, target.bbox)
            assert len(pairs) == len(target) * (len(target) - 1)
        else:
            assert len(prediction) <= 8
        if mode == "predcls":
            assert torch.equal(prediction.get_field("pred_labels"), target.get_field("labels"))
        evaluator.update(groundtruth_to_eval_fields(target), prediction_to_eval_fields(prediction))
    results = evaluator.compute()
    assert 0.0 <= results["R@50"] <= 1.0


def test_relation_loss_falls_on_a_fixed_batch():
    model = SceneGraphRCNN.from_config(_cfg("MotifPredictor", True, True), _statistics())
    images, targets = _batch()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    history = []
    for _ in range(15):
        torch.manual_seed(1)  # same pair sample every step
        losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    assert history[-1] < 0.6 * history[0]


def test_sgdet_training_labels_detections_by_gt_overlap():
    target = _target([[0, 0, 10, 10], [20, 20, 40, 40]], [3, 4], [[0, 1, 1]])
    detections = BoxList(torch.tensor([[0, 0, 10, 9], [21, 21, 40, 40], [60, 60, 70, 70]],
                                      dtype=torch.float32), (96, 64))
    assert assign_gt_labels(detections, target, 0.5).tolist() == [3, 4, 0]


def test_images_without_boxes_give_empty_predictions():
    model = SceneGraphRCNN.from_config(_cfg("MotifPredictor", True, False), _statistics()).eval()
    images, targets = _batch()
    empty = BoxList(torch.zeros(0, 4), (96, 64))
    empty.add_field("labels", torch.zeros(0, dtype=torch.long))
    empty.add_field("relation", torch.zeros(0, 0, dtype=torch.long))
    empty.add_field("relation_tuple", torch.zeros(0, 3, dtype=torch.long))
    with torch.no_grad():
        predictions = model(images, [targets[0], empty])
    assert len(predictions[1]) == 0 and predictions[1].get_field("rel_pair_idxs").shape == (0, 2)


def test_wrong_class_count_and_missing_targets_are_explained():
    with pytest.raises(ConfigError) as err:  # one rule for every class-count key: the dataset decides
        SceneGraphRCNN.from_config(_cfg("MotifPredictor", True, True, "MODEL.ROI_BOX_HEAD.NUM_CLASSES", "151"),
                                   _statistics())
    assert str(err.value) == ("MODEL.ROI_BOX_HEAD.NUM_CLASSES is 151 but the dataset has 6 object classes (with the "
                              "background): the dataset decides the class counts; set MODEL.ROI_BOX_HEAD.NUM_CLASSES 6")
    with pytest.raises(ConfigError) as err:  # the predicate count was silently ignored before
        SceneGraphRCNN.from_config(_cfg("MotifPredictor", True, True, "MODEL.ROI_RELATION_HEAD.NUM_CLASSES", "51",
                                        "DATASETS.TRAIN", "('VG150_train',)"), _statistics())
    assert str(err.value) == ("MODEL.ROI_RELATION_HEAD.NUM_CLASSES is 51 but VG150_train has 5 predicate classes (with "
                              "the background): the dataset decides the class counts; set "
                              "MODEL.ROI_RELATION_HEAD.NUM_CLASSES 5")
    with pytest.raises(ConfigError, match=r"BOX_HEAD.NUM_CLASSES is 7 .*; MODEL.ROI_RELATION_HEAD.NUM_CLASSES is 4 .* set "
                                          r"MODEL.ROI_BOX_HEAD.NUM_CLASSES 6 MODEL.ROI_RELATION_HEAD.NUM_CLASSES 5$"):
        SceneGraphRCNN.from_config(_cfg("MotifPredictor", True, True, "MODEL.ROI_BOX_HEAD.NUM_CLASSES", "7",
                                        "MODEL.ROI_RELATION_HEAD.NUM_CLASSES", "4"), _statistics())
    model = SceneGraphRCNN.from_config(_cfg("MotifPredictor", True, True), _statistics()).eval()
    images, _ = _batch()
    with pytest.raises(ValueError, match="needs the GT boxes"):
        model(images)


def test_unknown_predictor_lists_registered_ones():
    with pytest.raises(KeyError, match="MotifPredictor"):
        SceneGraphRCNN.from_config(_cfg("MotifPredicter", True, True), _statistics())


def test_sgb_meta_architecture_with_relation_on_builds_the_scene_graph_model():
    from sgg.modeling import build_detection_model

    cfg = _cfg("MotifPredictor", True, True, "MODEL.META_ARCHITECTURE", "GeneralizedRCNN")
    assert isinstance(build_detection_model(cfg, _statistics()), SceneGraphRCNN)
    with pytest.raises(TypeError, match="needs the training statistics"):
        build_detection_model(cfg)


def test_union_features_are_pooled_only_for_predictors_that_read_them():
    freq = SceneGraphRCNN.from_config(_cfg("FrequencyPredictor", False, False), _statistics())
    motif = SceneGraphRCNN.from_config(_cfg("MotifPredictor", False, False), _statistics())
    assert freq.relation_head.union_feature_extractor is None
    assert motif.relation_head.union_feature_extractor is not None
