"""One registry per extension point of the model (ARCHITECTURE.md: registries, not if-chains)."""
from sgg.utils.registry import Registry

BACKBONES = Registry("backbone", "MODEL.BACKBONE.CONV_BODY")
META_ARCHITECTURES = Registry("meta-architecture", "MODEL.META_ARCHITECTURE")
ROI_RELATION_PREDICTORS = Registry("relation predictor", "MODEL.ROI_RELATION_HEAD.PREDICTOR")
ROI_RELATION_FEATURE_EXTRACTORS = Registry("relation feature extractor",
                                           "MODEL.ROI_RELATION_HEAD.FEATURE_EXTRACTOR")
RELATION_LOSSES = Registry("relation loss", "MODEL.ROI_RELATION_HEAD.LOSS")
RELATION_RESCORERS = Registry("relation re-scorer", "MODEL.ROI_RELATION_HEAD.RESCORER")
RELATION_LOGIT_ADJUSTERS = Registry("relation logit adjuster", "MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS")
