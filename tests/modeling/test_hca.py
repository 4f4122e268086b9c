"""HybridCoAttentionPredictor (ReBalance-HCA, METHODS.md 5.1): the four-stream and SHA layers against a direct
computation, attention kept within each image, shapes and gradients in the three protocols."""
import itertools
import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from sgg.config import load_config
from sgg.modeling.roi_heads.relation_head.ba_sgg import (TransferClassifier, add_clean_classifier,
                                                         map_stage1_state_dict, transfer_matrix)
from sgg.modeling.roi_heads.relation_head.predictors import build_predictor
from sgg.modeling.roi_heads.relation_head.predictors.hca import (AttentionDims, FourStreamLayer,
                                                                 HybridCoAttentionPredictor, SHALayer)
from sgg.modeling.roi_heads.relation_head.types import RelationBatch
from sgg.structures import BoxList

OBJ_CLASSES = ["__background__", "cat", "dog", "street sign", "tree", "car"]
REL_CLASSES = ["__background__", "on", "has", "near", "parked on"]
C, R = len(OBJ_CLASSES), len(REL_CLASSES)
ROI_DIM = 48
MODES = ["predcls", "sgcls", "sgdet"]
MODE_SWITCHES = {"predcls": (True, True), "sgcls": (True, False), "sgdet": (False, False)}

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_values import load_golden  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")


def make_cfg(mode, *extra):
    gt_box, gt_label = MODE_SWITCHES[mode]
    head = "MODEL.ROI_RELATION_HEAD."
    opts = [head + "PREDICTOR", "HybridCoAttentionPredictor", head + "USE_GT_BOX", gt_box,
            head + "USE_GT_OBJECT_LABEL", gt_label, head + "EMBED_DIM", 16, head + "CONTEXT_HIDDEN_DIM", 32,
            head + "CONTEXT_POOLING_DIM", 64, head + "HCA.OBJ_LAYER", 2, head + "HCA.REL_LAYER", 1,
            head + "HCA.NUM_HEAD", 4, head + "HCA.KEY_DIM", 8, head + "HCA.VAL_DIM", 6, head + "HCA.INNER_DIM", 40,
            "GLOVE_DIR", "/nonexistent/glove", *extra]
    return load_config(opts=[str(o) for o in opts])


def make_statistics():
    g = torch.Generator().manual_seed(0)
    return {"pred_dist": F.log_softmax(torch.randn(C, C, R, generator=g), dim=-1),
            "obj_classes": OBJ_CLASSES, "rel_classes": REL_CLASSES}


def build(mode, *extra):
    torch.manual_seed(0)
    return build_predictor(make_cfg(mode, *extra), ROI_DIM, make_statistics())


def make_image(mode, n, training, g):
    xy = torch.rand(n, 2, generator=g) * 60
    boxes = BoxList(torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 30 + 5], dim=1), (100, 80))
    labels = torch.randint(1, C, (n,), generator=g)
    if mode != "sgdet" or training:
        boxes.add_field("labels", labels)
    if mode != "predcls":
        boxes.add_field("predict_logits", torch.randn(n, C, generator=g))
    if mode == "sgdet":
        boxes.add_field("boxes_per_cls", boxes.bbox[:, None, :] + torch.rand(n, C, 4, generator=g) * 2)
    return boxes


def all_pairs(n):
    return torch.tensor([[i, j] for i in range(n) for j in range(n) if i != j], dtype=torch.long).reshape(-1, 2)


def make_batch(mode, num_boxes, training=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    boxes = [make_image(mode, n, training, g) for n in num_boxes]
    pair_idxs = [all_pairs(n) for n in num_boxes]
    return RelationBatch(mode=mode, boxes=boxes, pair_idxs=pair_idxs,
                         roi_features=torch.randn(sum(num_boxes), ROI_DIM, generator=g),
                         union_features=torch.rand(sum(len(p) for p in pair_idxs), ROI_DIM, generator=g),
                         rel_labels=[torch.randint(0, R, (len(p),), generator=g) for p in pair_idxs]
                         if training else None)


def check_output(out, batch):
    n, p = sum(batch.num_boxes), sum(batch.num_pairs)
    assert out.obj_logits.shape == (n, C) and out.obj_preds.shape == (n,) and out.rel_logits.shape == (p, R)
    assert out.rel_features.shape == (p, 64)  # CONTEXT_POOLING_DIM: what rel_compress reads
    assert torch.isfinite(out.obj_logits).all() and torch.isfinite(out.rel_logits).all()


# ------------------------------------------------------------------------------------------ shapes and gradients
@pytest.mark.parametrize("mode", MODES)
def test_train_forward_backward_reaches_every_parameter(mode):
    model = build(mode).train()
    batch = make_batch(mode, (3, 5))
    out = model(batch)
    check_output(out, batch)
    loss = F.cross_entropy(out.rel_logits, torch.cat(batch.rel_labels))
    if mode != "predcls":
        loss = loss + F.cross_entropy(out.obj_logits, torch.cat([b.get_field("labels") for b in batch.boxes]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), f"{mode}: no gradient reaches {name}"


@pytest.mark.parametrize("mode,num_boxes", list(itertools.product(MODES, [(3, 5, 2), (1,), (0, 3), (3, 0, 2), (0,)])))
def test_eval_shapes_with_several_small_and_empty_images(mode, num_boxes):
    model = build(mode).eval()
    batch = make_batch(mode, num_boxes, training=False)
    with torch.no_grad():
        out = model(batch)
    check_output(out, batch)
    if mode == "predcls" and sum(num_boxes):
        labels = torch.cat([b.get_field("labels") for b in batch.boxes])
        assert torch.equal(out.obj_preds, labels)


def test_config_keys_set_the_architecture():
    model = build("sgcls")
    context = model.context
    assert len(context.context_obj.layers) == 2 and len(context.context_edge.layers) == 1
    attention = context.context_obj.layers[0].vision_cross.attention
    assert (attention.num_heads, attention.key_dim, attention.val_dim) == (4, 8, 6)
    assert attention.w_q.in_features == 32 and attention.w_v.out_features == 4 * 6
    assert context.context_obj.layers[0].text_self.feed_forward.layers[0].out_features == 40
    assert isinstance(model, HybridCoAttentionPredictor) and model.edge_head.ctx_compress is not None
    defaults = load_config(opts=[]).MODEL.ROI_RELATION_HEAD.HCA  # the reference's sizes
    assert (defaults.OBJ_LAYER, defaults.REL_LAYER, defaults.NUM_HEAD, defaults.KEY_DIM) == (4, 2, 8, 64)


def test_predcls_build_rejects_an_sgcls_batch():
    model = build("predcls").eval()
    with pytest.raises(ValueError, match="built for predcls"):
        model(make_batch("sgcls", (3,), training=False))


# ------------------------------------------------------------------------------------------------ no attention leaks
@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_changing_another_image_does_not_change_this_images_outputs(mode):
    model = build(mode).eval()
    batch = make_batch(mode, (3, 5), training=False, seed=1)
    with torch.no_grad():
        out = model(batch)
        # image 1 (5 boxes) gets other features, boxes and labels; image 0 (3 boxes, padded to 5) must not notice
        other = make_batch(mode, (3, 5), training=False, seed=2)
        changed = RelationBatch(mode=mode, boxes=[batch.boxes[0], other.boxes[1]], pair_idxs=batch.pair_idxs,
                                roi_features=torch.cat([batch.roi_features[:3], other.roi_features[3:]]),
                                union_features=torch.cat([batch.union_features[:6], other.union_features[6:]]))
        out_changed = model(changed)
        alone = RelationBatch(mode=mode, boxes=[batch.boxes[0]], pair_idxs=batch.pair_idxs[:1],
                              roi_features=batch.roi_features[:3], union_features=batch.union_features[:6])
        out_alone = model(alone)
    assert not torch.allclose(out.rel_logits[6:], out_changed.rel_logits[6:])  # image 1 did change
    torch.testing.assert_close(out_changed.rel_logits[:6], out.rel_logits[:6], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_changed.obj_logits[:3], out.obj_logits[:3], rtol=1e-5, atol=1e-5)
    # and image 0 run on its own (no padding at all) gives the same numbers
    torch.testing.assert_close(out_alone.rel_logits, out.rel_logits[:6], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- layers against a direct computation
def direct_attention(block, query, context, valid):
    """Multi-head attention of ``query`` (L, D) over ``context`` (L, D) rows where ``valid``, written out."""
    heads, dk, dv = block.num_heads, block.key_dim, block.val_dim
    q = query @ block.w_q.weight.T + block.w_q.bias
    k = context @ block.w_k.weight.T + block.w_k.bias
    v = context @ block.w_v.weight.T + block.w_v.bias
    outputs = []
    for h in range(heads):
        scores = q[:, h * dk:(h + 1) * dk] @ k[:, h * dk:(h + 1) * dk].T / math.sqrt(dk)
        scores = scores.masked_fill(~valid[None, :], float("-inf"))
        outputs.append(torch.softmax(scores, dim=1) @ v[:, h * dv:(h + 1) * dv])
    projected = torch.cat(outputs, dim=1) @ block.out.weight.T + block.out.bias
    return direct_layer_norm(projected + query, block.norm)


def direct_layer_norm(x, norm):
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def direct_feed_forward(ffn, x):
    first, second = ffn.layers[0], ffn.layers[2]
    hidden = torch.clamp(x @ first.weight.T + first.bias, min=0.0)
    return direct_layer_norm(hidden @ second.weight.T + second.bias + x, ffn.norm)


def direct_block(layer, x, context, valid):
    """SA (context = x) or CA: attention then feed-forward, padding rows set to zero after each."""
    keep = valid[:, None].float()
    attended = direct_attention(layer.attention, x, context, valid) * keep
    return direct_feed_forward(layer.feed_forward, attended) * keep


def tiny_dims():
    return AttentionDims(model_dim=6, num_heads=2, key_dim=3, val_dim=4, inner_dim=10, dropout=0.0)


def tiny_streams(g):
    # one image, 4 slots of which 3 are boxes (the last is padding, as in a batch with a larger image)
    return [torch.randn(1, 4, 6, generator=g) for _ in range(4)], torch.tensor([[True, True, True, False]])


def test_four_stream_layer_matches_the_direct_computation():
    torch.manual_seed(3)
    layer = FourStreamLayer(tiny_dims()).eval()
    (tsa, tca, vsa, vca), mask = tiny_streams(torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = layer((tsa, tca, vsa, vca), mask)
        valid = mask[0]
        want_tsa = direct_block(layer.text_self, tsa[0], tsa[0], valid)
        want_tca = direct_block(layer.text_cross, tca[0], vsa[0], valid)  # text attends to the *previous* vision SA
        want_vsa = direct_block(layer.vision_self, vsa[0], vsa[0], valid)
        want_vca = direct_block(layer.vision_cross, vca[0], want_tsa, valid)  # vision attends to the *updated* text
    for name, value, want in zip(("tsa", "tca", "vsa", "vca"), got, (want_tsa, want_tca, want_vsa, want_vca)):
        torch.testing.assert_close(value[0], want, rtol=1e-5, atol=1e-5, msg=name)
    assert torch.all(got[3][0, 3] == 0)  # padding stays zero
    # the cross stream really reads the other modality: changing vision changes tca and vca, not tsa
    with torch.no_grad():
        moved = layer((tsa, tca, vsa + 1.0, vca), mask)
    assert torch.equal(moved[0], got[0]) and not torch.allclose(moved[1], got[1])


def test_sha_edge_layer_matches_the_direct_computation():
    torch.manual_seed(5)
    layer = SHALayer(tiny_dims()).eval()
    (vision, text, _, _), mask = tiny_streams(torch.Generator().manual_seed(6))
    with torch.no_grad():
        got_vision, got_text = layer((vision, text), mask)
        valid = mask[0]
        want_vision = direct_block(layer.vision_self, vision[0], vision[0], valid) + \
            direct_block(layer.vision_cross, vision[0], text[0], valid)
        want_text = direct_block(layer.text_self, text[0], text[0], valid) + \
            direct_block(layer.text_cross, text[0], vision[0], valid)
    torch.testing.assert_close(got_vision[0], want_vision, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_text[0], want_text, rtol=1e-5, atol=1e-5)


def test_object_encoder_fuses_the_four_streams_by_sum():
    model = build("sgcls").eval()
    encoder = model.context.context_obj
    g = torch.Generator().manual_seed(7)
    vision, text = torch.randn(3, 32, generator=g), torch.randn(3, 32, generator=g)
    with torch.no_grad():
        fused = encoder(vision, text, [3])
        streams = (text[None], text[None], vision[None], vision[None])  # tsa = tca = text, vsa = vca = vision
        mask = torch.ones(1, 3, dtype=torch.bool)
        for layer in encoder.layers:
            streams = layer(streams, mask)
        tsa, tca, vsa, vca = (s[0] for s in streams)
    torch.testing.assert_close(fused, (vca + vsa) + (tca + tsa))


# ------------------------------------------------------------------------------------------------ golden values
GOLDEN_ROI_DIM = 24
GOLDEN_CASES = ("predcls", "sgcls", "predcls_basgg_stage2")


def golden_predictor(case: str) -> HybridCoAttentionPredictor:
    """The module the fixture's weights belong to: small, non-square sizes (hidden 16, pooling 20, union 24, 2
    heads of key 4 / value 3, FFN 12, embedding 8), 2 object layers and 1 edge layer. The BA-SGG case has the clean
    classifier copies (their weights differ from the general ones in the fixture)."""
    mode = case.split("_")[0]
    head = "MODEL.ROI_RELATION_HEAD."
    sizes = {"EMBED_DIM": 8, "CONTEXT_HIDDEN_DIM": 16, "CONTEXT_POOLING_DIM": 20, "HCA.OBJ_LAYER": 2,
             "HCA.REL_LAYER": 1, "HCA.NUM_HEAD": 2, "HCA.KEY_DIM": 4, "HCA.VAL_DIM": 3, "HCA.INNER_DIM": 12}
    cfg = make_cfg(mode, *[item for key, value in sizes.items() for item in (head + key, value)])
    torch.manual_seed(0)
    predictor = build_predictor(cfg, GOLDEN_ROI_DIM, make_statistics())
    if case.endswith("basgg_stage2"):
        add_clean_classifier(predictor)
    return predictor


def golden_batch(mode: str, inputs: dict) -> RelationBatch:
    boxes = []
    for bbox, size, labels, logits in zip(inputs["boxes"], inputs["image_sizes"], inputs["labels"],
                                          inputs["predict_logits"]):
        image = BoxList(bbox, tuple(size))
        image.add_field("labels", labels)
        if mode != "predcls":
            image.add_field("predict_logits", logits)
        boxes.append(image)
    return RelationBatch(mode=mode, boxes=boxes, pair_idxs=list(inputs["pair_idxs"]),
                         roi_features=inputs["roi_features"], union_features=inputs["union_features"])


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_forward_matches_the_reference_implementation(case):
    """Golden values of LinusLing/ReBalance-HCA at d09f9327834767da7657e35380ce4b2a8c59fdd3,
    ``maskrcnn_benchmark/modeling/roi_heads/relation_head/roi_relation_predictors.py``:
    ``TransformerTransferPredictor.forward`` (with its ``SHA_Context``) in eval mode, on 2 images of 3 and 4 GT
    boxes with all ordered pairs. Cases: PredCls, SGCls (object logits from the hybrid encoder, labels by argmax),
    and PredCls as BA-SGG's stage 2 (WITH_CLEAN_CLASSIFIER and WITH_TRANSFER_CLASSIFIER True; A' from a
    non-symmetric 5 x 5 confusion matrix with an all-zero row, the reference's ``adj_normalize``).

    Weights: our seeded module's state dict plus noise (so biases and norms are not at their init; stored in the
    fixture, the clean copies with their own noise) copied into the reference module:
    ``context.obj_input_embed.embedding`` -> ``obj_embed1``, ``context.obj_embed2`` -> ``obj_embed2``,
    ``context.bbox_embed.layers.{0,3}`` -> ``bbox_embed.{0,3}``, ``lin_obj_*`` / ``lin_edge_*`` / ``out_obj`` by
    name; object layer i: ``text_self``, ``text_cross``, ``vision_self``, ``vision_cross`` ->
    ``context_obj.cross_module[i].{SA_Cell_txt, CA_Cell_txt, SA_Cell_vis, CA_Cell_vis}``, edge layer i likewise into
    ``context_edge.cross_module[i]``; in each block ``attention.{w_q, w_k, w_v, out, norm}`` ->
    ``slf_attn.{w_qs, w_ks, w_vs, fc, layer_norm}`` and ``feed_forward.layers.{0, 2}`` / ``feed_forward.norm`` ->
    ``pos_ffn.{w_1, w_2}`` (Linear weight unsqueezed to the 1x1 Conv1d) / ``pos_ffn.layer_norm``;
    ``edge_head.{post_emb, post_cat, up_dim, rel_compress, ctx_compress, freq_bias}`` by name and, in the stage-2
    case, ``edge_head.{rel_compress, ctx_compress, freq_bias}.clean`` -> ``{rel_compress, ctx_compress,
    freq_bias}_clean``. Our transfer (``TransferClassifier``, applied by the relation head) is applied here to the
    predictor's logits."""
    golden = load_golden("hca.pt")
    expected = golden["cases"][case]
    mode = case.split("_")[0]
    predictor = golden_predictor(case).eval()
    # stage 2 starts both copies from the stage-1 weights, then the clean copies get their own
    weights = map_stage1_state_dict(golden["weights"], list(predictor.state_dict()))
    if case.endswith("basgg_stage2"):
        weights.update(golden["clean_weights"])
    predictor.load_state_dict(weights)
    with torch.no_grad():
        out = predictor(golden_batch(mode, golden["inputs"]))
    rel_logits = out.rel_logits
    if case.endswith("basgg_stage2"):
        rel_logits = TransferClassifier(transfer_matrix(golden["confusion"]))(rel_logits)
    assert torch.equal(out.obj_preds, expected["obj_preds"])
    # float32 with another attention kernel: logits of magnitude ~100 agree to 1e-4 (cancellation near zero)
    torch.testing.assert_close(out.obj_logits, expected["obj_logits"], rtol=1e-4, atol=5e-4)
    torch.testing.assert_close(rel_logits, expected["rel_logits"], rtol=1e-4, atol=5e-4)


def test_a_missing_golden_fixture_fails_with_its_file_name(tmp_path):
    with pytest.raises(pytest.fail.Exception, match=r"golden fixture .*hca_missing.pt is missing"):
        load_golden("hca_missing.pt", tmp_path)
