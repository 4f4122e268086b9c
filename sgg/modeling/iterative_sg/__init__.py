"""IterativeSG (METHODS.md 6): the one-stage DETR-style scene graph model, meta-architecture "IterativeSceneGraph",
and the plain DETR detector ("DETR") whose weights start it."""
from .inference import IterativeSGPostProcessor
from .losses import IterativeSGCriterion, predicate_loss_weights
from .matcher import TripletMatcher, hungarian_match, triplet_cost_matrix
from .model import IterativeSceneGraph
from .detr import DETRDetector, iterative_sg_state_from_detr
from .targets import TripletTargets, build_triplet_targets, relation_boxes_from_centres
from .transformer import IterativeSGTransformer

__all__ = ["DETRDetector", "IterativeSceneGraph", "IterativeSGTransformer", "IterativeSGCriterion",
           "IterativeSGPostProcessor", "TripletMatcher", "TripletTargets", "build_triplet_targets", "hungarian_match",
           "iterative_sg_state_from_detr", "predicate_loss_weights", "relation_boxes_from_centres",
           "triplet_cost_matrix"]
