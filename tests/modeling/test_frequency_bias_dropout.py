"""MODEL.ROI_RELATION_HEAD.FREQUENCY_BIAS_DROPOUT: BA-SGG's and ReBalance-HCA's predictors drop frequency-bias
logits in training (``F.dropout(freq_dists_bias, 0.3, training=self.training)``); SGB's do not (default 0.0)."""
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgg.config import load_config
from sgg.config.sgg_config import ConfigError
from sgg.modeling.detector.scene_graph_rcnn import SceneGraphRCNN
from sgg.modeling.roi_heads.relation_head.layers.frequency_bias import FrequencyBias, set_frequency_bias_dropout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_scene_graph_model import _cfg, _statistics  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRED_DIST = np.arange(2 * 2 * 5, dtype=np.float32).reshape(2, 2, 5) / 7.0 + 0.5  # no zero entry
PAIRS = torch.tensor([[0, 1], [1, 1], [1, 0], [0, 0]] * 8)


def test_training_drops_and_rescales_bias_logits_as_f_dropout_does():
    bias = FrequencyBias(PRED_DIST, dropout=0.3).train()
    plain = FrequencyBias(PRED_DIST).train()(PAIRS)
    torch.manual_seed(3)
    dropped = bias(PAIRS)
    torch.manual_seed(3)
    assert torch.equal(dropped, F.dropout(plain, 0.3, training=True))  # the reference's expression, same draw
    kept = dropped != 0
    assert 0 < kept.sum() < dropped.numel()
    assert torch.allclose(dropped[kept], plain[kept] / 0.7)
    probs = torch.softmax(torch.randn(len(PAIRS), 2), dim=1)
    soft = bias.index_with_probability(probs, probs.flip(1))
    assert (soft == 0).any()  # the soft lookup is the same bias term
    assert torch.equal(bias.eval()(PAIRS), plain)  # no dropout at test
    assert torch.equal(FrequencyBias(PRED_DIST).train()(PAIRS), plain)  # default: off


def test_the_key_reaches_every_frequency_bias_including_the_clean_copy():
    cfg = _cfg("TransformerPredictor", True, True, "MODEL.ROI_RELATION_HEAD.FREQUENCY_BIAS_DROPOUT", "0.3",
               "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True")
    model = SceneGraphRCNN.from_config(cfg, _statistics())
    biases = [m for m in model.modules() if isinstance(m, FrequencyBias)]
    assert len(biases) == 2 and all(b.dropout == 0.3 for b in biases)  # general and clean
    default = SceneGraphRCNN.from_config(_cfg("MotifPredictor", True, True), _statistics())
    assert [m.dropout for m in default.modules() if isinstance(m, FrequencyBias)] == [0.0]


@pytest.mark.parametrize("config,expected", [
    ("configs/synthetic/hca_ce.yaml", 0.3), ("configs/synthetic/hca_cdl.yaml", 0.3),
    ("configs/synthetic/hca_cdl_basgg.yaml", 0.3), ("configs/synthetic/ba_sgg_stage2.yaml", 0.3),
    ("configs/hca/hca_ce.yaml", 0.3), ("configs/hca/hca_cdl.yaml", 0.3), ("configs/hca/hca_cdl_basgg.yaml", 0.3),
    ("configs/ba_sgg/stage2.yaml", 0.3), ("configs/synthetic/relation_base.yaml", 0.0),
    ("configs/e2e_relation_X_101_32_8_FPN_1x.yaml", 0.0)])
def test_methods_whose_reference_drops_the_bias_switch_it_on(config, expected):
    cfg = load_config(os.path.join(REPO, config))
    assert cfg.MODEL.ROI_RELATION_HEAD.FREQUENCY_BIAS_DROPOUT == expected


def test_a_dropout_outside_zero_one_names_the_key():
    with pytest.raises(ConfigError, match=r"MODEL.ROI_RELATION_HEAD.FREQUENCY_BIAS_DROPOUT is 1.0; expected a "
                                          r"probability in \[0, 1\)"):
        set_frequency_bias_dropout(FrequencyBias(PRED_DIST), 1.0)
