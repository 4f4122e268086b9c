"""The detector's contract on tiny-FPN: losses in training, detections with the relation heads' fields in eval,
box features for given boxes, SGB post-processing rules, anchors from the keys, and that it learns."""
import pytest
import torch

from sgg.config import get_cfg
from sgg.modeling import build_detection_model
from sgg.modeling.roi_heads.box_head.inference import BoxPostProcessor, first_per_group, rank_within_groups
from sgg.structures import BoxList, to_image_list

NUM_CLASSES = 4  # background + 3 colours
COLOURS = {1: (100.0, -80.0, -80.0), 2: (-80.0, 100.0, -80.0), 3: (-80.0, -80.0, 100.0)}
LOSS_KEYS = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}


def tiny_cfg(*overrides):
    cfg = get_cfg()
    cfg.merge_from_list([
        "MODEL.BACKBONE.CONV_BODY", "tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", True,
        "MODEL.BACKBONE.FREEZE_CONV_BODY_AT", 0, "MODEL.BACKBONE.OUT_CHANNELS", 32,
        "MODEL.TINY_BACKBONE.STAGE_CHANNELS", (8, 16, 32, 32),
        "MODEL.RPN.ANCHOR_SIZES", (16, 32, 64, 128, 256), "MODEL.RPN.RPN_MID_CHANNEL", 32,
        "MODEL.RPN.PRE_NMS_TOP_N_TRAIN", 300, "MODEL.RPN.PRE_NMS_TOP_N_TEST", 300,
        "MODEL.RPN.FPN_POST_NMS_TOP_N_TRAIN", 100, "MODEL.RPN.FPN_POST_NMS_TOP_N_TEST", 100,
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 64, "MODEL.ROI_HEADS.POSITIVE_FRACTION", 0.5,
        "MODEL.ROI_BOX_HEAD.NUM_CLASSES", NUM_CLASSES, "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", 4,
        "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", 64, "MODEL.ROI_HEADS.SCORE_THRESH", 0.0,
        "MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN", True,
    ] + list(overrides))
    return cfg


def tiny_model(*overrides, seed=0):
    torch.manual_seed(seed)
    return build_detection_model(tiny_cfg(*overrides))


def fake_batch(num_images=4, height=96, width=128, seed=0):
    """Coloured rectangles (colour = class) on a noisy background, already 'normalised' like the loader's output."""
    gen = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(num_images):
        image = torch.randn(3, height, width, generator=gen) * 10.0
        boxes, labels = [], []
        for label in (1, 2, 3):
            w = int(torch.randint(20, 48, (1,), generator=gen))
            h = int(torch.randint(20, 40, (1,), generator=gen))
            x = int(torch.randint(0, width - w, (1,), generator=gen))
            y = int(torch.randint(0, height - h, (1,), generator=gen))
            image[:, y:y + h, x:x + w] = torch.tensor(COLOURS[label])[:, None, None]
            boxes.append([x, y, x + w, y + h])
            labels.append(label)
        target = BoxList(torch.tensor(boxes, dtype=torch.float32), (width, height))
        target.add_field("labels", torch.tensor(labels))
        images.append(image)
        targets.append(target)
    return to_image_list(images, 32), targets


def test_training_returns_the_four_named_losses():
    model = tiny_model()
    images, targets = fake_batch(2)
    losses = model(images, targets)
    assert set(losses) == LOSS_KEYS
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.roi_heads.box_predictor.cls_score.weight.grad is not None
    assert model.backbone.body.stem[0].weight.grad is not None


def test_eval_output_contract_fields_shapes_and_sizes():
    model = tiny_model("MODEL.ROI_HEADS.DETECTIONS_PER_IMG", 30).eval()
    images = [torch.randn(3, 70, 100), torch.randn(3, 96, 64)]  # unpadded list input
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for result, (h, w) in zip(out, [(70, 100), (96, 64)]):
        n = len(result)
        assert isinstance(result, BoxList) and result.mode == "xyxy" and result.size == (w, h)
        assert 0 < n <= 30
        assert result.get_field("pred_labels").dtype == torch.int64
        assert result.get_field("pred_scores").dtype == torch.float32
        assert torch.equal(result.get_field("labels"), result.get_field("pred_labels"))
        assert torch.equal(result.get_field("scores"), result.get_field("pred_scores"))
        assert result.get_field("predict_logits").shape == (n, NUM_CLASSES)
        assert result.get_field("boxes_per_cls").shape == (n, NUM_CLASSES, 4)
        assert result.get_field("box_features").shape == (n, 64)
        labels = result.get_field("pred_labels")
        assert bool((labels >= 1).all() and (labels < NUM_CLASSES).all())
        # the box of a detection is its class's entry of boxes_per_cls, inside the unpadded image
        assert torch.equal(result.bbox, result.get_field("boxes_per_cls")[torch.arange(n), labels])
        assert float(result.bbox[:, 2].max()) <= w and float(result.bbox[:, 3].max()) <= h
        scores = result.get_field("pred_scores")
        assert bool((scores[:-1] >= scores[1:]).all())
        # the logits are those of the kept detection's proposal: softmax gives back its score
        probs = result.get_field("predict_logits").softmax(-1)
        assert torch.allclose(probs[torch.arange(n), labels], scores, atol=1e-6)


def test_stage_methods_compose_to_the_eval_forward_and_pool_gt_boxes():
    model = tiny_model().eval()
    images, targets = fake_batch(2)
    with torch.no_grad():
        features = model.extract_features(images)
        assert list(features) == model.featmap_names == ["0", "1", "2", "3", "pool"]
        assert dict(model.feature_strides) == {"0": 4, "1": 8, "2": 16, "3": 32, "pool": 64}
        assert model.box_featmap_names == ["0", "1", "2", "3"]
        interface = model.feature_interface()  # what the relation head is built from
        assert interface.box_pooler is model.roi_heads.box_roi_pool and interface.box_head is model.roi_heads.box_head
        assert interface.box_feature_maps == ("0", "1", "2", "3")
        assert interface.feature_channels == features["0"].shape[1] == model.backbone.out_channels
        for name, stride in model.feature_strides.items():
            assert features[name].shape[-1] == images.tensors.shape[-1] // stride
        proposals, losses = model.propose(images, features, targets)
        assert losses == {} and len(proposals) == 2 and proposals[0].shape[1] == 4
        assert max(len(p) for p in proposals) <= 100
        staged = model.detect(images, features, proposals)
        direct = model(images)
        for a, b in zip(staged, direct):
            assert torch.allclose(a.bbox, b.bbox) and torch.equal(a.get_field("labels"), b.get_field("labels"))
        pooled = model.pool_box_features(features, targets, images.image_sizes)
        assert pooled.shape == (sum(len(t) for t in targets), 64)
        assert model.box_class_logits(pooled).shape == (len(pooled), NUM_CLASSES)
        empty = [BoxList(torch.zeros(0, 4), t.size) for t in targets]
        assert model.pool_box_features(features, empty, images.image_sizes).shape == (0, 64)


def test_training_mode_propose_gives_rpn_losses_and_detect_still_postprocesses():
    model = tiny_model()
    images, targets = fake_batch(2)
    features = model.extract_features(images)
    proposals, losses = model.propose(images, features, targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg"}
    detections = model.detect(images, features, proposals)  # SGDet runs post-processing in training too
    assert len(detections) == 2 and detections[0].has_field("box_features")
    with pytest.raises(ValueError, match="targets"):
        model.propose(images, features)


def test_loss_falls_on_tiny_fake_images():
    model = tiny_model("MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", 128)
    images, targets = fake_batch(4, seed=1)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.02, momentum=0.9)
    history = []
    for _ in range(20):
        losses = model(images, targets)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert all(torch.isfinite(torch.tensor(history)))
    first, last = sum(history[:3]) / 3, sum(history[-3:]) / 3
    assert last < 0.7 * first, history


def test_detections_per_img_caps_the_output():
    model = tiny_model("MODEL.ROI_HEADS.DETECTIONS_PER_IMG", 7).eval()
    images, _ = fake_batch(2)
    with torch.no_grad():
        assert all(len(r) <= 7 for r in model(images))
        model.roi_heads.post_processor.detections_per_img = 1000
        assert max(len(r) for r in model(images)) > 7


def test_nms_filter_duplicates_keeps_one_class_per_proposal():
    images, _ = fake_batch(2)
    for filter_duplicates in (False, True):
        model = tiny_model("MODEL.ROI_HEADS.NMS_FILTER_DUPLICATES", filter_duplicates,
                           "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", 1000).eval()
        with torch.no_grad():
            out = model(images)
        # with an untrained head every class of a proposal survives; a proposal is identified by its logits row
        rows = torch.cat([r.get_field("predict_logits") for r in out])
        unique_rows = torch.unique(rows, dim=0)
        if filter_duplicates:
            assert len(unique_rows) == len(rows)
        else:
            assert len(unique_rows) < len(rows)


def test_post_processor_rules_on_hand_made_scores():
    from torchvision.models.detection._utils import BoxCoder

    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    # 3 proposals, classes 0 (bg), 1, 2. Proposals 0 and 1 overlap heavily; 2 is apart.
    proposals = [torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0], [50.0, 50.0, 60.0, 60.0]])]
    probs = torch.tensor([[0.1, 0.5, 0.4], [0.2, 0.6, 0.2], [0.0, 0.3, 0.7]])
    logits = probs.log()
    regression = torch.zeros(3, 3 * 4)
    features = torch.arange(3.0)[:, None].repeat(1, 2)
    post = BoxPostProcessor(coder, score_thresh=0.25, nms_thresh=0.5, detections_per_img=10,
                            post_nms_per_cls_topn=300, nms_filter_duplicates=False)
    (result,) = post(logits, regression, features, proposals, [(100, 100)])
    # class 1: proposals 1 (0.6) suppresses 0 (0.5); 2 (0.3). class 2: 0 (0.4), 2 (0.7); 1 (0.2) below threshold
    got = sorted(zip(result.get_field("pred_scores").tolist(), result.get_field("pred_labels").tolist(),
                     result.get_field("box_features")[:, 0].tolist()), reverse=True)
    expected = [(0.7, 2, 2.0), (0.6, 1, 1.0), (0.4, 2, 0.0), (0.3, 1, 2.0)]
    assert [(round(s, 4), l, f) for s, l, f in got] == expected
    post.nms_filter_duplicates = True  # proposal 2 keeps class 2 only
    (result,) = post(logits, regression, features, proposals, [(100, 100)])
    assert result.get_field("pred_labels").tolist() == [2, 1, 2]
    assert result.get_field("box_features")[:, 0].tolist() == [2.0, 1.0, 0.0]
    post.post_nms_per_cls_topn, post.nms_filter_duplicates = 1, False  # best one per class
    (result,) = post(logits, regression, features, proposals, [(100, 100)])
    assert result.get_field("pred_labels").tolist() == [2, 1]
    post.post_nms_per_cls_topn, post.detections_per_img = 300, 2
    (result,) = post(logits, regression, features, proposals, [(100, 100)])
    assert len(result) == 2


def test_group_helpers():
    groups = torch.tensor([3, 1, 3, 3, 1, 0])
    assert rank_within_groups(groups).tolist() == [0, 0, 1, 2, 1, 0]
    assert first_per_group(groups).tolist() == [True, True, False, False, False, True]
    assert rank_within_groups(torch.zeros(0, dtype=torch.long)).numel() == 0


@pytest.mark.parametrize("ratios", [(0.5, 1.0, 2.0), (0.23232838, 0.63365731, 1.28478321, 3.15089189)])
def test_anchor_keys_shape_the_rpn(ratios):
    model = tiny_model("MODEL.RPN.ASPECT_RATIOS", ratios, "MODEL.RPN.ANCHOR_SIZES", (8, 16, 32, 64, 128))
    generator = model.rpn.anchor_generator
    assert generator.sizes == ((8,), (16,), (32,), (64,), (128,))
    assert generator.num_anchors_per_location() == [len(ratios)] * 5
    assert model.rpn.head.cls_logits.out_channels == len(ratios)
    assert model.rpn.head.bbox_pred.out_channels == 4 * len(ratios)
    assert model.rpn.head.conv[0][0].out_channels == 32  # RPN_MID_CHANNEL
    # aspect ratio = height / width, as maskrcnn-benchmark
    cell = generator.cell_anchors[4]  # size 128 (torchvision rounds anchor corners to integers)
    heights, widths = cell[:, 3] - cell[:, 1], cell[:, 2] - cell[:, 0]
    assert torch.allclose(heights / widths, torch.tensor(ratios, dtype=torch.float32), rtol=0.05)
    assert torch.allclose((heights * widths).sqrt(), torch.tensor(128.0), rtol=0.05)


def test_rpn_and_roi_keys_reach_torchvision_parts():
    model = tiny_model("MODEL.RPN.PRE_NMS_TOP_N_TRAIN", 123, "MODEL.RPN.FPN_POST_NMS_TOP_N_TEST", 45,
                       "MODEL.RPN.NMS_THRESH", 0.6, "MODEL.ROI_HEADS.FG_IOU_THRESHOLD", 0.55,
                       "MODEL.ROI_HEADS.BG_IOU_THRESHOLD", 0.25, "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 77,
                       "MODEL.ROI_HEADS.POSITIVE_FRACTION", 0.3, "MODEL.ROI_HEADS.NMS", 0.4,
                       "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO", 1)
    rpn, heads = model.rpn, model.roi_heads
    assert rpn._pre_nms_top_n["training"] == 123 and rpn._post_nms_top_n["testing"] == 45
    assert rpn.nms_thresh == 0.6
    assert heads.proposal_matcher.high_threshold == 0.55 and heads.proposal_matcher.low_threshold == 0.25
    assert heads.fg_bg_sampler.batch_size_per_image == 77 and heads.fg_bg_sampler.positive_fraction == 0.3
    assert heads.post_processor.nms_thresh == 0.4 and heads.box_roi_pool.sampling_ratio == 1
    assert heads.box_roi_pool.output_size == (4, 4)


def test_gt_boxes_join_proposals_only_when_configured():
    images, targets = fake_batch(1)
    for add_gt in (True, False):
        model = tiny_model("MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN", add_gt)
        proposals = [torch.tensor([[0.0, 0.0, 5.0, 5.0]])]
        merged = model.roi_heads.add_gt_proposals(proposals, [targets[0].bbox])
        assert len(merged[0]) == (1 + len(targets[0]) if add_gt else 1)
        assert merged is not proposals


def test_class_agnostic_regression_trains_and_detects():
    model = tiny_model("MODEL.CLS_AGNOSTIC_BBOX_REG", True)
    assert model.roi_heads.box_predictor.bbox_pred.out_features == 8
    images, targets = fake_batch(2)
    losses = model(images, targets)
    assert set(losses) == LOSS_KEYS
    model.eval()
    with torch.no_grad():
        (result, _) = model(images)
    boxes = result.get_field("boxes_per_cls")
    assert torch.allclose(boxes[:, 1], boxes[:, 2])  # one foreground regression shared by all classes


def test_state_dict_round_trip_and_torchvision_style_names():
    model = tiny_model(seed=0)
    other = tiny_model(seed=1)
    state = model.state_dict()
    assert "roi_heads.box_head.fc6.weight" in state and "rpn.head.cls_logits.weight" in state
    assert any(k.startswith("backbone.fpn.") for k in state)
    result = other.load_state_dict(state)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(other.roi_heads.box_predictor.cls_score.weight, model.roi_heads.box_predictor.cls_score.weight)
