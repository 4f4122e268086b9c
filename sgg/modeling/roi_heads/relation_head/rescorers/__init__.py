"""Pair re-scoring modules (``MODEL.ROI_RELATION_HEAD.RESCORER``), registered in ``RELATION_RESCORERS``.

A re-scorer is called as ``output, rel_scores = rescorer(batch, output)`` between the predictor and
post-processing. ``rel_scores`` is None (keep the softmax of the predictor's logits) or a (sum P, R) tensor that
replaces those predicate scores in post-processing, e.g. softmax x a per-pair score.
"""
# >>> re-scorer imports
from . import ranker  # noqa: F401  (Ranker, Huang et al. ACCV 2020)
# <<< re-scorer imports
