"""FREQ (neural-motifs' frequency baseline, METHODS.md section 1): a pair's predicate logits are the frequency bias
of its two object labels, log p(predicate | subject class, object class) from the train statistics."""
from __future__ import annotations

from torch import nn

from sgg.config.config import get_protocol
from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import ROI_RELATION_PREDICTORS

from ..layers.batch_access import check_mode, class_counts, detector_logits, global_pair_indices
from ..layers.frequency_bias import FrequencyBias
from ..layers.object_labels import classify_objects
from ..types import PredictorOutput, RelationBatch


@ROI_RELATION_PREDICTORS.register("FrequencyPredictor")
class FrequencyPredictor(nn.Module):
    """``rel_logits = W[label_s * C + label_o]`` with ``W`` the (trainable) ``FrequencyBias`` table.

    Object logits are the GT labels as +-1000 one-hot logits (PredCls) or the detector's ``predict_logits`` passed
    through (SGCls/SGDet); the pair labels are the GT labels, the argmax over non-background classes, or SGB's
    per-class NMS decoding at SGDet test. Nothing but the bias table is learned, so with no training step this is
    the statistics-only baseline of the MotifNet paper.
    """

    uses_union_features = False  # the relation head then skips union-box pooling
    CLASSIFIER_MODULES = ("freq_bias",)  # BA-SGG's clean classifier (ba_sgg.py)

    def __init__(self, mode: str, pred_dist, num_obj_classes: int, later_nms_thresh: float = 0.3):
        super().__init__()
        self.mode = check_mode(mode)
        self.num_obj_classes = num_obj_classes
        self.later_nms_thresh = later_nms_thresh
        self.freq_bias = FrequencyBias(pred_dist)

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics):
        if not cfg.MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS:
            raise ConfigError("FrequencyPredictor is the frequency bias alone: it needs "
                              "MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS True")
        obj_classes, _ = class_counts(statistics)
        return cls(get_protocol(cfg), statistics["pred_dist"], len(obj_classes),
                   cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES)

    def forward(self, batch: RelationBatch) -> PredictorOutput:
        obj_logits, obj_preds = classify_objects(batch, self.num_obj_classes, lambda: detector_logits(batch),
                                                 self.training, self.later_nms_thresh, "FrequencyPredictor")
        pairs = global_pair_indices(batch)
        rel_logits = self.freq_bias.index_with_labels(obj_preds[pairs])
        return PredictorOutput(obj_logits=obj_logits, obj_preds=obj_preds, rel_logits=rel_logits)
