"""sgg: scene graph generation on Visual Genome with pluggable relation heads."""
__version__ = "0.1.0"
