"""Datasets in the VG150 release format."""
from .visual_genome import VGDataset, one_predicate_per_pair, relation_matrix

__all__ = ["VGDataset", "one_predicate_per_pair", "relation_matrix"]
