"""Pair re-scoring modules (``MODEL.ROI_RELATION_HEAD.RESCORER``), registered in ``RELATION_RESCORERS``; importing
this package imports every module in it, so a new re-scorer is one file here.

A re-scorer is called as ``output, rel_scores = rescorer(batch, output)`` between the predictor and
post-processing. ``rel_scores`` is None (keep the softmax of the predictor's logits) or a (sum P, R) tensor that
replaces those predicate scores in post-processing, e.g. softmax x a per-pair score.
"""
from sgg.utils.module_loading import import_package_modules

import_package_modules(__name__, __path__)  # registration, in sorted file order
