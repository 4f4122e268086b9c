"""Every configurable behaviour of the framework, with SGB's key names and defaults (PROTOCOL.md section 3).

Precedence: command-line ``KEY VALUE`` pairs > yaml (``--config-file``) > the defaults below. Where SGB's relation yaml
(`configs/e2e_relation_X_101_32_8_FPN_1x.yaml`) changes a default, the yaml in `configs/` carries SGB's value; the
defaults here are SGB's ``defaults.py`` values unless a comment says otherwise.
"""
from typing import Callable, List

from .sgg_config import ConfigError, SGGConfig as CN, _flatten

_C = CN()

# ------------------------------------------------------------------------------------------------------------- MODEL
_C.MODEL = CN()
_C.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"  # registered meta-architecture (detector + relation head)
_C.MODEL.DEVICE = "cpu"  # "cpu" or "cuda" / "cuda:N"; SGB's default is cuda, ours runs anywhere
_C.MODEL.RELATION_ON = False  # False = detector pre-training, True = relation training
_C.MODEL.ATTRIBUTE_ON = False  # attribute head (not implemented; must stay False)
_C.MODEL.FLIP_AUG = False  # SGB's dataset-level flip switch; True forces INPUT.FLIP_PROB_TRAIN = 0.5 (flip fixed)
_C.MODEL.WEIGHT = ""  # weights to load (model only); "" = none
_C.MODEL.PRETRAINED_DETECTOR_CKPT = ""  # detector checkpoint for relation training
_C.MODEL.RANDOM_INIT_BACKBONE = False  # allow starting from random backbone weights when no ImageNet weights exist
_C.MODEL.PRETRAINED_BACKBONE_PATH = ""  # ImageNet weights file for the backbone (torchvision state dict)
_C.MODEL.CLS_AGNOSTIC_BBOX_REG = False  # class-agnostic box regression in the box predictor

_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.CONV_BODY = "R-50-FPN"  # registered name: R-50-FPN, R-101-FPN, X-101-32x8d-FPN, VGG-16, tiny-FPN
_C.MODEL.BACKBONE.FREEZE_CONV_BODY_AT = 2  # freeze stem and the first N-1 stages
_C.MODEL.BACKBONE.OUT_CHANNELS = 256  # FPN output channels (SGB: BACKBONE_OUT_CHANNELS)

_C.MODEL.RESNETS = CN()
_C.MODEL.RESNETS.NUM_GROUPS = 1  # 32 for ResNeXt-101-32x8d
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64  # 8 for ResNeXt-101-32x8d
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True  # False for ResNeXt (SGB yaml)
_C.MODEL.RESNETS.BACKBONE_OUT_CHANNELS = 256  # SGB's name for the FPN channel count

_C.MODEL.TINY_BACKBONE = CN()
_C.MODEL.TINY_BACKBONE.STAGE_CHANNELS = (16, 32, 64, 128)  # channels of the 4 stages of the CPU backbone

_C.MODEL.RPN = CN()
_C.MODEL.RPN.ANCHOR_SIZES = (32, 64, 128, 256, 512)  # one size per FPN level
_C.MODEL.RPN.ANCHOR_STRIDE = (16,)  # SGB yaml: (4, 8, 16, 32, 64)
_C.MODEL.RPN.ASPECT_RATIOS = (0.5, 1.0, 2.0)  # SGB yaml: neural-motifs' VG ratios
_C.MODEL.RPN.PRE_NMS_TOP_N_TRAIN = 12000  # proposals kept per FPN level before the RPN NMS, training
_C.MODEL.RPN.PRE_NMS_TOP_N_TEST = 6000  # ... and at test time
_C.MODEL.RPN.POST_NMS_TOP_N_TRAIN = 2000  # after NMS: per image without FPN, per level with FPN_POST_NMS_PER_LEVEL_CAP
_C.MODEL.RPN.POST_NMS_TOP_N_TEST = 1000  # ... and at test time
_C.MODEL.RPN.FPN_POST_NMS_TOP_N_TRAIN = 2000  # proposals kept over all FPN levels after NMS, training
_C.MODEL.RPN.FPN_POST_NMS_TOP_N_TEST = 2000  # ... and at test time
_C.MODEL.RPN.FPN_POST_NMS_PER_BATCH = True  # SGB key; accepted: the cut is always per image (SGB VG yaml: False)
_C.MODEL.RPN.NMS_THRESH = 0.7  # IoU of the RPN's NMS
_C.MODEL.RPN.FG_IOU_THRESHOLD = 0.7  # anchors with IoU >= this to a GT box are RPN positives
_C.MODEL.RPN.BG_IOU_THRESHOLD = 0.3  # anchors with IoU < this to every GT box are RPN negatives
_C.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 256  # anchors sampled per image for the RPN losses
_C.MODEL.RPN.POSITIVE_FRACTION = 0.5  # at most this fraction of them positive
_C.MODEL.RPN.MIN_SIZE = 0  # proposals with a side under this (pixels) are dropped (0 = none)
_C.MODEL.RPN.RPN_MID_CHANNEL = 512  # SGB yaml: 256

_C.MODEL.ROI_HEADS = CN()
# proposals with IoU >= this to a GT box are box-head positives (and SGDet's matches)
_C.MODEL.ROI_HEADS.FG_IOU_THRESHOLD = 0.5
_C.MODEL.ROI_HEADS.BG_IOU_THRESHOLD = 0.3  # proposals with IoU < this are box-head negatives
_C.MODEL.ROI_HEADS.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # (wx, wy, ww, wh) of the box-regression encoding
_C.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 256  # proposals sampled per image for the box-head losses
_C.MODEL.ROI_HEADS.POSITIVE_FRACTION = 0.25  # SGB yaml: 0.5
_C.MODEL.ROI_HEADS.SCORE_THRESH = 0.01  # detections scoring below this are dropped before NMS
_C.MODEL.ROI_HEADS.NMS = 0.3  # IoU of the per-class NMS of the detections
_C.MODEL.ROI_HEADS.POST_NMS_PER_CLS_TOPN = 300  # detections kept per class after NMS
_C.MODEL.ROI_HEADS.NMS_FILTER_DUPLICATES = False  # SGB yaml: True (one class per proposal)
_C.MODEL.ROI_HEADS.DETECTIONS_PER_IMG = 256  # SGB relation yaml: 80

_C.MODEL.ROI_BOX_HEAD = CN()
_C.MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR = "FPN2MLPFeatureExtractor"  # registered RoI feature extractor of the box head
_C.MODEL.ROI_BOX_HEAD.PREDICTOR = "FPNPredictor"  # registered box classifier / regressor
_C.MODEL.ROI_BOX_HEAD.NUM_CLASSES = 151  # 150 VG classes + background (SGB's default 81 is COCO's)
_C.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7  # RoIAlign output size (7 x 7)
_C.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 2  # RoIAlign sampling points per bin side
_C.MODEL.ROI_BOX_HEAD.POOLER_SCALES = (0.25, 0.125, 0.0625, 0.03125)  # 1 / stride of each pooled FPN level
_C.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM = 4096  # SGB defaults.py: 2048; the VG yamls use 4096

_C.MODEL.ROI_ATTRIBUTE_HEAD = CN()
_C.MODEL.ROI_ATTRIBUTE_HEAD.NUM_ATTRIBUTES = 201  # SGB's attribute head key; accepted, unused (no attribute head here)
_C.MODEL.ROI_ATTRIBUTE_HEAD.MAX_ATTRIBUTES = 10  # attributes per box in the VG150 h5 (its attribute column width)

_C.MODEL.ROI_RELATION_HEAD = CN()
_C.MODEL.ROI_RELATION_HEAD.PREDICTOR = "MotifPredictor"  # registered relation predictor
_C.MODEL.ROI_RELATION_HEAD.FEATURE_EXTRACTOR = "RelationFeatureExtractor"  # union-box feature extractor
_C.MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS = True  # union features pooled on all FPN levels
_C.MODEL.ROI_RELATION_HEAD.NUM_CLASSES = 51  # 50 predicates + background
_C.MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE = 64  # SGB relation yaml: 1024 sampled pairs per image
_C.MODEL.ROI_RELATION_HEAD.POSITIVE_FRACTION = 0.25  # at most this fraction of sampled pairs are foreground
_C.MODEL.ROI_RELATION_HEAD.USE_GT_BOX = True  # PredCls / SGCls (True) vs SGDet (False)
_C.MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL = False  # PredCls (True) vs SGCls (False)
_C.MODEL.ROI_RELATION_HEAD.EMBED_DIM = 200  # word vector size (GloVe 6B 200d)
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_DROPOUT_RATE = 0.2  # dropout inside the context models (Motif LSTMs)
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM = 512  # hidden size of the object / edge context
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM = 4096  # width of the pair representation the classifier reads
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_OBJ_LAYER = 1  # layers of the object context (Motif LSTM)
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_REL_LAYER = 1  # layers of the edge context (Motif LSTM)
_C.MODEL.ROI_RELATION_HEAD.LABEL_SMOOTHING_LOSS = False  # label smoothing in the object loss (SGB's switch)
_C.MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION = True  # use union-box features
_C.MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS = True  # add the frequency bias to relation logits
_C.MODEL.ROI_RELATION_HEAD.FREQUENCY_BIAS_DROPOUT = 0.0  # dropout on the frequency-bias logits in training (SGB: none)
_C.MODEL.ROI_RELATION_HEAD.REQUIRE_BOX_OVERLAP = True  # SGDet training pairs must overlap (SGB yaml: False)
_C.MODEL.ROI_RELATION_HEAD.NUM_SAMPLE_PER_GT_REL = 4  # SGDet: proposal pairs sampled per GT relation
_C.MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN = False  # SGB relation yaml: True
_C.MODEL.ROI_RELATION_HEAD.LOSS = ("RelationCE", "ObjectCE")  # loss terms by registered name, "NAME" or "NAME:W"
_C.MODEL.ROI_RELATION_HEAD.RESCORER = ""  # registered pair re-scoring module between predictor and post-processing
# registered logit adjusters, run in order on the predictor's relation logits before the re-scorer (e.g.
# "TransferClassifier", BA-SGG's Semantic Adjustment, which WITH_TRANSFER_CLASSIFIER True appends)
_C.MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS = ()
_C.MODEL.ROI_RELATION_HEAD.FREEZE_DETECTOR = True  # keep the detector frozen and in eval mode in relation training
_C.MODEL.ROI_RELATION_HEAD.REL_PROP = ()  # SGB's unused predicate proportions; accepted for compatibility

_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER = CN()
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.DROPOUT_RATE = 0.1  # dropout of the Transformer context
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.OBJ_LAYER = 4  # encoder layers of the object context
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.REL_LAYER = 2  # encoder layers of the edge context
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.NUM_HEAD = 8  # attention heads
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.INNER_DIM = 2048  # feed-forward width
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.KEY_DIM = 64  # key / query size per head
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.VAL_DIM = 64  # value size per head

# Keys of the later heads, one block per method. A head outside sgg/ declares its own keys in its file with
# register_config_defaults (below; docs/relation_head.md).
# LinkNet / CCE / Ranker keys
_C.MODEL.ROI_RELATION_HEAD.LINKNET = CN()  # LinkNetPredictor (METHODS.md 2.1); widths: CONTEXT_HIDDEN/POOLING_DIM
_C.MODEL.ROI_RELATION_HEAD.LINKNET.REDUCTION = 2  # relational embedding: W, U, H map d -> d / REDUCTION
_C.MODEL.ROI_RELATION_HEAD.LINKNET.GEOMETRY_DIM = 128  # geometric layout encoding K2: 4 -> GEOMETRY_DIM
_C.MODEL.ROI_RELATION_HEAD.LINKNET.GEOMETRY_DROPOUT = 0.1  # dropout at the end of K2
_C.MODEL.ROI_RELATION_HEAD.LINKNET.GCE_ACTIVATION = "sigmoid"  # "gce" loss head: "sigmoid" | "softmax" (re-impl.)
_C.MODEL.ROI_RELATION_HEAD.LINKNET.GLOBAL_FEATURE_MAPS = ()  # backbone maps averaged into the context c; () = all
_C.MODEL.ROI_RELATION_HEAD.LINKNET.GLOBAL_POOLING = "padded"  # c averages the whole padded map (ref.) | "image" extent
_C.MODEL.ROI_RELATION_HEAD.LINKNET.OBJECT_LABEL_INPUT = "detector"  # PredCls O0: softmax(logits) @ K0 (ref.) | "gt_label"
_C.MODEL.ROI_RELATION_HEAD.LINKNET.ATTENTION_SCOPE = "image"  # relational embedding over "image" | "batch" (re-impl.)
_C.MODEL.ROI_RELATION_HEAD.LINKNET.USE_TANH = False  # tanh on the relation product G0 (reference -use_tanh)
_C.MODEL.ROI_RELATION_HEAD.LINKNET.LIMIT_VISION_DIM = 0  # only the first N dims of G0 meet the union feature; 0 = all
_C.MODEL.ROI_RELATION_HEAD.CCE = CN()  # contrasting cross-entropy, LOSS term "cce" (METHODS.md 2.2)
_C.MODEL.ROI_RELATION_HEAD.CCE.LAMBDA1 = 100.0  # weight of the hinge (-lambda1)
_C.MODEL.ROI_RELATION_HEAD.CCE.MARGIN_M1 = 0.0  # hinge margin m1 >= 0 (-m1)
_C.MODEL.ROI_RELATION_HEAD.CCE.BACKGROUND_AS_NEGATIVE = False  # True: a foreground pair's negative may be background
_C.MODEL.ROI_RELATION_HEAD.RANKER = CN()  # RESCORER "Ranker" + LOSS term "ranker" (METHODS.md 2.3)
_C.MODEL.ROI_RELATION_HEAD.RANKER.HIDDEN_DIM = 256  # d_h of MLP_P(predicate distribution) and MLP_F(rel features)
_C.MODEL.ROI_RELATION_HEAD.RANKER.ATTENTION_DIM = 256  # d_e of the self-attention over an image's candidate pairs
_C.MODEL.ROI_RELATION_HEAD.RANKER.NUM_HEAD = 4  # attention heads (must divide ATTENTION_DIM)
_C.MODEL.ROI_RELATION_HEAD.RANKER.NUM_LAYER = 1  # self-attention blocks
_C.MODEL.ROI_RELATION_HEAD.RANKER.ATTENTION_CHUNK = 1024  # queries per attention block (bounds SGDet memory)
_C.MODEL.ROI_RELATION_HEAD.RANKER.REL_FEATURE_DIM = 0  # width of PredictorOutput.rel_features; 0 = the predictor's
_C.MODEL.ROI_RELATION_HEAD.RANKER.USE_PREDICATE_DIST = True  # add MLP_P(softmax(rel_logits)) (-not_rdist: False)
_C.MODEL.ROI_RELATION_HEAD.RANKER.GLOBAL_FEATURE_MAPS = ()  # backbone maps averaged into the image feature; () = all
_C.MODEL.ROI_RELATION_HEAD.RANKER.DETACH_INPUTS = False  # True: the ranker loss does not reach the predictor
_C.MODEL.ROI_RELATION_HEAD.RANKER.LOSS = "bce"  # "bce" | "mse" | "margin" (-rloss)
_C.MODEL.ROI_RELATION_HEAD.RANKER.LAMBDA2 = 1.0  # weight of the ranker loss (-lambda2)
_C.MODEL.ROI_RELATION_HEAD.RANKER.MARGIN_M2 = 0.0  # margin of the "margin" loss (-m2)
_C.MODEL.ROI_RELATION_HEAD.RANKER.SCORE_COMBINATION = "multiply"  # test: "multiply" rel scores by S | "none"
# BA-SGG (Guo et al., ICCV 2021; docs/ba_sgg.md). The first three keys are the reference repository's own names.
_C.MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER = False  # Semantic Adjustment: logits z' = A' z, train and test
_C.MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER = False  # BPL stage 2: train only a copy of the classifier
_C.MODEL.PRETRAINED_MODEL_CKPT = ""  # stage-1 relation checkpoint; its classifier also initialises the clean copy
_C.MODEL.ROI_RELATION_HEAD.BA_SGG = CN()
# (R, R) .npy of tools/relation_confusion_matrix.py; the default is where the reference reads it
_C.MODEL.ROI_RELATION_HEAD.BA_SGG.CONFUSION_MATRIX_PATH = "misc/conf_mat_freq_train.npy"
_C.MODEL.ROI_RELATION_HEAD.BA_SGG.BALANCE_TRAIN_DATA = True  # with the clean classifier: re-balanced training split
_C.MODEL.ROI_RELATION_HEAD.BA_SGG.TOP_PREDICATES = 15  # N: the N most frequent predicates are capped ...
_C.MODEL.ROI_RELATION_HEAD.BA_SGG.MAX_INSTANCES = 2000  # ... at M instances each, first come first kept
_C.MODEL.ROI_RELATION_HEAD.BA_SGG.FROZEN_EVAL_MODE = False  # stage 2: frozen modules in eval mode (reference: train)
# PE-Net / SPL / reweighting keys
_C.MODEL.USE_REWEIGHT = "none"  # SPL's key: "PENET" reads LOSS entry RelationCE as ReweightedRelationCE; "none"
_C.MODEL.ROI_RELATION_HEAD.PENET = CN()  # PrototypeEmbeddingNetwork (METHODS.md 4.1-4.3); obj refine = HIDDEN_DIM
_C.MODEL.ROI_RELATION_HEAD.PENET.MLP_DIM = 2048  # D: entity / predicate embedding size (matching space is 2D)
_C.MODEL.ROI_RELATION_HEAD.PENET.EMBED_DIM = 300  # word vector size of the class and predicate embeddings
_C.MODEL.ROI_RELATION_HEAD.PENET.DROPOUT = 0.2  # dropout of vis2sem, the stabilisers and the projection heads
_C.MODEL.ROI_RELATION_HEAD.PENET.INIT = "reference"  # "reference" (the papers' code: PyTorch default) | "xavier"
_C.MODEL.ROI_RELATION_HEAD.PENET.TEMPERATURE = 0.07  # initial cosine temperature: logit scale = log(1 / T), learnt
_C.MODEL.ROI_RELATION_HEAD.PENET.EUC_TOPK = 10  # k1: nearest negative prototypes in loss "PENetEuclidean"
_C.MODEL.ROI_RELATION_HEAD.PENET.EUC_MARGIN = 1.0  # gamma1 of loss "PENetEuclidean"
_C.MODEL.ROI_RELATION_HEAD.PENET.PROTO_MARGIN = 7.0  # gamma2 of loss "PENetPrototypeDistance"
_C.MODEL.ROI_RELATION_HEAD.SPL = CN()  # Synergetic Prototype Learning on top of PE-Net (METHODS.md 4.5)
_C.MODEL.ROI_RELATION_HEAD.SPL.ENABLED = "auto"  # "on" | "off" | "auto" (= on when a prototype path is set)
_C.MODEL.ROI_RELATION_HEAD.SPL.SEMANTIC_BRANCH = True  # word-vector prototypes fused with the base classifier
_C.MODEL.ROI_RELATION_HEAD.SPL.VISUAL_BRANCH = True  # class-mean union features + union-feature VAE residual
_C.MODEL.ROI_RELATION_HEAD.SPL.CONCEPT_BRANCH = True  # predicate text embeddings through a VAE
_C.MODEL.ROI_RELATION_HEAD.SPL.FUSION_INIT = 0.0  # initial fusion parameter w (sigmoid(0) = equal mix); learnt
_C.MODEL.ROI_RELATION_HEAD.SPL.VAE_INIT_STD = 0.0  # > 0: N(0, std) VAE weights (0.02 = the reference at any width);
# <= 0: 0.02 * sqrt(4096 / VAE input size), the reference's std at 4096-d inputs and the same signal gain when narrower
_C.MODEL.ROI_RELATION_HEAD.SPL.DETACH_VAE_INPUT = False  # True: the VAE loss cannot reshape the union features
_C.MODEL.ROI_RELATION_HEAD.VIS_PRO_DIM = 4096  # SPL: feature size of VIS_PRO_PATH rows (= union feature size)
_C.MODEL.ROI_RELATION_HEAD.STORE_UNION = False  # SPL: must stay False; tools/compute_visual_prototypes.py stores
_C.MODEL.ROI_RELATION_HEAD.VIS_VAE_LATENT_DIM = 1024  # SPL: latent size of the union-feature VAE
_C.MODEL.ROI_RELATION_HEAD.VIS_VAE_INPUT_DIM = 4096  # SPL: input of the union-feature VAE (= union feature size)
_C.MODEL.ROI_RELATION_HEAD.VIS_PRO_PATH = ""  # SPL: (R, VIS_PRO_DIM) visual prototypes (.pt/.npy)
_C.MODEL.ROI_RELATION_HEAD.CON_PRO_DIM = 4096  # SPL: text embedding size: 2304 CLIP, 4096 LLaMA, 384 MiniLM
_C.MODEL.ROI_RELATION_HEAD.CON_VAE_LATENT_DIM = 1024  # SPL: latent size of the text VAE (576 CLIP, 1024 LLaMA)
_C.MODEL.ROI_RELATION_HEAD.CON_VAE_INPUT_DIM = 4096  # SPL: input of the text VAE (= CON_PRO_DIM)
_C.MODEL.ROI_RELATION_HEAD.CON_PRO_TYPE = "LLAMA"  # SPL: "CLIP" | "LLAMA" (reference files) | "FILE" (CON_PRO_PATH)
_C.MODEL.ROI_RELATION_HEAD.CON_PRO_CLIP_PATH = ""  # SPL: (R, 2304) CLIP predicate text embeddings
_C.MODEL.ROI_RELATION_HEAD.CON_PRO_LLAMA_PATH = ""  # SPL: (R, 4096) LLaMA predicate text embeddings
_C.MODEL.ROI_RELATION_HEAD.CON_PRO_PATH = ""  # ours, CON_PRO_TYPE "FILE": tools/compute_concept_prototypes.py output
_C.MODEL.ROI_RELATION_HEAD.REWEIGHT = CN()  # loss term "ReweightedRelationCE" (any predictor)
_C.MODEL.ROI_RELATION_HEAD.REWEIGHT.WEIGHTS = "effective_number"  # from training counts | "file" (WEIGHT_FILE)
_C.MODEL.ROI_RELATION_HEAD.REWEIGHT.WEIGHT_FILE = ""  # json {predicate: weight} or one weight per class (.txt/.npy)
_C.MODEL.ROI_RELATION_HEAD.REWEIGHT.BETA = 0.99999  # w_p ~ (1 - BETA) / (1 - BETA^n_p), background n = inf, sum R
_C.MODEL.ROI_RELATION_HEAD.REWEIGHT.HEAD_PREDICATES = ()  # curriculum head set by name; () = HEAD_COUNT most frequent
_C.MODEL.ROI_RELATION_HEAD.REWEIGHT.HEAD_COUNT = 16  # size of the automatic head set
_C.MODEL.ROI_RELATION_HEAD.REWEIGHT.DECAY_ITERS = 30000  # head weights x max(1 - t / DECAY_ITERS, FLOOR); 0 = off
_C.MODEL.ROI_RELATION_HEAD.REWEIGHT.FLOOR = 0.2  # lowest factor of the head weights
# HCA / category-discriminating loss keys
_C.MODEL.ROI_RELATION_HEAD.HCA = CN()  # HybridCoAttentionPredictor (METHODS.md 5.1); width = CONTEXT_HIDDEN_DIM
_C.MODEL.ROI_RELATION_HEAD.HCA.OBJ_LAYER = 4  # four-stream hybrid layers of the object encoder
_C.MODEL.ROI_RELATION_HEAD.HCA.REL_LAYER = 2  # SHA layers of the edge decoder
_C.MODEL.ROI_RELATION_HEAD.HCA.NUM_HEAD = 8  # attention heads of every self/cross-attention block
_C.MODEL.ROI_RELATION_HEAD.HCA.KEY_DIM = 64  # per-head query/key size (temperature sqrt(KEY_DIM))
_C.MODEL.ROI_RELATION_HEAD.HCA.VAL_DIM = 64  # per-head value size
_C.MODEL.ROI_RELATION_HEAD.HCA.INNER_DIM = 2048  # feed-forward hidden size after each attention block
_C.MODEL.ROI_RELATION_HEAD.HCA.DROPOUT_RATE = 0.1  # attention, feed-forward and box-embedding dropout
_C.MODEL.ROI_RELATION_HEAD.CDL = CN()  # FGPL's category discriminating loss, LOSS term "cdl" (METHODS.md 5.2)
_C.MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH = ""  # (R, R) .npy, rows GT, cols predicted (BA-SGG tool)
_C.MODEL.ROI_RELATION_HEAD.CDL.MITIGATION_FACTOR = 1.5  # exponent on n_j/n_i for rarer, uncorrelated negatives
_C.MODEL.ROI_RELATION_HEAD.CDL.COMPENSATION_FACTOR = 2.0  # exponent on n_j/n_i for commoner, correlated negatives
_C.MODEL.ROI_RELATION_HEAD.CDL.CORRELATION_THRESHOLD = 0.9  # P_ij / P_ii above this marks j correlated with i
_C.MODEL.ROI_RELATION_HEAD.CDL.LATTICE_NORMALIZATION = "row"  # "row" (what the reference computes) | "column"
_C.MODEL.ROI_RELATION_HEAD.CDL.ABSENT_CLASSES = "drop"  # classes absent from the batch: "drop" (reference) | "keep"
# IterativeSG keys (MODEL.DETR ...)
# MODEL.META_ARCHITECTURE "IterativeSceneGraph" (METHODS.md 6, docs/iterative_sg.md); names as the reference's.
# Class counts come from the dataset (ROI_BOX_HEAD.NUM_CLASSES / ROI_RELATION_HEAD.NUM_CLASSES, background at 0).
_C.MODEL.DETR = CN()
_C.MODEL.DETR.FEATURE_STRIDE = 32  # stride of the backbone map the transformer reads (FPN P5; reference: C5)
_C.MODEL.DETR.SOURCE_FEATURE_STRIDE = 0  # >0: read this finer map and average-pool it to FEATURE_STRIDE (0: read it)
_C.MODEL.DETR.HIDDEN_DIM = 256  # d_model of the input projection, encoder, decoders and queries
_C.MODEL.DETR.NHEADS = 8  # attention heads everywhere
_C.MODEL.DETR.DIM_FEEDFORWARD = 2048  # feed-forward width of encoder and decoder layers
_C.MODEL.DETR.DROPOUT = 0.1  # dropout of attention, feed-forward and the conditioning/refinement blocks
_C.MODEL.DETR.ENC_LAYERS = 6  # transformer encoder layers
_C.MODEL.DETR.DEC_LAYERS = 6  # layers of each of the three decoders (subject, object, predicate)
_C.MODEL.DETR.NUM_OBJECT_QUERIES = 300  # subject and object queries (must equal NUM_RELATION_QUERIES: triplet i)
_C.MODEL.DETR.NUM_RELATION_QUERIES = 300  # predicate queries; at most this many GT triplets are matched per image
_C.MODEL.DETR.DEEP_SUPERVISION = True  # losses on every decoder layer (False: the last layer only)
_C.MODEL.DETR.COST_CLASS = 1.0  # class weight in the matching cost and the class losses
_C.MODEL.DETR.L1_WEIGHT = 5.0  # box L1 weight in the matching cost and the box losses
_C.MODEL.DETR.GIOU_WEIGHT = 2.0  # GIoU weight in the matching cost and the box losses
_C.MODEL.DETR.NO_OBJECT_WEIGHT = 0.1  # CE class weight of "no object" for subject and object queries
_C.MODEL.DETR.REWEIGHT_RELATIONS = True  # predicate CE weights w_c = max(1, sqrt(alpha / f_c))^UNDERSAMPLE_PARAM
_C.MODEL.DETR.REWEIGHT_REL_EOS_COEF = 0.1  # CE class weight of "no relation" (with or without REWEIGHT_RELATIONS)
_C.MODEL.DETR.OVERSAMPLE_PARAM = 0.07  # alpha: predicates rarer than this fraction of the triplets get w_c > 1
_C.MODEL.DETR.UNDERSAMPLE_PARAM = 1.5  # U = 2 beta (the reference README's convention); 1.5 is beta = 0.75
_C.MODEL.DETR.TEST_INDEX = -1  # decoder layer whose outputs are the predictions (-1 = last)
_C.MODEL.DETR.ENTITY_NMS_THRESH = 0.5  # class-wise NMS of the pooled subject/object boxes (ref: NMS_THRESH_TEST)
_C.MODEL.DETR.ONE_PREDICATE_PER_PAIR = False  # False: keep distinct (s, o, p) as the reference; True: best per pair
_C.MODEL.DETR.EVAL_QUERY_RANKING = True  # R@K in the query's s_sub*s_obj*s_rel order (reference); False: kept entities'
# demo / SGB checkpoint keys
# maskrcnn-benchmark's numeric conventions (sgg/modeling/sgb_conventions.py), for detectors converted from SGB
# with tools/convert_sgb_checkpoint.py; the torchvision conventions are the defaults.
_C.MODEL.BOX_CODER_PLUS_ONE = False  # box widths x2 - x1 + 1 when encoding / decoding boxes (RPN and box head)
_C.MODEL.RPN.LEGACY_ANCHORS = False  # Detectron's cell anchors (centred at (stride - 1) / 2, rounded sides)
_C.MODEL.RESNETS.FROZEN_BN_EPS = 1e-5  # epsilon of the frozen batch norm; maskrcnn-benchmark's has none (0.0)
_C.MODEL.ROI_BOX_HEAD.POOLER_ALIGNED = False  # RoIAlign variant: False legacy grid (SGB, torchvision), True half-pixel
_C.MODEL.ROI_BOX_HEAD.POOLER_LEGACY_LEVELS = False  # maskrcnn-benchmark's FPN level of a box (+1 areas); SGB: True
_C.MODEL.RPN.FPN_POST_NMS_PER_LEVEL_CAP = False  # FPN: at most POST_NMS_TOP_N_* per level after NMS (SGB: True)
_C.MODEL.NMS_PLUS_ONE = False  # SGB's NMS in RPN and box head: +1 widths, IoU >= thresh suppresses, input order
_C.MODEL.CLIP_TO_LAST_PIXEL = False  # clip boxes to [0, W-1] x [0, H-1], RPN MIN_SIZE on +1 widths (SGB: True)
_C.MODEL.ROI_HEADS.PROPOSAL_ORDER = False  # SGB: True; per-class cap and output in proposal order, not by score
# IMP keys
_C.MODEL.ROI_RELATION_HEAD.IMP = CN()  # IMPPredictor (Xu et al. 2017; SGB's model_msg_passing.py; docs/imp.md)
_C.MODEL.ROI_RELATION_HEAD.IMP.HIDDEN_DIM = 512  # node / edge state size (SGB hard-codes 512, not CONTEXT_HIDDEN_DIM)
_C.MODEL.ROI_RELATION_HEAD.IMP.NUM_ITER = 3  # rounds of message passing, >= 1 (SGB hard-codes 3)
# Causal TDE keys (CausalAnalysisPredictor, docs/causal_tde.md; SGB's names and defaults)
_C.MODEL.ROI_RELATION_HEAD.CAUSAL = CN()
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS = False  # keep the untreated averages and run counterfactuals at test
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.FUSION_TYPE = "sum"  # "sum": vis + ctx + frq logits | "gate": ctx * sigmoid(...)
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER = "motifs"  # "motifs" | "vctree" | "vtranse"
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.SEPARATE_SPATIAL = False  # union box masks get their own MLP, multiplying the context
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.SPATIAL_FOR_VISION = False  # multiply the context by an embedding of the pair boxes
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE = "none"  # test-time logits: "none" | "TDE" | "NIE" | "TE"

# ------------------------------------------------------------------------------------------------------------- INPUT
_C.INPUT = CN()
_C.INPUT.MIN_SIZE_TRAIN = (800,)  # shorter side; one is picked at random per image. SGB VG yaml: (600,)
_C.INPUT.MAX_SIZE_TRAIN = 1333  # cap on the longer side. SGB VG yaml: 1000
_C.INPUT.MIN_SIZE_TEST = 800  # SGB VG yaml: 600
_C.INPUT.MAX_SIZE_TEST = 1333  # SGB VG yaml: 1000
_C.INPUT.PIXEL_MEAN = (102.9801, 115.9465, 122.7717)  # subtracted after TO_BGR255
# per-channel divisor after subtracting PIXEL_MEAN (1 for Caffe2-style BGR weights)
_C.INPUT.PIXEL_STD = (1.0, 1.0, 1.0)
_C.INPUT.TO_BGR255 = True  # Caffe-style BGR 0..255 input, as SGB's detector
_C.INPUT.FLIP_PROB_TRAIN = 0.5  # horizontal flip probability in training (SGB hard-codes 0.5)
_C.INPUT.BRIGHTNESS = 0.0  # colour jitter in training (torchvision ColorJitter; 0 = off, SGB's setting)
_C.INPUT.CONTRAST = 0.0  # colour jitter: contrast
_C.INPUT.SATURATION = 0.0  # colour jitter: saturation
_C.INPUT.HUE = 0.0  # colour jitter: hue

# ---------------------------------------------------------------------------------------------------------- DATASETS
_C.DATASETS = CN()
_C.DATASETS.DATA_DIR = "datasets"  # root of the dataset catalog; the SGG_DATA_DIR environment variable overrides it
_C.DATASETS.TRAIN = ()  # catalog names, e.g. ("VG150_train",) or SGB's VG_stanford_filtered_with_attribute_train
_C.DATASETS.VAL = ()  # catalog names of the validation datasets
_C.DATASETS.TEST = ()  # catalog names of the test datasets
_C.DATASETS.TO_TEST = ""  # relation_test_net: "", "train", "val" or "test" (SGB: None)
_C.DATASETS.VAL_SIZE = 5000  # val = the first VAL_SIZE filtered train-split images (SGB's num_val_im)
_C.DATASETS.NUM_IM = -1  # truncate each split's image list (-1 = all); for debugging
_C.DATASETS.FILTER_DUPLICATE_RELS = True  # train: one random predicate per duplicated (subject, object) pair
_C.DATASETS.CHECK_IMAGES = True  # check that every image file exists when the dataset is opened

# -------------------------------------------------------------------------------------------------------- DATALOADER
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4  # loader worker processes per training process
_C.DATALOADER.SIZE_DIVISIBILITY = 0  # pad batches to a multiple of this (SGB VG yaml: 32)
_C.DATALOADER.ASPECT_RATIO_GROUPING = True  # batch landscape and portrait images separately

# ------------------------------------------------------------------------------------------------------------ SOLVER
_C.SOLVER = CN()
_C.SOLVER.OPTIMIZER = "SGD"  # "SGD" or "AdamW"
_C.SOLVER.MAX_ITER = 40000  # training iterations
_C.SOLVER.EXTEND_RUN = False  # True: resuming may change MAX_ITER (e.g. continue a finished run); docs/training.md
_C.SOLVER.SCHEDULE_SCALE = 1.0  # multiplies every iteration count (docs/training.md) at load; the resolved config has 1.0
_C.SOLVER.BASE_LR = 0.002  # learning rate for IMS_PER_BATCH images
_C.SOLVER.SCALE_LR_BY_BATCH = True  # SGB's effective LR: BASE_LR x IMS_PER_BATCH
_C.SOLVER.BIAS_LR_FACTOR = 2.0  # biases train at BASE_LR x this
_C.SOLVER.BACKBONE_LR_FACTOR = 1.0  # LR multiplier for backbone parameters
_C.SOLVER.MOMENTUM = 0.9  # SGD momentum
_C.SOLVER.BETAS = (0.9, 0.999)  # AdamW
_C.SOLVER.WEIGHT_DECAY = 0.0005  # L2 weight decay of weights
_C.SOLVER.WEIGHT_DECAY_BIAS = 0.0  # ... and of biases
_C.SOLVER.CLIP_NORM = 5.0  # SGB's unused key; accepted for compatibility
_C.SOLVER.GRAD_NORM_CLIP = 5.0  # global L2 gradient-norm clip; <= 0 disables
_C.SOLVER.GAMMA = 0.1  # LR factor at each of STEPS (WarmupMultiStepLR)
_C.SOLVER.STEPS = (30000,)  # iterations at which the LR is multiplied by GAMMA
_C.SOLVER.WARMUP_FACTOR = 1.0 / 3  # the LR starts at BASE_LR x this ...
_C.SOLVER.WARMUP_ITERS = 500  # ... and rises linearly to BASE_LR over these iterations
_C.SOLVER.WARMUP_METHOD = "linear"  # "linear" or "constant"
_C.SOLVER.CHECKPOINT_PERIOD = 2500  # save model_{iter}.pth every this many iterations
_C.SOLVER.VAL_PERIOD = 2500  # validate every this many iterations (with TO_VAL)
_C.SOLVER.PRINT_GRAD_FREQ = 5000  # SGB's gradient-printing period; accepted, unused (grad norms are logged every step)
_C.SOLVER.TO_VAL = True  # validate during training
_C.SOLVER.PRE_VAL = True  # validate once before a fresh run's first iteration
_C.SOLVER.UPDATE_SCHEDULE_DURING_LOAD = False  # SGB key; accepted, unused (a resumed run restores its scheduler state)
_C.SOLVER.IMS_PER_BATCH = 16  # global batch size (split over processes)
_C.SOLVER.LOG_PERIOD = 20  # iterations between log lines (SGB: 200)
_C.SOLVER.BEST_METRIC = ""  # validation metric that picks model_best.pth ("" = the mode's R@100 / detector mAP)
_C.SOLVER.FREEZE_PATTERNS = ()  # parameter-name regexes to freeze
_C.SOLVER.FIND_UNUSED_PARAMETERS = False  # DDP find_unused_parameters (True when some parameters get no gradient)
_C.SOLVER.SCHEDULE = CN()
_C.SOLVER.SCHEDULE.TYPE = "WarmupMultiStepLR"  # or "WarmupReduceLROnPlateau", "WarmupCosineLR"
_C.SOLVER.SCHEDULE.PATIENCE = 2  # plateau: validations without a gain before the LR decays
_C.SOLVER.SCHEDULE.THRESHOLD = 1e-4  # plateau: the smallest gain that counts
_C.SOLVER.SCHEDULE.COOLDOWN = 1  # plateau: validations to wait after a decay
_C.SOLVER.SCHEDULE.FACTOR = 0.5  # plateau: LR factor at each decay
_C.SOLVER.SCHEDULE.MAX_DECAY_STEP = 7  # plateau: stop training after this many decays

# -------------------------------------------------------------------------------------------------------------- TEST
_C.TEST = CN()
_C.TEST.IMS_PER_BATCH = 8  # test images per batch (over all processes)
_C.TEST.DETECTIONS_PER_IMG = 100  # SGB key, unused by the relation path
_C.TEST.ALLOW_LOAD_FROM_CACHE = True  # SGB key; accepted, unused (inference always runs)
_C.TEST.SAVE_PROPOSALS = False  # SGB key; accepted, unused
_C.TEST.CUSTUM_EVAL = False  # SGB's (misspelt) custom-image switch
_C.TEST.CUSTUM_PATH = "."  # SGB's demo image folder key (spelled as SGB); accepted, unused: tools/demo.py takes --input
_C.TEST.RELATION = CN()
_C.TEST.RELATION.MULTIPLE_PREDS = False  # SGB's unused key; ng-R@K is always computed
_C.TEST.RELATION.IOU_THRESHOLD = 0.5  # a predicted box matches a GT box at IoU >= this (SGDet, PhrDet)
_C.TEST.RELATION.REQUIRE_OVERLAP = True  # SGDet test pairs must overlap (SGB relation yaml: False)
_C.TEST.RELATION.LATER_NMS_PREDICTION_THRES = 0.3  # SGB relation yaml: 0.5
_C.TEST.RELATION.SYNC_GATHER = False  # SGB key; accepted, unused (predictions are gathered to rank 0 once)
_C.TEST.RELATION.RECALL_KS = (20, 50, 100)  # the K of R@K, mR@K and the other @K metrics
_C.TEST.RELATION.LEGACY_IOU = True  # +1 pixel IoU convention of SGB; False = continuous IoU
_C.TEST.RELATION.RELATION_NMS = False  # PE-Net-style relation NMS before recall (inflates numbers; off in SGB)
_C.TEST.RELATION.MAX_PAIRS_STORED = 0  # cap on stored pairs per image in predictions (0 = all)
_C.TEST.RELATION.SAVE_PREDICTIONS = True  # write the compact prediction file at test time
_C.TEST.RELATION.PLOTS = True  # the test tool draws per-predicate R@K and the GT distribution (needs matplotlib)

# ------------------------------------------------------------------------------------------------------------- MISC
_C.OUTPUT_DIR = "."  # where a run writes checkpoints, logs, TensorBoard and results
_C.DETECTED_SGG_DIR = "."  # SGB's custom-image output folder; accepted, unused: tools/demo.py takes --output
_C.GLOVE_DIR = "."  # folder with glove.6B.200d.txt (or .pt); absent vectors fall back to a seeded random init
_C.SEED = 0  # < 0: draw a seed and log it
_C.DETERMINISTIC = False  # torch deterministic algorithms
_C.DTYPE = "float32"  # "float32", "float16" (autocast + GradScaler on CUDA) or "bfloat16"
_C.AMP_VERBOSE = False  # SGB's apex verbosity; accepted, unused (DTYPE selects mixed precision)
_C.PATHS_CATALOG = ""  # SGB key; the catalog is sgg/config/paths_catalog.py


# functions that add the config node of a component living outside sgg/, in registration order
_CONFIG_EXTENSIONS: List[Callable[[CN], None]] = []


def register_config_defaults(add_defaults: Callable[[CN], None]) -> Callable[[CN], None]:
    """Decorator for ``add_defaults(cfg)``, which declares the config keys of a component written outside ``sgg/``
    (e.g. a relation head in the user's own file, imported with a tool's ``--import``) next to it; every later
    ``get_default_config()`` has them. It may only add keys: changing one of the framework's is an error."""
    if add_defaults not in _CONFIG_EXTENSIONS:
        _CONFIG_EXTENSIONS.append(add_defaults)
    return add_defaults


def get_default_config() -> CN:
    cfg = _C.clone()
    for add_defaults in _CONFIG_EXTENSIONS:
        before = _flatten(cfg)
        add_defaults(cfg)
        after = _flatten(cfg)
        changed = [key for key, value in before.items() if key not in after or after[key] != value]
        if changed:
            raise ConfigError(f"{add_defaults.__module__}.{add_defaults.__qualname__} (register_config_defaults) "
                              f"changes the existing config key {changed[0]}; it may only add new keys")
    return cfg
