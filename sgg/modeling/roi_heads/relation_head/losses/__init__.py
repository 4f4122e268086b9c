"""Composable relation-head losses. Importing this package imports every module in it, so each registers its terms
in ``RELATION_LOSSES`` (a new term is one file here); the config lists the terms to train with."""
from sgg.utils.module_loading import import_package_modules

from .base import RelationLossInputs, parse_loss_spec
from .build import build_relation_losses

import_package_modules(__name__, __path__)  # registration, in sorted file order

__all__ = ["RelationLossInputs", "build_relation_losses", "parse_loss_spec"]
