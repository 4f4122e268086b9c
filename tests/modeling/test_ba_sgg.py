"""BA-SGG: the transfer matrix, the confusion-matrix checks, BPL's re-balanced split, the clean classifier (only it
trains, it starts from the stage-1 classifier) and the confusion counting of tools/relation_confusion_matrix.py."""
import os
import sys

import numpy as np
import pytest
import torch

from sgg.config import load_config
from sgg.data.bpl import balance_training_split, cap_relations, most_frequent_predicates
from sgg.modeling.detector.scene_graph_rcnn import SceneGraphRCNN
from sgg.modeling.roi_heads.relation_head.ba_sgg import (CleanClassifier, TransferClassifier, add_clean_classifier,
                                                         load_confusion_matrix, load_stage1_model,
                                                         map_stage1_state_dict, transfer_matrix)
from sgg.modeling.roi_heads.relation_head.predictors import build_predictor
from sgg.modeling.roi_heads.relation_head.types import RelationBatch
from sgg.structures import BoxList

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_values import load_golden  # noqa: E402
from test_scene_graph_model import NUM_PREDICATES, _batch, _cfg, _statistics  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
from relation_confusion_matrix import count_confusions  # noqa: E402


# ------------------------------------------------------------------------------------------------ transfer matrix
def test_transfer_matrix_on_a_hand_made_confusion_matrix():
    c = np.array([[5, 1, 1], [2, 3, 1], [0, 1, 1]])
    # background row/column zeroed, C[0,0] = 1 -> rows [1,0,0] [0,3,1] [0,1,1]; rownorm -> [0,.75,.25] [0,.5,.5];
    # + I -> [0,1.75,.25] [0,.5,1.5] (sums 2); rownorm -> [0,.875,.125] [0,.25,.75]; background row stays [1,0,0].
    # Not symmetric, so a transposed A' fails below.
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.875, 0.125], [0.0, 0.25, 0.75]])
    assert torch.allclose(transfer_matrix(c), expected)
    # z' = A' z: z = (1, 2, 4) -> (1, .875*2 + .125*4, .25*2 + .75*4) = (1, 2.25, 3.5), per row of a batch
    # (with A'^T it would be (1, 2.75, 3.125))
    z = torch.tensor([[1.0, 2.0, 4.0], [0.0, 8.0, 0.0]])
    out = TransferClassifier(transfer_matrix(c))(z)
    assert torch.allclose(out, torch.tensor([[1.0, 2.25, 3.5], [0.0, 7.0, 2.0]]))


def test_a_predicate_without_counts_gets_an_identity_transfer_row():
    c = np.array([[0, 0, 0, 0], [0, 3, 1, 0], [0, 0, 0, 0], [0, 2, 0, 2]])
    # row 1: [0,.75,.25,0] + e1 -> [0,.875,.125,0]; row 2 has no count: 0 + e2 -> e2 (the reference's C/(0 + 1e-8));
    # row 3: [0,.5,0,.5] + e3 -> [0,.25,0,.75]
    expected = torch.tensor([[1.0, 0, 0, 0], [0, 0.875, 0.125, 0], [0, 0, 1.0, 0], [0, 0.25, 0, 0.75]])
    assert torch.allclose(transfer_matrix(c), expected)


def test_transfer_matches_the_reference_implementation(tmp_path):
    """Golden values of nobody-y/SSG-G2S at 2c6a37e29b2324e6678910a2d4541dbc0e778930: the ``with_transfer`` block of
    ``TransformerTransferPredictor.__init__`` (``maskrcnn_benchmark/modeling/roi_heads/relation_head/
    roi_relation_predictors.py``: background row/column zeroed, ``C / (C.sum(-1) + 1e-8)``, then
    ``adj_laplacian`` of ``maskrcnn_benchmark/layers/gcn/_utils.py``) on a non-symmetric 7 x 7 confusion matrix with
    an all-zero foreground row (predicate 4), and its ``forward``'s ``(pred_adj_lap @ rel_dists.T).T`` on 6 x 7
    logits. No weights: the matrix is the only input."""
    golden = load_golden("ba_sgg_transfer.npz")
    assert not np.allclose(golden["transfer_matrix"], golden["transfer_matrix"].T)
    np.save(tmp_path / "conf_mat_freq_train.npy", golden["confusion"])
    with pytest.warns(UserWarning, match=r"all-zero rows for predicates 4: "):
        confusion = load_confusion_matrix(str(tmp_path / "conf_mat_freq_train.npy"), 7)
    matrix = transfer_matrix(confusion)
    torch.testing.assert_close(matrix, torch.from_numpy(golden["transfer_matrix"]), rtol=1e-6, atol=1e-7)
    logits = torch.from_numpy(golden["logits"])
    torch.testing.assert_close(TransferClassifier(matrix)(logits), torch.from_numpy(golden["transferred_logits"]),
                               rtol=1e-5, atol=1e-5)


GOLDEN_CLASSES = (["__background__", "cat", "dog", "street sign", "tree", "car"],
                  ["__background__", "on", "has", "near", "parked on"])
GOLDEN_ROI_DIM = 24


def golden_transformer_stage2(mode):
    """The stage-2 Transformer the fixture's weights belong to: hidden 16, pooling 20, union 24, 2 heads of key 4 /
    value 3, FFN 12, embedding 8, 2 object layers and 1 edge layer, clean copies of rel_compress, ctx_compress and
    freq_bias."""
    head = "MODEL.ROI_RELATION_HEAD."
    cfg = load_config(opts=[str(o) for o in [
        head + "PREDICTOR", "TransformerPredictor", head + "USE_GT_BOX", True, head + "USE_GT_OBJECT_LABEL",
        mode == "predcls", head + "EMBED_DIM", 8, head + "CONTEXT_HIDDEN_DIM", 16, head + "CONTEXT_POOLING_DIM", 20,
        head + "TRANSFORMER.OBJ_LAYER", 2, head + "TRANSFORMER.REL_LAYER", 1, head + "TRANSFORMER.NUM_HEAD", 2,
        head + "TRANSFORMER.KEY_DIM", 4, head + "TRANSFORMER.VAL_DIM", 3, head + "TRANSFORMER.INNER_DIM", 12,
        "GLOVE_DIR", "/nonexistent/glove"]])
    objects, predicates = GOLDEN_CLASSES
    statistics = {"obj_classes": objects, "rel_classes": predicates,
                  "pred_dist": torch.zeros(len(objects), len(objects), len(predicates))}
    torch.manual_seed(0)
    predictor = build_predictor(cfg, GOLDEN_ROI_DIM, statistics)
    add_clean_classifier(predictor)
    return predictor


def golden_batch(mode, inputs):
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


@pytest.mark.filterwarnings("ignore:word vectors glove")
@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_stage2_transformer_matches_the_reference_implementation(mode):
    """Golden values of nobody-y/SSG-G2S at 2c6a37e29b2324e6678910a2d4541dbc0e778930:
    ``TransformerTransferPredictor.forward`` (``maskrcnn_benchmark/modeling/roi_heads/relation_head/
    roi_relation_predictors.py``, with ``TransformerContext`` of ``model_transformer.py``) as stage 2
    (WITH_CLEAN_CLASSIFIER and WITH_TRANSFER_CLASSIFIER True) in eval mode, on 2 images of 3 and 4 GT boxes with all
    ordered pairs; A' from the non-symmetric 5 x 5 confusion matrix in the fixture (one all-zero row).

    Weights: our seeded TransformerPredictor plus noise (stored), copied into the reference module:
    ``context.obj_input_embed.embedding`` -> ``obj_embed1``, ``context.obj_embed2`` -> ``obj_embed2``,
    ``context.bbox_embed.layers.{0,3}`` -> ``bbox_embed.{0,3}``, ``context.{lin_obj, lin_edge, out_obj}`` by name,
    ``context.context_{obj,edge}.layers[i]`` -> ``context_layer.context_{obj,edge}.layer_stack[i]`` with
    ``attention.{w_q, w_k, w_v, out, norm}`` -> ``slf_attn.{w_qs, w_ks, w_vs, fc, layer_norm}`` and
    ``feed_forward.layers.{0, 2}`` / ``feed_forward.norm`` -> ``pos_ffn.{w_1, w_2}`` (1x1 Conv1d) /
    ``pos_ffn.layer_norm``; ``edge_head.{post_emb, post_cat, up_dim}`` by name, ``edge_head.X.general`` -> ``X`` and
    ``edge_head.X.clean`` -> ``X_clean`` for X in rel_compress, ctx_compress, freq_bias. Our transfer
    (``TransferClassifier``, applied by the relation head) is applied here to the predictor's logits."""
    golden = load_golden("ba_sgg_transformer.pt")
    expected = golden["cases"][mode]
    predictor = golden_transformer_stage2(mode).eval()
    state = predictor.state_dict()
    predictor.load_state_dict({key: golden["weights"][key] for key in state})
    with torch.no_grad():
        out = predictor(golden_batch(mode, golden["inputs"]))
    rel_logits = TransferClassifier(transfer_matrix(golden["confusion"]))(out.rel_logits)
    assert torch.equal(out.obj_preds, expected["obj_preds"])
    torch.testing.assert_close(out.obj_logits, expected["obj_logits"], rtol=1e-4, atol=5e-4)
    torch.testing.assert_close(rel_logits, expected["rel_logits"], rtol=1e-4, atol=5e-4)


def test_confusion_matrix_file_checks(tmp_path):
    good = tmp_path / "c.npy"
    np.save(good, np.array([[0, 0, 0], [0, 3, 1], [0, 2, 2]]))
    assert load_confusion_matrix(str(good), 3).shape == (3, 3)
    with pytest.raises(ValueError, match=r"has shape \(3, 3\), expected \(4, 4\)"):
        load_confusion_matrix(str(good), 4)
    zero_row = tmp_path / "z.npy"
    np.save(zero_row, np.array([[0, 0, 0], [0, 3, 1], [0, 0, 0]]))
    with pytest.warns(UserWarning, match=r"z.npy has all-zero rows for predicates 2 \(on\): .* transfer rows are "
                                         r"the identity"):
        loaded = load_confusion_matrix(str(zero_row), 3, predicate_names=["__background__", "has", "on"])
    assert np.array_equal(loaded, np.array([[0, 0, 0], [0, 3, 1], [0, 0, 0]]))
    with pytest.warns(UserWarning, match=r"all-zero rows for predicates 2: "):
        load_confusion_matrix(str(zero_row), 3)
    negative = tmp_path / "n.npy"
    np.save(negative, np.array([[0, 0, 0], [0, 3, -1], [0, 1, 1]]))
    with pytest.raises(ValueError, match="finite, non-negative"):
        load_confusion_matrix(str(negative), 3)
    with pytest.raises(FileNotFoundError, match="CONFUSION_MATRIX_PATH: .*nope.npy does not exist"):
        load_confusion_matrix(str(tmp_path / "nope.npy"), 3)
    with pytest.raises(ValueError, match="CONFUSION_MATRIX_PATH is empty: run tools/relation_confusion_matrix.py"):
        load_confusion_matrix("", 3)


# ------------------------------------------------------------------------------------------------ BPL split
def test_most_frequent_predicates_ignore_background_and_keep_ties_in_index_order():
    assert most_frequent_predicates([100, 5, 9, 9, 1], 2).tolist() == [2, 3]
    assert most_frequent_predicates([0, 5, 9, 9, 1], 3).tolist() == [2, 3, 1]


def test_capping_keeps_the_first_instances_in_dataset_order():
    images = [np.array([[0, 1, 1], [1, 0, 1]]), np.array([[0, 1, 1], [0, 1, 2]]), np.array([[1, 0, 1]]),
              np.zeros((0, 3), dtype=np.int64)]
    out = cap_relations(images, capped=[1], max_instances=2)
    # predicate 1 has 4 instances; the first two (image 0) stay; predicate 2 is not capped
    assert out[0].tolist() == [[0, 1, 1], [1, 0, 1]]
    assert out[1].tolist() == [[0, 1, 2]]
    assert out[2].shape == (0, 3) and out[3].shape == (0, 3)


class _TinyDataset:
    """What balance_training_split needs of a VGDataset."""

    def __init__(self, relationships, predicates=("__background__", "on", "has")):
        self.relationships = relationships
        self.ind_to_predicates = list(predicates)
        self.dict_file = "/nonexistent.json"  # no predicate_count: the split's own counts rank the predicates
        self.roidb_file = "tiny.h5"
        self.kept = None

    def keep_images(self, keep):
        self.kept = np.asarray(keep).tolist()
        self.relationships = [r for r, k in zip(self.relationships, keep) if k]

    def __len__(self):
        return len(self.relationships)


def test_balanced_split_drops_images_left_empty():
    ds = _TinyDataset([np.array([[0, 1, 1], [1, 0, 1]]), np.array([[0, 1, 1], [0, 1, 2]]), np.array([[1, 0, 1]])])
    balance_training_split(ds, top_n=1, max_instances=2)  # "on" (4 instances) is the most frequent
    assert ds.kept == [True, True, False]
    assert [r.tolist() for r in ds.relationships] == [[[0, 1, 1], [1, 0, 1]], [[0, 1, 2]]]


def test_balanced_split_without_relations_left_is_an_error():
    ds = _TinyDataset([np.array([[0, 1, 1]]), np.array([[0, 1, 2]])])
    with pytest.raises(ValueError, match="BA_SGG: capping the 2 most frequent predicates at 0 instances leaves no"):
        balance_training_split(ds, top_n=2, max_instances=0)
    assert len(ds.relationships) == 2  # nothing lost


def test_vg_dataset_keep_images_keeps_every_per_image_list_aligned(tmp_path):
    from sgg.data.datasets import VGDataset
    from sgg.data.synthetic import generate_synthetic_vg

    root = tmp_path / "vg"
    generate_synthetic_vg(str(root), num_train=8, num_test=2, seed=3, workers=1)
    ds = VGDataset("train", str(root / "VG_100K"), str(root / "VG-SGG-with-attri.h5"),
                   str(root / "VG-SGG-dicts-with-attri.json"), str(root / "image_data.json"), num_val_im=0)
    before = [(ds.filenames[i], ds.gt_boxes[i].copy(), ds.relationships[i].copy()) for i in range(len(ds))]
    keep = np.arange(len(ds)) % 2 == 1
    ds.keep_images(keep)
    kept = [b for b, k in zip(before, keep) if k]
    assert len(ds) == len(kept) and ds.split_mask.sum() == len(kept)
    for i, (name, boxes, rels) in enumerate(kept):
        assert ds.filenames[i] == name and np.array_equal(ds.gt_boxes[i], boxes)
        assert np.array_equal(ds.relationships[i], rels)
        assert ds.get_img_info(i)["file_name"] == os.path.basename(name)
        assert len(ds.get_groundtruth(i)) == len(boxes)


# ------------------------------------------------------------------------------------------------ clean classifier
def _stage2_model(predictor, *extra):
    cfg = _cfg(predictor, True, True, "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True", *extra)
    return cfg, SceneGraphRCNN.from_config(cfg, _statistics())


@pytest.mark.parametrize("predictor,paths", [
    ("TransformerPredictor", ["edge_head.rel_compress", "edge_head.ctx_compress", "edge_head.freq_bias"]),
    ("MotifPredictor", ["edge_head.post_cat", "edge_head.rel_compress", "edge_head.freq_bias"]),
    ("FrequencyPredictor", ["freq_bias"])])
@pytest.mark.parametrize("frozen_eval", [False, True])
def test_stage2_trains_only_the_clean_classifier(predictor, paths, frozen_eval):
    torch.manual_seed(0)
    _, model = _stage2_model(predictor, "MODEL.ROI_RELATION_HEAD.BA_SGG.FROZEN_EVAL_MODE", str(frozen_eval))
    predictor_module = model.relation_head.predictor
    for path in paths:
        assert isinstance(predictor_module.get_submodule(path), CleanClassifier)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".clean." in n for n in trainable)
    model.train()
    assert model.relation_head.training
    assert all(m.clean.training for m in model.modules() if isinstance(m, CleanClassifier))
    frozen = [predictor_module, model.relation_head.box_feature_extractor]
    general = [m.general for m in model.modules() if isinstance(m, CleanClassifier)]
    # the reference freezes by requires_grad only and keeps train mode; the key puts the frozen part in eval mode
    assert all(m.training != frozen_eval for m in frozen + general)
    model.eval()
    assert not any(m.training for m in model.relation_head.modules())
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    images, targets = _batch()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    losses = model(images, targets)
    sum(losses.values()).backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(trainable)
    assert any(".clean." in n for n in changed)


def test_stage2_sgcls_training_pairs_carry_the_gt_labels_as_in_stage1():
    """In train mode Motifs' SGCls decoder commits the GT labels (teacher forcing, what stage 1 trained with); the
    old eval-mode stage 2 fed the frequency bias the decoder's predicted labels instead."""
    torch.manual_seed(0)
    cfg = _cfg("MotifPredictor", True, False, "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True")
    model = SceneGraphRCNN.from_config(cfg, _statistics()).train()
    predictor = model.relation_head.predictor
    seen = {}
    predictor.register_forward_hook(lambda m, inputs, out: seen.__setitem__("batch", inputs[0]))
    bias = predictor.edge_head.freq_bias.clean
    lookup = bias.index_with_labels
    bias.index_with_labels = lambda pair_labels: (seen.__setitem__("labels", pair_labels.clone()),
                                                  lookup(pair_labels))[1]
    images, targets = _batch()
    model(images, targets)
    batch = seen["batch"]
    gt = torch.cat([boxes.get_field("labels")[pairs] for boxes, pairs in zip(batch.boxes, batch.pair_idxs)])
    assert batch.mode == "sgcls" and len(gt) > 0
    assert torch.equal(seen["labels"].long(), gt.long())


def test_stage1_checkpoint_maps_the_classifier_into_the_clean_copy(tmp_path):
    torch.manual_seed(1)
    stage1_cfg = _cfg("TransformerPredictor", True, True)
    stage1 = SceneGraphRCNN.from_config(stage1_cfg, _statistics())
    path = tmp_path / "stage1.pth"
    torch.save({"model": stage1.state_dict()}, path)
    torch.manual_seed(2)  # a different random init, so equality below comes from the loading
    cfg, stage2 = _stage2_model("TransformerPredictor", "MODEL.PRETRAINED_MODEL_CKPT", str(path))
    load_stage1_model(cfg, stage2)
    head1 = stage1.relation_head.predictor.edge_head
    head2 = stage2.relation_head.predictor.edge_head
    for name in ("rel_compress", "ctx_compress"):
        for copy in ("clean", "general"):
            assert torch.equal(getattr(getattr(head2, name), copy).weight, getattr(head1, name).weight)
    assert torch.equal(head2.freq_bias.clean.obj_baseline.weight, head1.freq_bias.obj_baseline.weight)
    assert torch.equal(head2.post_emb.weight, head1.post_emb.weight)  # the rest is the stage-1 model
    # the mapping itself: a stage-1 key feeds both copies, a stage-2 key loads as it is
    mapped = map_stage1_state_dict({"a.w": torch.ones(1), "b.clean.w": torch.zeros(1)},
                                   ["a.clean.w", "a.general.w", "b.clean.w"])
    assert sorted(mapped) == ["a.clean.w", "a.general.w", "b.clean.w"] and mapped["b.clean.w"].item() == 0


def test_stage2_without_or_with_a_foreign_stage1_checkpoint_is_an_error(tmp_path):
    cfg, model = _stage2_model("TransformerPredictor")
    with pytest.raises(ValueError, match="MODEL.PRETRAINED_MODEL_CKPT is empty but .*WITH_CLEAN_CLASSIFIER"):
        load_stage1_model(cfg, model)
    motif = SceneGraphRCNN.from_config(_cfg("MotifPredictor", True, True), _statistics())
    path = tmp_path / "motif.pth"
    torch.save({"model": motif.state_dict()}, path)
    cfg, model = _stage2_model("TransformerPredictor", "MODEL.PRETRAINED_MODEL_CKPT", str(path))
    with pytest.raises(ValueError, match="does not fit this model: .* keys are missing"):
        load_stage1_model(cfg, model)


def test_a_predictor_without_declared_classifier_modules_is_refused():
    cfg = _cfg("TransformerPredictor", True, True, "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True")
    from sgg.modeling.roi_heads.relation_head.predictors.transformer import TransformerPredictor

    saved = TransformerPredictor.CLASSIFIER_MODULES
    TransformerPredictor.CLASSIFIER_MODULES = ()
    try:
        with pytest.raises(ValueError, match="TransformerPredictor declares no CLASSIFIER_MODULES"):
            SceneGraphRCNN.from_config(cfg, _statistics())
    finally:
        TransformerPredictor.CLASSIFIER_MODULES = saved


def test_semantic_adjustment_maps_the_predictor_logits_at_test(tmp_path):
    c = np.arange(NUM_PREDICATES ** 2, dtype=np.float64).reshape(NUM_PREDICATES, NUM_PREDICATES) + 1
    path = tmp_path / "c.npy"
    np.save(path, c)
    torch.manual_seed(0)
    cfg = _cfg("MotifPredictor", True, True, "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True",
               "MODEL.ROI_RELATION_HEAD.BA_SGG.CONFUSION_MATRIX_PATH", str(path))
    model = SceneGraphRCNN.from_config(cfg, _statistics()).eval()
    captured = []
    model.relation_head.predictor.register_forward_hook(lambda m, i, out: captured.append(out.rel_logits))
    images, targets = _batch()
    with torch.no_grad():
        predictions = model(images, targets)
    expected = torch.softmax(captured[0] @ transfer_matrix(c).t(), dim=-1)
    scores = torch.cat([p.get_field("pred_rel_scores") for p in predictions])
    pairs = torch.cat([p.get_field("rel_pair_idxs") for p in predictions])
    assert len(scores) == len(expected) == len(pairs)
    # post-processing sorts pairs; compare as sets of rows
    assert torch.allclose(scores.sort(dim=0).values, expected.sort(dim=0).values, atol=1e-6)


# ------------------------------------------------------------------------------------------------ confusion counts
def test_confusion_counts_use_the_argmax_over_foreground_of_the_gt_pair():
    matrix = np.zeros((4, 4), dtype=np.int64)
    pairs = np.array([[0, 1], [1, 0], [0, 2]])
    scores = np.array([[0.9, 0.05, 0.03, 0.02],   # (0, 1): background wins, foreground argmax is predicate 1
                       [0.1, 0.1, 0.2, 0.6],      # (1, 0): predicate 3
                       [0.0, 0.5, 0.5, 0.0]])     # (0, 2): a tie, the first foreground class
    gt = np.array([[0, 1, 2], [0, 1, 3], [1, 0, 1], [2, 0, 1]])  # (2, 0) was not predicted
    missing = count_confusions(matrix, gt, pairs, scores)
    assert missing == 1
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[2, 1] = expected[3, 1] = expected[1, 3] = 1
    assert np.array_equal(matrix, expected)


def test_reference_stage2_keys_read_the_matrix_where_the_reference_keeps_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stage2 = ["MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True",
              "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True"]  # the reference README's stage-2 keys
    with pytest.raises(FileNotFoundError, match="misc/conf_mat_freq_train.npy does not exist"):
        SceneGraphRCNN.from_config(_cfg("TransformerPredictor", True, True, *stage2), _statistics())
    (tmp_path / "misc").mkdir()
    np.save(tmp_path / "misc" / "conf_mat_freq_train.npy", np.eye(NUM_PREDICATES) * 3 + 1)
    model = SceneGraphRCNN.from_config(_cfg("TransformerPredictor", True, True, *stage2), _statistics())
    assert model.relation_head.logit_adjuster_names == ["transfer"]
    assert isinstance(model.relation_head.transfer, TransferClassifier)
    assert any(isinstance(m, CleanClassifier) for m in model.relation_head.predictor.modules())
