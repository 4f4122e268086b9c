"""Datasets in the VG150 release format, transforms, samplers and loaders."""
from .build import (BatchCollator, build_data_loader, build_dataset, build_datasets, dataset_options,
                    get_dataset_statistics)

__all__ = ["build_data_loader", "build_dataset", "build_datasets", "dataset_options", "BatchCollator",
           "get_dataset_statistics"]
