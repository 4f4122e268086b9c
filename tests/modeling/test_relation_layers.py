"""Shared relation-head pieces not covered through a head: the union-feature check of the edge heads, the typed
auxiliary outputs (float32 casting, the errors of a loss term whose field is missing)."""
import pytest
import torch
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.roi_heads.relation_head.layers.edge_head import union_for_pairs
from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs
from sgg.modeling.roi_heads.relation_head.losses.base import WeightedLosses
from sgg.modeling.roi_heads.relation_head.losses.prototype import (PENetEuclidean, PENetPrototypeL21, SPLVAE,
                                                                   SPLPrototypeSimilarity)
from sgg.modeling.roi_heads.relation_head.types import (AuxiliaryOutputs, PairScoreTargets, RankerOutputs,
                                                        SPLOutputs, map_tensors)


def test_union_for_pairs_checks_rows_and_width_and_maps_to_the_pooling_width():
    union = torch.arange(12.0).view(3, 4)
    assert union_for_pairs(union, 3, 4, None) is union
    up = nn.Linear(4, 2)
    assert torch.equal(union_for_pairs(union, 3, 4, up), up(union))
    with pytest.raises(ValueError, match="PREDICT_USE_VISION is True but the relation batch has no union_features"):
        union_for_pairs(None, 3, 4, None)
    with pytest.raises(ValueError, match=r"shape \(3, 4\), expected \(2, 4\)"):
        union_for_pairs(union, 2, 4, None)
    with pytest.raises(ValueError, match=r"expected \(3, 5\)"):
        union_for_pairs(union, 3, 5, None)


def test_map_tensors_reaches_nested_fields_and_leaves_none():
    aux = AuxiliaryOutputs(ranker=RankerOutputs(torch.ones(2, dtype=torch.bfloat16), torch.zeros(2)),
                           pair_scores=PairScoreTargets(torch.ones(3), torch.zeros(3), torch.tensor([0, 0, 1])))
    doubled = map_tensors(aux, lambda t: t * 2)
    assert doubled.ranker.logits.tolist() == [2.0, 2.0] and doubled.pair_scores.image.tolist() == [0, 0, 2]
    assert doubled.causal is None and doubled.spl is None
    assert aux.ranker.logits.tolist() == [1.0, 1.0]  # a new object, the input is untouched


def test_loss_terms_read_float32_aux_fields_under_bfloat16():
    seen = {}

    class Probe(nn.Module):
        def forward(self, inputs):
            seen["ranker"] = inputs.aux.ranker.logits.dtype
            seen["image"] = inputs.aux.pair_scores.image.dtype
            return {"loss_probe": inputs.rel_logits.sum()}

    aux = AuxiliaryOutputs(ranker=RankerOutputs(torch.ones(2, dtype=torch.bfloat16), torch.ones(2)),
                           pair_scores=PairScoreTargets(torch.ones(1), torch.ones(1), torch.zeros(1, dtype=torch.long)))
    WeightedLosses([("Probe", 1.0, Probe())])(RelationLossInputs(torch.zeros(2, 3, dtype=torch.bfloat16),
                                                                 torch.zeros(2, dtype=torch.long), aux=aux))
    assert seen == {"ranker": torch.float32, "image": torch.long}


def _inputs(aux=None):
    return RelationLossInputs(torch.zeros(2, 3), torch.tensor([1, 0]), aux=aux or AuxiliaryOutputs())


@pytest.mark.parametrize("term", [PENetEuclidean(), PENetPrototypeL21()])
def test_penet_terms_without_prototypes_name_the_term_field_and_predictor(term):
    with pytest.raises(ConfigError, match=rf"{type(term).__name__} needs the predictor output's aux\.prototypes.*"
                                          r"PrototypeEmbeddingNetwork"):
        term(_inputs())


def test_spl_terms_name_the_missing_branch_fields():
    with pytest.raises(ConfigError, match=r"SPLPrototypeSimilarity needs the predictor output's aux\.spl,"):
        SPLPrototypeSimilarity()(_inputs())
    with pytest.raises(ConfigError, match="SPLPrototypeSimilarity needs at least one of .*sem_prototypes"):
        SPLPrototypeSimilarity()(_inputs(AuxiliaryOutputs(spl=SPLOutputs())))
    with pytest.raises(ConfigError, match=r"SPLVAE needs the predictor output's aux\.spl\.vis_vae or"):
        SPLVAE()(_inputs(AuxiliaryOutputs(spl=SPLOutputs(sem_prototypes=torch.eye(3)))))
    losses = SPLPrototypeSimilarity()(_inputs(AuxiliaryOutputs(spl=SPLOutputs(con_prototypes=torch.eye(3)))))
    assert list(losses) == ["loss_con_simi"] and losses["loss_con_simi"].item() == pytest.approx(0.0)
