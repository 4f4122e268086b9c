"""ContextEdgePredictor (layers/context_predictor.py): a head that is only its context module gets the shared edge
head, the frequency bias of its pair labels and the predictor interface from the base class."""
import pytest
import torch
from torch import nn

from sgg.modeling.roi_heads.relation_head.layers.context_predictor import ContextEdgePredictor, ObjectContext
from sgg.modeling.roi_heads.relation_head.layers.object_labels import ground_truth_objects
from sgg.modeling.roi_heads.relation_head.types import AuxiliaryOutputs, RankerOutputs

from test_predictors import C, R, ROI_DIM, make_batch, make_cfg, make_statistics

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")


class ToyContext(ObjectContext):
    """Edge context = a linear map of each box's ROI feature; PredCls labels."""

    def __init__(self, cfg, obj_classes, in_channels):
        head = cfg.MODEL.ROI_RELATION_HEAD
        super().__init__("predcls", obj_classes, cfg.GLOVE_DIR, head.EMBED_DIM, head.CONTEXT_HIDDEN_DIM, 0.3)
        self.project = nn.Linear(in_channels, head.CONTEXT_HIDDEN_DIM)

    @classmethod
    def from_config(cls, cfg, obj_classes, in_channels, statistics):
        return cls(cfg, obj_classes, in_channels)

    def forward(self, batch):
        obj_logits, obj_preds = ground_truth_objects(batch, self.num_obj_classes)
        return obj_logits, obj_preds, self.project(batch.roi_features)


class ToyPredictor(ContextEdgePredictor):
    CONTEXT = ToyContext


class ToyPredictorWithCtxCompress(ContextEdgePredictor):
    CONTEXT = ToyContext
    CTX_COMPRESS = True


def _build(cls, use_bias=True):
    torch.manual_seed(0)
    cfg = make_cfg("MotifPredictor", "predcls", "MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS", use_bias)
    return cls.from_config(cfg, ROI_DIM, make_statistics())


def test_a_toy_context_gets_pair_logits_with_the_frequency_bias_of_its_labels():
    model = _build(ToyPredictor).eval()
    batch = make_batch("predcls", (3, 4), training=False)
    with torch.no_grad():
        out = model(batch)
        biased = out.rel_logits
        model.edge_head.freq_bias = None
        unbiased = model(batch).rel_logits
    pairs = sum(batch.num_pairs)
    assert biased.shape == (pairs, R) and out.obj_logits.shape == (7, C) and out.rel_features.shape == (pairs, 64)
    labels = torch.cat([b.get_field("labels") for b in batch.boxes])
    offsets = [0, 3]
    subject = torch.cat([p[:, 0] + o for p, o in zip(batch.pair_idxs, offsets)])
    obj = torch.cat([p[:, 1] + o for p, o in zip(batch.pair_idxs, offsets)])
    # the bias is log p(predicate | subject label, object label) from pred_dist, subject first (pred_dist is random,
    # so a swapped pair or a bias read at the wrong labels would differ)
    expected_bias = make_statistics()["pred_dist"][labels[subject], labels[obj]]
    assert torch.allclose(biased - unbiased, expected_bias, atol=1e-5)
    assert not torch.allclose(expected_bias, make_statistics()["pred_dist"][labels[obj], labels[subject]])


def test_the_base_builds_the_context_first_and_the_edge_head_the_flag_asks_for():
    plain, with_ctx = _build(ToyPredictor), _build(ToyPredictorWithCtxCompress)
    assert isinstance(plain.context, ToyContext) and plain.edge_head.ctx_compress is None
    assert with_ctx.edge_head.ctx_compress is not None
    assert _build(ToyPredictor, use_bias=False).edge_head.freq_bias is None
    names = [name for name, _ in plain.named_parameters()]
    assert names[:4] == ["context.obj_input_embed.embedding.weight", "context.obj_embed2.weight",
                         "context.project.weight", "context.project.bias"]
    assert "edge_head.freq_bias.obj_baseline.weight" in names and "edge_head.rel_compress.weight" in names


def test_a_misspelt_output_field_fails_at_once():
    model = _build(ToyPredictor).eval()
    with torch.no_grad():
        out = model(make_batch("predcls", (3,), training=False))
    with pytest.raises(AttributeError, match="rel_feature"):
        out.rel_feature = out.rel_features
    with pytest.raises(AttributeError, match="rankers"):
        out.aux.rankers = RankerOutputs(torch.zeros(6), torch.zeros(6))
    with pytest.raises(AttributeError):
        AuxiliaryOutputs().ranker.logits  # an unfilled field is None, not an empty dict that hides the typo
    out.aux.ranker = RankerOutputs(torch.zeros(6), torch.full((6,), 0.5))
    assert out.aux.ranker.scores.tolist() == [0.5] * 6
