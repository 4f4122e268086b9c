"""Composable relation-head losses. Each file registers terms in ``RELATION_LOSSES``; the config lists them."""
from .base import RelationLossInputs, parse_loss_spec
from .build import build_relation_losses
from . import cross_entropy  # noqa: F401  (registers RelationCE, ObjectCE)
# >>> loss imports (one line per module of the later methods)
from . import cdl  # noqa: F401  (registers cdl, FGPL's category discriminating loss)
from . import causal  # noqa: F401  (registers CausalAuxiliaryCE, Causal TDE's branch losses)
from . import cce, gce_ranker  # noqa: F401  (registers cce, gce, ranker: Huang et al. ACCV 2020)
from . import prototype, reweight  # noqa: F401  (PE-Net / SPL prototype losses, ReweightedRelationCE)
from . import vctree_binary  # noqa: F401  (registers VCTreeBinary, VCTree's binary_loss)
# <<< loss imports

__all__ = ["RelationLossInputs", "build_relation_losses", "parse_loss_spec"]
