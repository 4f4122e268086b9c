"""Golden values: IMPPredictor against SGB's on the same weights and inputs, in PredCls and SGCls.

The fixture (tests/modeling/golden/imp.pt) was produced once by running ``IMPPredictor.forward`` of
maskrcnn_benchmark/modeling/roi_heads/relation_head/roi_relation_predictors.py (with ``IMPContext`` of
model_msg_passing.py) from KaihuaTang/Scene-Graph-Benchmark.pytorch, commit 6f75881, on the CPU in eval mode, beside
this project's predictor. SGB's predictor was built from its own defaults.py with USE_GT_BOX True, USE_GT_OBJECT_LABEL
True (PredCls) / False (SGCls), 7 object classes, 6 predicates, MLP_HEAD_DIM (ROI and union features) 16 and
CONTEXT_POOLING_DIM 12 (so its ``up_dim`` runs). One size-only change to the reference: ``IMPContext``'s hard-coded
``hidden_dim=512`` default became 8 (``num_iter`` kept its 3).

Weights: this project's predictor, seeded (torch.manual_seed(0)) and with every bias then set to N(0, 0.2^2) values,
stored in the fixture as ``state_dict``, was loaded into SGB's module key for key (the module names are SGB's:
``context_layer.{obj_unary, edge_unary, node_gru, edge_gru, sub_vert_w_fc, obj_vert_w_fc, out_edge_w_fc,
in_edge_w_fc, obj_fc, rel_fc}``, ``up_dim``). In PredCls ours has no ``obj_fc``; SGB's stays at its random init and is
never used there. Inputs: two images with 3 and 4 boxes and 4 and 5 non-symmetric pairs, random ROI and union
features; the outputs are SGB's ``obj_dists`` and ``rel_dists`` concatenated over the images.
"""
import pytest
import torch

from sgg.config import load_config
from sgg.modeling.roi_heads.relation_head.predictors import build_predictor
from sgg.modeling.roi_heads.relation_head.types import RelationBatch
from sgg.structures import BoxList

from golden_values import load_golden

HEAD = "MODEL.ROI_RELATION_HEAD."


def build(mode, sizes, state):
    opts = [HEAD + "PREDICTOR", "IMPPredictor", HEAD + "USE_GT_BOX", True,
            HEAD + "USE_GT_OBJECT_LABEL", mode == "predcls", HEAD + "IMP.HIDDEN_DIM", sizes["hidden"],
            HEAD + "IMP.NUM_ITER", sizes["iterations"], HEAD + "CONTEXT_POOLING_DIM", sizes["pooling"],
            HEAD + "NUM_CLASSES", len(sizes["rel_classes"]), "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", sizes["roi"]]
    cfg = load_config(opts=[str(o) for o in opts])
    obj, rel = sizes["obj_classes"], sizes["rel_classes"]
    stats = {"obj_classes": obj, "rel_classes": rel, "pred_dist": torch.zeros(len(obj), len(obj), len(rel))}
    model = build_predictor(cfg, sizes["roi"], stats)
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_imp_matches_sgb(mode):
    golden = load_golden("imp.pt")
    case = golden["cases"][mode]
    model = build(mode, golden["sizes"], case["state_dict"])
    data = case["inputs"]
    boxes = []
    for bbox, labels in zip(data["boxes"], data["labels"]):
        box = BoxList(bbox, case["image_size"])
        box.add_field("labels", labels)
        boxes.append(box)
    batch = RelationBatch(mode=mode, boxes=boxes, pair_idxs=data["pairs"], roi_features=data["roi_features"],
                          union_features=data["union_features"])
    with torch.no_grad():
        out = model(batch)
    assert out.rel_logits.shape == case["rel_logits"].shape
    assert torch.allclose(out.rel_logits, case["rel_logits"], rtol=1e-5, atol=1e-6)
    assert torch.allclose(out.obj_logits, case["obj_logits"], rtol=1e-5, atol=1e-6)
    # the fixture must not be trivially matched: predicates differ across pairs and classes
    assert case["rel_logits"].std(dim=0).min() > 1e-3 and case["rel_logits"].std(dim=1).min() > 1e-3
