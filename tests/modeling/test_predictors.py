import itertools
import warnings

import pytest
import torch
import torch.nn.functional as F

from sgg.config import load_config
from sgg.modeling.roi_heads.relation_head.inference import object_prediction_nms
from sgg.modeling.roi_heads.relation_head.layers.box_geometry import encode_box_geometry
from sgg.modeling.roi_heads.relation_head.layers.frequency_bias import FrequencyBias
from sgg.modeling.roi_heads.relation_head.layers.object_labels import to_onehot
from sgg.modeling.roi_heads.relation_head.predictors import build_predictor
from sgg.modeling.roi_heads.relation_head.predictors.motifs import order_by_center_x
from sgg.modeling.roi_heads.relation_head.types import RelationBatch
from sgg.structures import BoxList
from sgg.utils import word_vectors
from sgg.utils.word_vectors import obj_edge_vectors

OBJ_CLASSES = ["__background__", "cat", "dog", "street sign", "tree", "car"]
REL_CLASSES = ["__background__", "on", "has", "near", "parked on"]
C, R = len(OBJ_CLASSES), len(REL_CLASSES)
ROI_DIM = 48  # != CONTEXT_POOLING_DIM, so the up_dim projection of the union features is exercised
PREDICTORS = ["FrequencyPredictor", "MotifPredictor", "TransformerPredictor"]
MODES = ["predcls", "sgcls", "sgdet"]
MODE_SWITCHES = {"predcls": (True, True), "sgcls": (True, False), "sgdet": (False, False)}

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")


def make_cfg(predictor, mode, *extra):
    gt_box, gt_label = MODE_SWITCHES[mode]
    opts = ["MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor,
            "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", gt_box, "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", gt_label,
            "MODEL.ROI_RELATION_HEAD.EMBED_DIM", 16, "MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", 32,
            "MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM", 64, "MODEL.ROI_RELATION_HEAD.CONTEXT_OBJ_LAYER", 1,
            "MODEL.ROI_RELATION_HEAD.CONTEXT_REL_LAYER", 1,
            "MODEL.ROI_RELATION_HEAD.TRANSFORMER.OBJ_LAYER", 2, "MODEL.ROI_RELATION_HEAD.TRANSFORMER.REL_LAYER", 1,
            "MODEL.ROI_RELATION_HEAD.TRANSFORMER.NUM_HEAD", 4, "MODEL.ROI_RELATION_HEAD.TRANSFORMER.KEY_DIM", 8,
            "MODEL.ROI_RELATION_HEAD.TRANSFORMER.VAL_DIM", 8, "MODEL.ROI_RELATION_HEAD.TRANSFORMER.INNER_DIM", 64,
            "GLOVE_DIR", "/nonexistent/glove"]
    return load_config(opts=[str(o) for o in opts] + [str(o) for o in extra])


def make_statistics(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"pred_dist": F.log_softmax(torch.randn(C, C, R, generator=g), dim=-1),
            "fg_matrix": torch.randint(0, 5, (C, C, R), generator=g),
            "obj_classes": OBJ_CLASSES, "rel_classes": REL_CLASSES}


def make_image(mode, n, training, g, size=(100, 80)):
    xy = torch.rand(n, 2, generator=g) * 60
    wh = torch.rand(n, 2, generator=g) * 30 + 5
    boxes = BoxList(torch.cat([xy, xy + wh], dim=1), size)
    labels = torch.randint(1, C, (n,), generator=g)
    if mode == "sgdet" and n > 1:
        labels[0] = 0  # an unmatched detection
    if mode != "sgdet" or training:
        boxes.add_field("labels", labels)
    if mode != "predcls":
        boxes.add_field("predict_logits", torch.randn(n, C, generator=g))
    if mode == "sgdet":
        jitter = torch.rand(n, C, 4, generator=g) * 2
        boxes.add_field("boxes_per_cls", boxes.bbox[:, None, :] + jitter)
    return boxes


def all_pairs(n):
    return torch.tensor([[i, j] for i in range(n) for j in range(n) if i != j], dtype=torch.long).reshape(-1, 2)


def make_batch(mode, num_boxes=(3, 5), training=True, use_vision=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    boxes = [make_image(mode, n, training, g) for n in num_boxes]
    pair_idxs = [all_pairs(n) for n in num_boxes]
    num_pairs = sum(len(p) for p in pair_idxs)
    return RelationBatch(
        mode=mode, boxes=boxes, pair_idxs=pair_idxs,
        roi_features=torch.randn(sum(num_boxes), ROI_DIM, generator=g),
        union_features=torch.rand(num_pairs, ROI_DIM, generator=g) if use_vision else None,
        rel_labels=[torch.randint(0, R, (len(p),), generator=g) for p in pair_idxs] if training else None)


def build(predictor, mode, *extra, stats=None):
    torch.manual_seed(0)
    return build_predictor(make_cfg(predictor, mode, *extra), ROI_DIM, stats or make_statistics())


def check_output(out, batch):
    n, p = sum(batch.num_boxes), sum(batch.num_pairs)
    assert out.obj_logits.shape == (n, C) and out.obj_preds.shape == (n,) and out.rel_logits.shape == (p, R)
    assert out.obj_preds.dtype == torch.long
    assert torch.isfinite(out.obj_logits).all() and torch.isfinite(out.rel_logits).all()
    if n:
        assert out.obj_preds.min() >= 1 and out.obj_preds.max() < C  # pairs are scored with foreground labels


def training_loss(out, batch):
    loss = F.cross_entropy(out.rel_logits, torch.cat(batch.rel_labels)) if out.rel_logits.numel() \
        else out.rel_logits.sum()
    if batch.mode != "predcls" and out.obj_logits.requires_grad:
        loss = loss + F.cross_entropy(out.obj_logits, torch.cat([b.get_field("labels") for b in batch.boxes]))
    return loss


# -------------------------------------------------------------------------------------------- every predictor x mode
@pytest.mark.parametrize("predictor,mode", list(itertools.product(PREDICTORS, MODES)))
def test_train_forward_shapes_and_gradients_reach_every_parameter(predictor, mode):
    model = build(predictor, mode).train()
    batch = make_batch(mode, (3, 5), training=True)
    out = model(batch)
    check_output(out, batch)
    training_loss(out, batch).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{predictor}/{mode}: no gradient reaches {name}"
        assert torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize("predictor,mode", list(itertools.product(PREDICTORS, MODES)))
def test_eval_forward_shapes_with_several_images(predictor, mode):
    model = build(predictor, mode).eval()
    batch = make_batch(mode, (3, 5, 2), training=False)
    with torch.no_grad():
        out = model(batch)
    check_output(out, batch)
    if mode == "predcls":
        labels = torch.cat([b.get_field("labels") for b in batch.boxes])
        assert torch.equal(out.obj_preds, labels) and torch.equal(out.obj_logits.argmax(1), labels)


@pytest.mark.parametrize("predictor,mode,training", list(itertools.product(PREDICTORS, MODES, [True, False])))
@pytest.mark.parametrize("num_boxes", [(1,), (1, 4)])
def test_images_with_one_box_and_no_pairs(predictor, mode, training, num_boxes):
    model = build(predictor, mode).train(training)
    batch = make_batch(mode, num_boxes, training=training)
    out = model(batch)
    check_output(out, batch)
    if training:
        training_loss(out, batch).backward()


@pytest.mark.parametrize("predictor,mode", list(itertools.product(PREDICTORS, MODES)))
def test_images_without_boxes_at_test(predictor, mode):
    model = build(predictor, mode).eval()
    for num_boxes in [(0,), (0, 3), (3, 0, 2)]:
        batch = make_batch(mode, num_boxes, training=False)
        with torch.no_grad():
            check_output(model(batch), batch)


@pytest.mark.parametrize("predictor,mode", list(itertools.product(["MotifPredictor", "TransformerPredictor"], MODES)))
def test_batched_test_equals_one_image_at_a_time(predictor, mode):
    """SGB's Motif decoder asserts one image per batch at test; ours decodes the batch at once, identically."""
    model = build(predictor, mode).eval()
    batch = make_batch(mode, (4, 2, 5), training=False)
    with torch.no_grad():
        joint = model(batch)
        singles = [model(RelationBatch(mode, [b], [p], f, u)) for b, p, f, u in zip(
            batch.boxes, batch.pair_idxs, batch.roi_features.split(batch.num_boxes),
            batch.union_features.split(batch.num_pairs))]
    assert torch.allclose(joint.obj_logits, torch.cat([s.obj_logits for s in singles]), atol=1e-5)
    assert torch.equal(joint.obj_preds, torch.cat([s.obj_preds for s in singles]))
    assert torch.allclose(joint.rel_logits, torch.cat([s.rel_logits for s in singles]), atol=1e-4)


@pytest.mark.parametrize("predictor", ["MotifPredictor", "TransformerPredictor"])
def test_without_vision_and_without_bias(predictor):
    model = build(predictor, "sgcls", "MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION", "False",
                  "MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS", "False").train()
    assert not any(isinstance(m, FrequencyBias) for m in model.modules())
    assert model.edge_head.up_dim is None
    batch = make_batch("sgcls", (3, 4), use_vision=False)
    out = model(batch)
    check_output(out, batch)
    training_loss(out, batch).backward()


def test_bias_is_added_to_the_pair_logits():
    model = build("TransformerPredictor", "predcls").eval()
    batch = make_batch("predcls", (3, 4), training=False)
    with torch.no_grad():
        with_bias = model(batch).rel_logits
        bias = model.edge_head.freq_bias
        model.edge_head.freq_bias = None
        without_bias = model(batch).rel_logits
        labels = torch.cat([b.get_field("labels") for b in batch.boxes])
        offsets = [0, 3]
        pairs = torch.cat([p + o for p, o in zip(batch.pair_idxs, offsets)])
    assert torch.allclose(with_bias - without_bias, bias.index_with_labels(labels[pairs]), atol=1e-5)


def test_union_features_of_the_wrong_size_are_rejected():
    model = build("MotifPredictor", "predcls").eval()
    batch = make_batch("predcls", (3,), training=False)
    batch.union_features = torch.rand(6, 7)
    with pytest.raises(ValueError, match="union_features"):
        model(batch)


def test_predcls_model_rejects_sgcls_batches():
    model = build("MotifPredictor", "predcls").eval()
    with pytest.raises(ValueError, match="built for predcls"):
        model(make_batch("sgcls", (3,), training=False))


# ------------------------------------------------------------------------------------------------------------- FREQ
def test_freq_logits_are_pred_dist_rows_of_the_gt_labels_in_predcls():
    stats = make_statistics()
    model = build("FrequencyPredictor", "predcls", stats=stats).eval()
    boxes = BoxList(torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 50, 50.]]), (60, 60))
    boxes.add_field("labels", torch.tensor([1, 4, 3]))
    batch = RelationBatch("predcls", [boxes], [torch.tensor([[0, 1], [2, 0], [1, 2]])], torch.randn(3, ROI_DIM))
    out = model(batch)
    expected = torch.stack([stats["pred_dist"][1, 4], stats["pred_dist"][3, 1], stats["pred_dist"][4, 3]])
    assert torch.allclose(out.rel_logits, expected)
    assert torch.equal(out.obj_logits, to_onehot(torch.tensor([1, 4, 3]), C))


def test_freq_sgcls_uses_the_detector_argmax_over_foreground():
    stats = make_statistics()
    model = build("FrequencyPredictor", "sgcls", stats=stats).eval()
    boxes = BoxList(torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30.]]), (60, 60))
    logits = torch.full((2, C), -5.0)
    logits[0, 0], logits[0, 2] = 9.0, 1.0  # background wins, the pair uses class 2
    logits[1, 5] = 3.0
    boxes.add_field("labels", torch.tensor([1, 1]))
    boxes.add_field("predict_logits", logits)
    batch = RelationBatch("sgcls", [boxes], [torch.tensor([[0, 1], [1, 0]])], torch.randn(2, ROI_DIM))
    out = model(batch)
    assert out.obj_preds.tolist() == [2, 5]
    assert torch.equal(out.obj_logits, logits)
    assert torch.allclose(out.rel_logits, torch.stack([stats["pred_dist"][2, 5], stats["pred_dist"][5, 2]]))


def test_freq_sgdet_test_labels_come_from_the_later_nms():
    model = build("FrequencyPredictor", "sgdet", "TEST.RELATION.LATER_NMS_PREDICTION_THRES", "0.5").eval()
    batch = make_batch("sgdet", (6,), training=False, seed=3)
    out = model(batch)
    image = batch.boxes[0]
    expected = object_prediction_nms(image.get_field("boxes_per_cls"), image.get_field("predict_logits"), 0.5)
    assert torch.equal(out.obj_preds, expected)


def test_freq_requires_the_bias():
    with pytest.raises(ValueError, match="PREDICT_USE_BIAS"):
        build("FrequencyPredictor", "predcls", "MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS", "False")


# ---------------------------------------------------------------------------------------------------------- Motif
def test_motif_orders_each_image_by_centre_x():
    first = BoxList(torch.tensor([[0, 0, 20, 10], [80, 0, 100, 10], [40, 0, 60, 10.]]), (100, 100))  # cx 10, 90, 50
    second = BoxList(torch.tensor([[30, 0, 40, 10], [0, 0, 10, 10.]]), (100, 100))  # cx 35, 5
    batch = RelationBatch("predcls", [first, second], [all_pairs(3), all_pairs(2)], torch.zeros(5, 4))
    packed = order_by_center_x(batch)
    padded, lengths = torch.nn.utils.rnn.pad_packed_sequence(packed, batch_first=True, padding_value=-1)
    assert lengths.tolist() == [3, 2]
    # descending centre x within an image (SGB's order); the second image's indices are offset by 3
    assert padded.tolist() == [[1, 2, 0], [3, 4, -1]]


def _permuted(batch, image_perm):
    """The same 1-image batch with its boxes listed in another order (pairs and union features follow)."""
    boxes = batch.boxes[0][image_perm]
    inverse = torch.argsort(image_perm)
    pairs = inverse[batch.pair_idxs[0]]
    return RelationBatch(batch.mode, [boxes], [pairs], batch.roi_features[image_perm], batch.union_features)


@pytest.mark.parametrize("predictor,mode", [("MotifPredictor", "predcls"), ("MotifPredictor", "sgcls"),
                                            ("TransformerPredictor", "predcls")])
def test_permuting_the_input_boxes_permutes_the_outputs(predictor, mode):
    model = build(predictor, mode).eval()
    batch = make_batch(mode, (5,), training=False, seed=1)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        out = model(batch)
        out_perm = model(_permuted(batch, perm))
    assert torch.allclose(out_perm.obj_logits, out.obj_logits[perm], atol=1e-5)
    assert torch.equal(out_perm.obj_preds, out.obj_preds[perm])
    assert torch.allclose(out_perm.rel_logits, out.rel_logits, atol=1e-4)  # same pairs, same order


def test_motif_teacher_forcing_commits_gt_labels_in_training():
    model = build("MotifPredictor", "sgcls").train()
    batch = make_batch("sgcls", (3, 4))
    out = model(batch)
    assert torch.equal(out.obj_preds, torch.cat([b.get_field("labels") for b in batch.boxes]))


# ---------------------------------------------------------------------------------------------------- learning
@pytest.mark.parametrize("predictor,mode", [("MotifPredictor", "predcls"), ("TransformerPredictor", "predcls"),
                                            ("MotifPredictor", "sgcls"), ("TransformerPredictor", "sgdet")])
def test_loss_falls_on_a_fixed_batch(predictor, mode):
    model = build(predictor, mode).train()
    batch = make_batch(mode, (4, 5), training=True, seed=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(batch).rel_logits, torch.cat(batch.rel_labels))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


# ---------------------------------------------------------------------------------------------------- building
def test_unknown_predictor_lists_the_registered_ones():
    with pytest.raises(KeyError) as error:
        build("MotifsPredictor", "predcls")
    message = str(error.value)
    assert "MotifsPredictor" in message
    for name in PREDICTORS:
        assert name in message


def test_statistics_shape_mismatch_is_reported():
    stats = make_statistics()
    stats["rel_classes"] = REL_CLASSES[:-1]
    with pytest.raises(ValueError, match="pred_dist"):
        build("MotifPredictor", "predcls", stats=stats)


def test_box_geometry_encoding():
    boxes = BoxList(torch.tensor([[9.0, 19.0, 28.0, 58.0]]), (100, 200))  # w = 20, h = 40 with +1 widths
    encoded = encode_box_geometry([boxes])[0]
    expected = torch.tensor([0.2, 0.2, 0.19, 0.195, 0.09, 0.095, 0.28, 0.29, 0.04])
    assert torch.allclose(encoded, expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- word vectors
def _write_glove(directory, dim, table):
    path = directory / f"glove.6B.{dim}d.txt"
    path.write_text("".join(f"{w} {' '.join(str(v) for v in vec)}\n" for w, vec in table.items()))
    return path


GLOVE = {"background": [0.0, 0.0, 0.0, 1.0], "cat": [1.0, 2.0, 3.0, 4.0], "street": [0.5, -0.5, 1.5, -1.5],
         "sign": [2.0, 2.0, 2.0, 2.0], "tree": [-1.0, 0.25, 0.0, 3.0]}


def test_word_vectors_from_a_glove_text_file(tmp_path):
    _write_glove(tmp_path, 4, GLOVE)
    names = ["__background__", "cat", "street sign", "tree", "unicorn"]
    vectors = obj_edge_vectors(names, str(tmp_path), 4)
    assert vectors.shape == (5, 4)
    assert torch.equal(vectors[1], torch.tensor(GLOVE["cat"]))
    assert torch.equal(vectors[2], torch.tensor(GLOVE["street"]))  # SGB: the longest word of a multi-word name
    assert torch.equal(vectors[3], torch.tensor(GLOVE["tree"]))
    assert torch.equal(vectors[0], word_vectors.random_vector("__background__", 4))  # unknown: seeded random
    assert torch.equal(vectors[4], word_vectors.random_vector("unicorn", 4))
    average = obj_edge_vectors(names, str(tmp_path), 4, multiword="average")
    assert torch.allclose(average[2], (torch.tensor(GLOVE["street"]) + torch.tensor(GLOVE["sign"])) / 2)


def test_word_vectors_from_a_torch_cache(tmp_path):
    words = list(GLOVE)
    torch.save(({w: i for i, w in enumerate(words)}, torch.tensor([GLOVE[w] for w in words]), 4),
               tmp_path / "glove.6B.4d.pt")
    vectors = obj_edge_vectors(["tree", "cat"], str(tmp_path), 4)
    assert torch.equal(vectors, torch.tensor([GLOVE["tree"], GLOVE["cat"]]))


def test_missing_word_vectors_warn_once_and_are_seeded(tmp_path):
    missing_dir = str(tmp_path / "no_glove")
    with pytest.warns(UserWarning, match="glove.6B.8d.txt") as record:
        first = obj_edge_vectors(OBJ_CLASSES, missing_dir, 8)
    assert missing_dir in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second lookup, even for other names, does not warn again
        second = obj_edge_vectors(OBJ_CLASSES[:3], missing_dir, 8)
    assert torch.equal(first, torch.stack([word_vectors.random_vector(name, 8) for name in OBJ_CLASSES]))
    assert torch.equal(second, first[:3])
    assert torch.equal(obj_edge_vectors(OBJ_CLASSES, missing_dir, 8), first)  # deterministic


def test_label_embeddings_of_two_builds_are_identical_without_glove():
    a, b = build("MotifPredictor", "sgcls"), build("MotifPredictor", "sgcls")
    assert torch.equal(a.context.obj_embed2.weight, b.context.obj_embed2.weight)
    assert torch.equal(a.context.decoder.label_embed.weight[1:], a.context.obj_embed2.weight)
