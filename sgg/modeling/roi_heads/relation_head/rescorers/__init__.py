"""Pair re-scoring modules (``MODEL.ROI_RELATION_HEAD.RESCORER``), registered in ``RELATION_RESCORERS``.

A re-scorer is called as ``output, pair_scores = rescorer(batch, output)`` between the predictor and
post-processing; ``pair_scores`` (sum P,) or None multiplies the triplet scores at test time.
"""
# >>> re-scorer imports
# <<< re-scorer imports
