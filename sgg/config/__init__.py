"""Configuration: ``get_cfg()`` gives the defaults; every tool merges a yaml and KEY VALUE overrides on top."""
from .config import get_cfg, load_config, protocol_name, get_protocol, save_config
from .class_counts import check_class_counts
from .defaults import register_config_defaults
from .paths_catalog import DatasetCatalog
from .sgg_config import ConfigError, SGGConfig

__all__ = ["get_cfg", "load_config", "protocol_name", "get_protocol", "save_config", "DatasetCatalog",
           "ConfigError", "SGGConfig", "check_class_counts", "register_config_defaults"]
