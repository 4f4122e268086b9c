"""Golden values: VCTreePredictor against SGB's, on the same weights and inputs.

The fixture (tests/modeling/golden/vctree.pt) was produced once by running ``VCTreePredictor.forward`` of
maskrcnn_benchmark/modeling/roi_heads/relation_head/roi_relation_predictors.py (with ``VCTreeLSTMContext`` of
model_vctree.py, utils_vctree.py and utils_treelstm.py) of KaihuaTang/Scene-Graph-Benchmark.pytorch, commit
6f75881, on the CPU (/work/shared/tools/sgb_cpu), beside this project's predictor built from the config below
(7 object classes, 6 predicates, ROI and union features 16-d, EMBED_DIM 6, CONTEXT_HIDDEN_DIM 10,
CONTEXT_POOLING_DIM 12 so that ``up_dim`` is used, CONTEXT_OBJ_LAYER 2, CONTEXT_REL_LAYER 1). SGB's code ran
unchanged; only its imports were served: ``get_dataset_statistics`` returned the fixture's ``pred_dist`` and
class names, ``obj_edge_vectors`` returned random vectors (overwritten by the weights below).

Weights: this project's seeded random weights (``state_dict`` in the fixture, BatchNorm running statistics
included; ``bi_freq_prior`` and the frequency bias as built from ``pred_dist``) were loaded into SGB's module by name:

    context.X                                 -> context_layer.X, with
      obj_embed1.embedding / pos_embed.layers.{0,1,2} -> obj_embed1 / pos_embed.{0,1,2}
      score_net.{bi_freq_prior, obj_reduce, emb_reduce, box_embed, overlap_embed, score_pre, score_sub, score_obj,
                 vision_prior}               -> the same names directly under context_layer
      {obj,edge}_ctx_rnn.upward.K / .downward.K -> {obj,edge}_ctx_rnn.multi_layer_lstm.K.treeLSTM_{foreward,
                                                 backward}.treeLSTM
      decoder_rnn.{obj_embed, out, decoderLSTM} -> the same (decoderLSTM.embed_layer / embed_out_layer are SGB's
                                                 aliases of obj_embed / out)
    edge_head.{post_emb, post_cat, ctx_compress, up_dim, freq_bias} -> the same names on the predictor

SGB builds an object decoder in PredCls too, unused there; it kept its own random weights. SGB's ``bi_freq_prior``
as its constructor initialises it from ``pred_dist`` is stored as ``sgb_bi_freq_prior_init``.

Cases: PredCls and SGCls in eval with three images of 4, 1 and 5 boxes (the one-box image has SGB's placeholder
pair (0, 0)), and PredCls in training with two images (CONTEXT_DROPOUT_RATE 0 so both runs are deterministic; the
SGCls training decoder samples labels, which no two implementations draw alike). Stored from SGB: the object and
relation logits, the committed object labels, each image's pair score logits (``bi_preds``), the greedy trees
(root and each node's children in insertion order, read from SGB's forest before ``arbForest_to_biForest``) and,
in training, ``add_losses["binary_loss"]``.
"""
import pytest
import torch

from sgg.config import load_config
from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs, build_relation_losses
from sgg.modeling.roi_heads.relation_head.predictors import build_predictor
from sgg.modeling.roi_heads.relation_head.predictors.vctree import co_occurrence_prior
from sgg.modeling.roi_heads.relation_head.predictors.vctree_tree import greedy_tree
from sgg.modeling.roi_heads.relation_head.types import RelationBatch
from sgg.structures import BoxList

from golden_values import load_golden

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")

ROI, EMBED, HIDDEN, POOL = 16, 6, 10, 12
HEAD = "MODEL.ROI_RELATION_HEAD."
CASES = ["predcls_eval", "sgcls_eval", "predcls_train"]


def statistics(golden):
    pred_dist = golden["pred_dist"]
    return {"pred_dist": pred_dist, "fg_matrix": torch.ones(pred_dist.shape, dtype=torch.long),
            "obj_classes": golden["obj_classes"], "rel_classes": golden["rel_classes"]}


def build(golden, case):
    mode, layers, dropout = case["mode"], case["layers"], case["dropout"]
    opts = [HEAD + "PREDICTOR", "VCTreePredictor", HEAD + "USE_GT_BOX", True, HEAD + "USE_GT_OBJECT_LABEL",
            mode == "predcls", HEAD + "EMBED_DIM", EMBED, HEAD + "CONTEXT_HIDDEN_DIM", HIDDEN,
            HEAD + "CONTEXT_POOLING_DIM", POOL, HEAD + "CONTEXT_OBJ_LAYER", layers[0], HEAD + "CONTEXT_REL_LAYER",
            layers[1], HEAD + "CONTEXT_DROPOUT_RATE", dropout, HEAD + "NUM_CLASSES", len(golden["rel_classes"]),
            "MODEL.ROI_BOX_HEAD.NUM_CLASSES", len(golden["obj_classes"]), "GLOVE_DIR", "/nonexistent/glove"]
    cfg = load_config(opts=[str(o) for o in opts])  # LOSS stays SGB's default ("RelationCE", "ObjectCE")
    model = build_predictor(cfg, ROI, statistics(golden))
    built_prior = model.context.score_net.bi_freq_prior.weight.detach().clone()
    own_keys = set(model.state_dict())
    model.load_state_dict({k: v for k, v in golden["state_dict"].items() if k in own_keys}, strict=True)
    return model, build_relation_losses(cfg, statistics(golden)), built_prior


def make_batch(golden, case):
    inputs, boxes = case["inputs"], []
    for image in inputs["images"]:
        box = BoxList(image["boxes"], golden["image_size"])
        box.add_field("labels", image["labels"])
        if case["mode"] != "predcls":
            box.add_field("predict_logits", image["predict_logits"])
        boxes.append(box)
    return RelationBatch(case["mode"], boxes, inputs["pairs"], inputs["roi_features"], inputs["union_features"],
                         rel_labels=inputs.get("rel_labels"), rel_binarys=inputs.get("rel_binarys"))


@pytest.mark.parametrize("name", CASES)
def test_vctree_matches_sgb(name):
    golden = load_golden("vctree.pt")
    case = golden["cases"][name]
    reference = case["reference"]
    model, losses, _ = build(golden, case)
    training = name.endswith("train")
    model.train(training)
    batch = make_batch(golden, case)
    with torch.set_grad_enabled(training):
        out = model(batch)
        _, _, _, pair_logits = model.context(batch, return_pair_scores=True)

    assert torch.allclose(out.obj_logits, reference["obj_logits"], rtol=1e-5, atol=1e-5)
    assert torch.equal(out.obj_preds, reference["obj_preds"])
    assert torch.allclose(out.rel_logits, reference["rel_logits"], rtol=1e-5, atol=5e-5)
    for ours, theirs, tree in zip(pair_logits, reference["pair_logits"], reference["trees"]):
        # rtol 1e-4: the pair scores reach 5 and their float32 sums round differently by thread count and CPU type
        # (5.6e-5 apart with two threads on an Intel Xeon); the trees they build are compared exactly below
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-6)
        root, children = greedy_tree(torch.sigmoid(ours).detach().numpy())
        assert (root, children) == (tree["root"], tree["children"])
    if training:
        terms = losses(RelationLossInputs(out.rel_logits, torch.cat(case["inputs"]["rel_labels"]),
                                          num_pairs_per_image=batch.num_pairs, aux=out.aux))
        # the binary loss is in without being listed in LOSS, as SGB always adds it
        assert set(terms) == {"loss_rel", "loss_refine_obj", "loss_binary"}
        assert terms["loss_binary"].item() == pytest.approx(reference["binary_loss"].item(), rel=1e-5)


def test_the_golden_trees_are_not_trivial():
    """The fixture exercises what a slip in the tree would change: a node with several children (a sibling chain
    in the binary tree), a root that is not box 0, and a one-box image."""
    golden = load_golden("vctree.pt")
    trees = [tree for case in golden["cases"].values() for tree in case["reference"]["trees"]]
    assert max(len(kids) for tree in trees for kids in tree["children"]) >= 3
    assert any(tree["root"] != 0 for tree in trees)
    assert any(len(tree["children"]) == 1 for tree in trees)


def test_the_co_occurrence_prior_is_built_from_pred_dist_as_sgb():
    """bi_freq_prior as our constructor builds it from pred_dist equals SGB's constructor's, and by hand on one
    cell: the log-probabilities summed over predicates, of both orders of the pair."""
    golden = load_golden("vctree.pt")
    _, _, built = build(golden, golden["cases"]["predcls_eval"])
    assert torch.allclose(built, golden["sgb_bi_freq_prior_init"])
    pred_dist = golden["pred_dist"]
    num = pred_dist.shape[0]
    a, b = 2, 5  # a non-symmetric cell: both orders of the pair add up
    expected = pred_dist[a, b].sum() + pred_dist[b, a].sum()
    assert co_occurrence_prior(pred_dist)[a * num + b].item() == pytest.approx(expected.item(), rel=1e-6)
    assert pred_dist[a, b].sum().item() != pytest.approx(pred_dist[b, a].sum().item())
