"""Every relation head of the framework at toy size, as a whole model (detector + head + losses), for the tests that
must run each head in each protocol it supports: mixed precision (test_mixed_precision.py) and the device / host-sync
audit (test_device_audit.py).

``HEADS`` maps a row name to (protocols, a function of a scratch folder returning the config options). The options
name the same predictors, loss terms, re-scorers and BA-SGG stages as the method configs under configs/synthetic/,
with small widths so one training step takes well under a second.
"""
import numpy as np
import torch

from sgg.config import load_config
from sgg.modeling.detector.detectors import meta_architecture_name
from sgg.modeling.registry import META_ARCHITECTURES
from sgg.structures import BoxList, to_image_list

NUM_CLASSES, NUM_PREDICATES = 6, 5
ALL = ("predcls", "sgcls", "sgdet")
SWITCHES = {"predcls": (True, True), "sgcls": (True, False), "sgdet": (False, False)}
HEAD = "MODEL.ROI_RELATION_HEAD."

BASE = [
    "MODEL.BACKBONE.CONV_BODY", "tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", True, "MODEL.RELATION_ON", True,
    "MODEL.BACKBONE.OUT_CHANNELS", 16, "MODEL.TINY_BACKBONE.STAGE_CHANNELS", "(8, 8, 16, 16)",
    "MODEL.ROI_BOX_HEAD.NUM_CLASSES", NUM_CLASSES, HEAD + "NUM_CLASSES", NUM_PREDICATES,
    "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", 48, "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", 4,
    HEAD + "CONTEXT_HIDDEN_DIM", 32, HEAD + "CONTEXT_POOLING_DIM", 64, HEAD + "EMBED_DIM", 16,
    HEAD + "TRANSFORMER.INNER_DIM", 32, HEAD + "BATCH_SIZE_PER_IMAGE", 32,
    "MODEL.ROI_HEADS.SCORE_THRESH", 0.0, "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", 6, "GLOVE_DIR", "/nonexistent/glove",
]
PENET_SMALL = [HEAD + "PENET.MLP_DIM", 16, HEAD + "PENET.EMBED_DIM", 8]
HCA_SMALL = [HEAD + "HCA.OBJ_LAYER", 1, HEAD + "HCA.REL_LAYER", 1, HEAD + "HCA.NUM_HEAD", 2, HEAD + "HCA.KEY_DIM", 8,
             HEAD + "HCA.VAL_DIM", 8, HEAD + "HCA.INNER_DIM", 32]
LINKNET_SMALL = [HEAD + "LINKNET.GEOMETRY_DIM", 16]
CAUSAL_SMALL = [HEAD + "CONTEXT_POOLING_DIM", 48, HEAD + "CAUSAL.EFFECT_ANALYSIS", True,  # pooling = MLP_HEAD_DIM
                HEAD + "CAUSAL.SPATIAL_FOR_VISION", True]
PENET_LOSS = '("RelationCE", "ObjectCE", "PENetEuclidean", "PENetPrototypeL21", "PENetPrototypeDistance")'
REWEIGHT = ["MODEL.USE_REWEIGHT", "PENET", HEAD + "REWEIGHT.DECAY_ITERS", 2]
DETR_SMALL = ["MODEL.META_ARCHITECTURE", "IterativeSceneGraph", "MODEL.DETR.FEATURE_STRIDE", 16,
              "MODEL.DETR.HIDDEN_DIM", 16, "MODEL.DETR.NHEADS", 2, "MODEL.DETR.DIM_FEEDFORWARD", 32,
              "MODEL.DETR.ENC_LAYERS", 1, "MODEL.DETR.DEC_LAYERS", 2, "MODEL.DETR.NUM_OBJECT_QUERIES", 6,
              "MODEL.DETR.NUM_RELATION_QUERIES", 6, "MODEL.DETR.DROPOUT", 0.0]


def _predictor(name, *extra):
    return lambda tmp_path: [HEAD + "PREDICTOR", name, *extra]


def _spl(tmp_path, *loss):
    roi_dim = 48
    torch.save(torch.randn(NUM_PREDICATES, roi_dim), tmp_path / "vis.pt")
    torch.save({"prototypes": torch.randn(NUM_PREDICATES, 12)}, tmp_path / "con.pt")
    return [HEAD + "PREDICTOR", "PrototypeEmbeddingNetwork", *PENET_SMALL, HEAD + "SPL.ENABLED", "auto",
            HEAD + "VIS_PRO_PATH", tmp_path / "vis.pt", HEAD + "VIS_PRO_DIM", roi_dim, HEAD + "VIS_VAE_INPUT_DIM",
            roi_dim, HEAD + "VIS_VAE_LATENT_DIM", 8, HEAD + "CON_PRO_TYPE", "FILE", HEAD + "CON_PRO_PATH",
            tmp_path / "con.pt", HEAD + "CON_PRO_DIM", 12, HEAD + "CON_VAE_INPUT_DIM", 12, HEAD + "CON_VAE_LATENT_DIM",
            3, *REWEIGHT, HEAD + "LOSS",
            '("ReweightedRelationCE", "ObjectCE", "SPLVAE", "SPLPrototypeSimilarity")']


def _confusion(tmp_path):
    """A predicate confusion matrix as tools/relation_confusion_matrix.py writes it (non-symmetric counts)."""
    confusion = np.arange(NUM_PREDICATES * NUM_PREDICATES, dtype=np.float64).reshape(NUM_PREDICATES, -1) % 7 + 1
    confusion[0] = 0  # the background row is never used
    np.save(tmp_path / "confusion.npy", confusion)
    return tmp_path / "confusion.npy"


def _ba_sgg_stage2(tmp_path):
    return [HEAD + "PREDICTOR", "TransformerPredictor", HEAD + "WITH_TRANSFER_CLASSIFIER", True,
            HEAD + "WITH_CLEAN_CLASSIFIER", True, HEAD + "BA_SGG.CONFUSION_MATRIX_PATH", _confusion(tmp_path)]


HEADS = {
    "FREQ": (ALL, _predictor("FrequencyPredictor")),
    "Motif": (ALL, _predictor("MotifPredictor")),
    "Transformer": (ALL, _predictor("TransformerPredictor")),
    "Transformer+Reweight": (ALL, _predictor("TransformerPredictor", *REWEIGHT, HEAD + "LOSS",
                                             '("ReweightedRelationCE", "ObjectCE")')),
    "LinkNet": (ALL, _predictor("LinkNetPredictor", *LINKNET_SMALL, HEAD + "LOSS", '("RelationCE", "ObjectCE", "gce")')),
    "LinkNet+CCE+Ranker": (ALL, _predictor("LinkNetPredictor", *LINKNET_SMALL, HEAD + "RESCORER", "Ranker",
                                           HEAD + "RANKER.HIDDEN_DIM", 16, HEAD + "RANKER.ATTENTION_DIM", 16,
                                           HEAD + "RANKER.NUM_HEAD", 2, HEAD + "LOSS",
                                           '("cce", "ObjectCE", "gce", "ranker")')),
    "PE-Net": (ALL, _predictor("PrototypeEmbeddingNetwork", *PENET_SMALL, HEAD + "LOSS", PENET_LOSS)),
    "SPL+Reweight": (ALL, _spl),
    "HCA": (ALL, _predictor("HybridCoAttentionPredictor", *HCA_SMALL)),
    "HCA+cdl": (ALL, lambda tmp_path: _predictor("HybridCoAttentionPredictor", *HCA_SMALL, HEAD + "LOSS",
                                                 '("cdl", "ObjectCE")', HEAD + "CDL.CONFUSION_MATRIX_PATH",
                                                 _confusion(tmp_path))(tmp_path)),
    "Transformer+BA-SGG-stage2": (ALL, _ba_sgg_stage2),
    "IterativeSG": (("sgdet",), lambda tmp_path: DETR_SMALL),
    "VCTree": (ALL, _predictor("VCTreePredictor")),  # LOSS gets VCTreeBinary without listing it, as SGB's command
    "IMP": (ALL, _predictor("IMPPredictor", HEAD + "IMP.HIDDEN_DIM", 16)),
    # Causal TDE: the effect applies at test only, so these rows train as EFFECT_TYPE none and evaluate the effect
    "Causal-Motifs-sum-TDE": (ALL, _predictor("CausalAnalysisPredictor", *CAUSAL_SMALL, HEAD + "CAUSAL.EFFECT_TYPE",
                                              "TDE")),
    "Causal-VTransE-gate-TE-separate": (ALL, _predictor("CausalAnalysisPredictor", *CAUSAL_SMALL,
                                                        HEAD + "CAUSAL.EFFECT_TYPE", "TE",
                                                        HEAD + "CAUSAL.CONTEXT_LAYER", "vtranse",
                                                        HEAD + "CAUSAL.FUSION_TYPE", "gate",
                                                        HEAD + "CAUSAL.SEPARATE_SPATIAL", True)),
    # VCTree context: also trains its pair scores with VCTreeBinary (added without listing it, as SGB)
    "Causal-VCTree-sum-TDE": (ALL, _predictor("CausalAnalysisPredictor", *CAUSAL_SMALL, HEAD + "CAUSAL.EFFECT_TYPE",
                                              "TDE", HEAD + "CAUSAL.CONTEXT_LAYER", "vctree")),
}


def statistics():
    """Class names, a frequency bias and predicate counts for the toy label space (a long tail: 70/20/9/1)."""
    rng = np.random.default_rng(0)
    dist = rng.dirichlet(np.ones(NUM_PREDICATES), size=(NUM_CLASSES, NUM_CLASSES)).astype(np.float32)
    fg = np.ones((NUM_CLASSES, NUM_CLASSES, NUM_PREDICATES), np.int64)
    fg[..., 1] += 5
    return {"pred_dist": np.log(dist + 1e-3), "fg_matrix": fg, "predicate_counts": np.array([0, 70, 20, 9, 1]),
            "obj_classes": ["__background__"] + [f"c{i}" for i in range(1, NUM_CLASSES)],
            "rel_classes": ["__background__"] + [f"p{i}" for i in range(1, NUM_PREDICATES)]}


def build(name, mode, tmp_path, *extra):
    """The whole model of row ``name`` in protocol ``mode`` with seeded random weights, and its config."""
    gt_box, gt_label = SWITCHES[mode]
    # SGDet: a random detector's boxes overlap the GT only a little; a low matching threshold gives them relation
    # labels, so the relation losses see positive pairs as they do with a trained detector.
    sgdet = (["MODEL.ROI_HEADS.FG_IOU_THRESHOLD", 0.05, "MODEL.ROI_HEADS.BG_IOU_THRESHOLD", 0.05] if mode == "sgdet"
             else [])
    opts = BASE + HEADS[name][1](tmp_path) + [HEAD + "USE_GT_BOX", gt_box, HEAD + "USE_GT_OBJECT_LABEL", gt_label,
                                              *sgdet, *extra]
    cfg = load_config(None, [str(o) for o in opts])
    torch.manual_seed(0)
    model = META_ARCHITECTURES.get(meta_architecture_name(cfg)).from_config(cfg, statistics())
    return model, cfg


def cases():
    """(row, protocol) for every head and every protocol it supports."""
    return [(name, mode) for name, (modes, _) in HEADS.items() for mode in modes]


def _target(boxes, labels, rels, size):
    t = BoxList(torch.tensor(boxes, dtype=torch.float32), size)
    t.add_field("labels", torch.tensor(labels))
    matrix = torch.zeros(len(boxes), len(boxes), dtype=torch.long)
    for s, o, p in rels:
        matrix[s, o] = p
    t.add_field("relation", matrix)
    t.add_field("relation_tuple", torch.tensor(rels, dtype=torch.long).reshape(-1, 3))
    return t


def batch():
    """Two images of different sizes with 4 and 3 GT boxes and relations of every predicate."""
    g = torch.Generator().manual_seed(0)
    images = to_image_list([torch.randn(3, 64, 96, generator=g), torch.randn(3, 60, 80, generator=g)], 32)
    targets = [_target([[2, 2, 30, 30], [20, 10, 60, 40], [50, 30, 90, 60], [5, 40, 25, 60]], [1, 2, 3, 4],
                       [[0, 1, 1], [1, 2, 2], [3, 0, 4], [2, 3, 1]], (96, 64)),
               _target([[10, 10, 40, 40], [45, 5, 78, 50], [30, 30, 70, 58]], [5, 2, 1], [[0, 1, 3], [2, 1, 1]],
                       (80, 60))]
    return images, targets
