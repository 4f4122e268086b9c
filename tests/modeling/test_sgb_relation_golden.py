"""SGB's relation heads, converted by sgg/utils/sgb_relation_checkpoint.py, give SGB's relation scores.

Golden fixture ``golden/sgb_relation_heads.pt``: produced by Scene-Graph-Benchmark.pytorch (KaihuaTang, commit
6f75881ad6076d3a1aee34e9bead2b3595631086) on the CPU (compiled ops replaced by torchvision's legacy ``roi_align``),
by its ``ROIRelationHead`` (maskrcnn_benchmark/modeling/roi_heads/relation_head/relation_head.py: the box feature
extractor, ``RelationFeatureExtractor`` and the predictor of roi_relation_predictors.py, then the head's
``forward`` with its post-processor) built from SGB's ``defaults.py`` with small sizes (the options in ``SGB_OPTS``
below, plus ``CAUSAL.EFFECT_ANALYSIS True`` as SGB's relation yaml: Motif then holds its ``untreated_*`` buffers),
in eval mode. Its GloVe loader and dataset statistics were stubbed (their values are overwritten anyway).

Weights: every tensor of SGB's relation head (names and shapes stored as ``key_shapes``, under
``roi_heads.relation.``) was drawn by ``sgb_relation_weights.seeded_sgb_weights(key_shapes, seed)``, VCTree's decoder
aliases then set to the tensors they alias (``tie_sgb_aliases``, as in SGB's own state dict), and loaded into SGB's
head; the test draws the same tensors, converts them with ``convert_sgb_relation_state`` (the mapping under test) and
loads the result into our ``relation_head`` strictly. SGB's ``IMPContext`` ran with its hard-coded hidden size 512
(our IMP.HIDDEN_DIM default).

Inputs (stored): four FPN levels of 8 channels for a 128 x 160 batch (strides 4..32), image 0 of 160 x 128 and
image 1 of 144 x 120 (w x h) with 4 and 3 GT boxes (one box of side ~150 px, so two FPN levels are pooled), their
labels, and the detector's class logits (``predict_logits``, SGCls). Cases: Motif PredCls (2 images), Motif SGCls
(image 0 only: SGB's Motif decoder asserts one image at test), Transformer, VCTree and IMP PredCls and SGCls (2
images). Stored outputs: the test pairs, the predictor's relation and object logits, and the post-processed (sorted)
pairs, scores and object labels; for VCTree also each image's pair scores (``bi_preds``, the output of
``VCTreeLSTMContext``'s score net), since its score net reaches the logits only through the trees' shape.

Tolerance: 1e-5 absolute on logits of order one (float32; the attention / LSTM kernels differ in summation order);
VCTree's pair scores (of order 0.02) to 1e-7 absolute plus 1e-5 relative.
"""
import pytest
import torch

from sgg.config import load_config
from sgg.modeling.detector.detectors import meta_architecture_name
from sgg.modeling.registry import META_ARCHITECTURES
from sgg.structures import BoxList
from sgg.utils.sgb_relation_checkpoint import convert_sgb_relation_state, split_relation_state

from golden_values import load_golden
from sgb_relation_weights import seeded_sgb_weights, sgb_relation_shapes, tie_sgb_aliases

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")

OBJ = ["__background__", "cat", "dog", "tree", "car", "man", "sign"]
REL = ["__background__", "on", "has", "near", "under", "holding"]
HEAD = "MODEL.ROI_RELATION_HEAD."
# the same sizes as the SGB run: FPN 8 channels, RoI 4 x 4 (sampling 2), MLP 20, embed 10, hidden 12, pooling 24
# (!= MLP, so up_dim exists), 2 object-context LSTM layers, Transformer 2 + 1 layers of 2 heads, k 5, v 6, inner 16
SGB_OPTS = ["MODEL.BACKBONE.CONV_BODY", "tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", "True", "MODEL.RELATION_ON", "True",
            "MODEL.BACKBONE.OUT_CHANNELS", "8", "MODEL.ROI_BOX_HEAD.NUM_CLASSES", str(len(OBJ)),
            "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "20", "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", "4",
            "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO", "2", HEAD + "NUM_CLASSES", str(len(REL)),
            HEAD + "EMBED_DIM", "10", HEAD + "CONTEXT_HIDDEN_DIM", "12", HEAD + "CONTEXT_POOLING_DIM", "24",
            HEAD + "CONTEXT_OBJ_LAYER", "2", HEAD + "CONTEXT_REL_LAYER", "1", HEAD + "POOLING_ALL_LEVELS", "True",
            HEAD + "TRANSFORMER.OBJ_LAYER", "2", HEAD + "TRANSFORMER.REL_LAYER", "1",
            HEAD + "TRANSFORMER.NUM_HEAD", "2",
            HEAD + "TRANSFORMER.KEY_DIM", "5", HEAD + "TRANSFORMER.VAL_DIM", "6", HEAD + "TRANSFORMER.INNER_DIM", "16",
            # SGB's box pooling: maskrcnn-benchmark's FPN level rule, legacy RoIAlign
            "MODEL.ROI_BOX_HEAD.POOLER_LEGACY_LEVELS", "True", "MODEL.ROI_BOX_HEAD.POOLER_ALIGNED", "False",
            "GLOVE_DIR", "/nonexistent/glove"]
CASES = ["motif_predcls", "motif_sgcls", "transformer_predcls", "transformer_sgcls", "vctree_predcls", "vctree_sgcls",
         "imp_predcls", "imp_sgcls"]
TOL = 1e-5


@pytest.fixture(scope="module")
def golden():
    return load_golden("sgb_relation_heads.pt")


def statistics():
    return {"obj_classes": OBJ, "rel_classes": REL, "pred_dist": torch.zeros(len(OBJ), len(OBJ), len(REL))}


def build_relation_head(predictor, mode, *extra):
    cfg = load_config(None, SGB_OPTS + [HEAD + "PREDICTOR", predictor, HEAD + "USE_GT_BOX", "True",
                                        HEAD + "USE_GT_OBJECT_LABEL", str(mode == "predcls"), *extra])
    model = META_ARCHITECTURES.get(meta_architecture_name(cfg)).from_config(cfg, statistics())
    return model.relation_head.eval()


def converted_head(case):
    head = build_relation_head(case["predictor"], case["mode"])
    sgb_state = tie_sgb_aliases(seeded_sgb_weights(case["key_shapes"], case["seed"]))
    rest, relation = split_relation_state(sgb_state)
    assert not rest
    converted, dropped = convert_sgb_relation_state(relation, head.state_dict(), case["predictor"])
    head.load_state_dict(converted, strict=True)
    return head, dropped


def run_ours(head, golden, case):
    images = case["images"]
    features = {name: level[:len(images)] for name, level in zip(["0", "1", "2", "3"], golden["features"])}
    proposals = []
    for i in images:
        boxes = BoxList(torch.tensor(golden["boxes"][i]), tuple(golden["image_sizes"][i]), "xyxy")
        boxes.add_field("labels", torch.tensor(golden["labels"][i]))
        boxes.add_field("predict_logits", golden["predict_logits"][i])
        proposals.append(boxes)
    captured = {}
    hooks = [head.predictor.register_forward_hook(lambda module, args, output: captured.update(output=output))]
    if case["predictor"] == "VCTreePredictor":  # the pair scores the trees are built on
        hooks.append(head.predictor.context.score_net.register_forward_hook(
            lambda module, args, output: captured.update(pair_logits=output)))
    with torch.no_grad():
        results = head(features, proposals, [(h, w) for w, h in (golden["image_sizes"][i] for i in images)])
    for hook in hooks:
        hook.remove()
    return captured, results


@pytest.mark.parametrize("name", CASES)
def test_converted_head_gives_sgbs_relation_scores(golden, name):
    case = {**golden["cases"][name], "seed": golden["seed"]}
    head, _ = converted_head(case)
    captured, results = run_ours(head, golden, case)
    output = captured["output"]
    torch.testing.assert_close(output.rel_logits, case["rel_logits"], atol=TOL, rtol=0)
    torch.testing.assert_close(output.obj_logits, case["obj_logits"], atol=TOL, rtol=0)
    assert case["rel_logits"].std() > 0.1  # the scores compared are not all alike
    if "pair_logits" in case:  # VCTree: its score net only shapes the trees, which may come out alike anyway
        assert len(captured["pair_logits"]) == len(case["pair_logits"])
        for ours, sgbs in zip(captured["pair_logits"], case["pair_logits"]):
            torch.testing.assert_close(ours, sgbs, atol=1e-7, rtol=1e-5)
    for result, pairs, scores, labels in zip(results, case["sorted_rel_pair_idxs"], case["sorted_rel_scores"],
                                             case["pred_labels"]):
        assert torch.equal(result.get_field("rel_pair_idxs"), pairs)
        torch.testing.assert_close(result.get_field("pred_rel_scores"), scores, atol=TOL, rtol=0)
        assert torch.equal(result.get_field("pred_labels"), labels)


@pytest.mark.parametrize("predictor, name", [("MotifPredictor", "motif_predcls"),
                                             ("TransformerPredictor", "transformer_predcls"),
                                             ("VCTreePredictor", "vctree_predcls"), ("IMPPredictor", "imp_predcls")])
def test_hand_written_sgb_key_list_is_sgbs(golden, predictor, name):
    """The SGB key list the tool tests fabricate checkpoints from is the one SGB's module reported."""
    shapes = sgb_relation_shapes(predictor, fpn=8, resolution=4, mlp=20, num_obj=len(OBJ), num_rel=len(REL), embed=10,
                                 hidden=12, pooling=24, obj_layers=2, rel_layers=1, transformer=(2, 1, 2, 5, 6, 16))
    assert shapes == {k: tuple(v) for k, v in golden["cases"][name]["key_shapes"].items()}
