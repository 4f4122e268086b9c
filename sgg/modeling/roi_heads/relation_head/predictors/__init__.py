"""Relation predictors (PROTOCOL.md 4.5). Importing this package registers the baselines in
``ROI_RELATION_PREDICTORS``; ``build_predictor`` builds the one named by ``MODEL.ROI_RELATION_HEAD.PREDICTOR``."""
from __future__ import annotations

from typing import Any, Dict

from torch import nn

from sgg.modeling.registry import ROI_RELATION_PREDICTORS

from . import frequency, motifs, transformer  # noqa: F401  (register the baselines)
# Later heads register themselves here, one import line each (keep alphabetical order of the comments below).
# >>> head imports
from . import causal  # noqa: F401  (CausalAnalysisPredictor, Causal TDE)
from . import hca  # noqa: F401  (HybridCoAttentionPredictor, ReBalance-HCA)
from . import imp  # noqa: F401  (IMPPredictor, Xu et al. 2017)
from . import linknet  # noqa: F401  (LinkNetPredictor, Woo et al. 2018)
from . import penet  # noqa: F401  (PrototypeEmbeddingNetwork: PE-Net and SPL)
from . import vctree  # noqa: F401  (VCTreePredictor, SGB's VCTree)
# <<< head imports
from .frequency import FrequencyPredictor
from .motifs import LSTMContext, MotifPredictor
from .transformer import TransformerContext, TransformerPredictor


def build_predictor(cfg, in_channels: int, statistics: Dict[str, Any]) -> nn.Module:
    """``statistics``: ``pred_dist`` (C, C, R log-probabilities), ``fg_matrix``, ``obj_classes`` (C names with
    ``__background__``) and ``rel_classes`` (R names); the class counts come from here, not from the config."""
    missing = [key for key in ("pred_dist", "obj_classes", "rel_classes") if key not in statistics]
    if missing:
        raise KeyError(f"build_predictor: the dataset statistics lack {', '.join(missing)}")
    predictor_class = ROI_RELATION_PREDICTORS.get(cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR)
    return predictor_class.from_config(cfg, in_channels, statistics)


__all__ = ["build_predictor", "FrequencyPredictor", "MotifPredictor", "LSTMContext", "TransformerPredictor",
           "TransformerContext"]
